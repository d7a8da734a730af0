"""Scheduling: one frame's beats through a netlist, the frame interval, the latency and the
depths of the residual joins' FIFOs.

Every block's timing (:mod:`hwgen.blocks.timing`) says when its output beats leave given when
its input beats arrive; :func:`schedule` follows a frame through the netlist in dependency
order with the output always taken. A fork passes a beat on when every reader takes it (a line
buffer may refuse a beat for a while); a join sends a beat one cycle after both operands
have theirs.

FIFO sizing: with frames repeating at the frame interval, each join's operand FIFO gets the
most beats held at once (a beat taken at cycle ``a`` and passed to the join at cycle ``d``
occupies cycles ``a+1..d``). Because block models are causal (a block's output beat comes
after the inputs it needs), that depth is at least what the other branch needs from the fork
before it can produce the matching beat, so the fork never blocks on a full FIFO while the
join waits: no deadlock under any back-pressure, and full throughput with the output always
ready.
"""

from dataclasses import dataclass

import numpy as np

from .blocks import MaxPool, SlidingWindow, SumPool
from .lowering import BlockSpec

__all__ = ["Schedule", "schedule", "fifo_occupancy"]

INPUT, OUTPUT = (None, "i_stream", None), (None, "o_stream", None)
#: Frames followed when line buffers are sized.
FRAMES = 3


@dataclass
class Schedule:
    """The timing of a netlist.

    Attributes
    ----------
    times : dict
        ``{output port: cycles}`` of one frame's beats through the empty pipeline (input beat
        ``k`` offered at cycle ``k``, the output taken whenever valid).
    block_cycles : dict
        ``{block: steady-state cycles per frame}`` of the blocks with a rate of their own.
    cycles_per_frame : int
        The frame interval: the slowest of the blocks, the input beats and the output beats.
    latency : int
        Cycles from a frame's first input beat to its last output beat, pipeline empty.
    latency_is_estimate : bool
        Whether a line buffer makes the latency an estimate: a block slower than its
        producer pushes back on it, which delays beats the model takes as offered (the frame
        interval is exact).
    fifo_depths : dict
        ``{join FIFO: depth}``.
    """
    times: dict
    block_cycles: dict
    cycles_per_frame: int
    latency: int
    latency_is_estimate: bool
    fifo_depths: dict


def fifo_occupancy(arrivals, departures, interval):
    """Most beats a FIFO holds when frames follow every ``interval`` cycles.

    A beat taken in at cycle ``arrivals[k]`` and passed on at cycle ``departures[k]`` is held
    in the cycles between (the first excluded, the last included); the frames overlap
    whenever a beat waits longer than a frame interval.
    """
    arrivals, departures = np.asarray(arrivals), np.asarray(departures)
    frames = int((departures.max() - arrivals.min()) // interval) + 2
    offsets = np.arange(frames)[:, None] * interval
    events = np.concatenate([(arrivals + offsets).ravel() + 1, (departures + offsets).ravel() + 1])
    steps = np.concatenate([np.ones(arrivals.size * frames, dtype=np.int64),
                            -np.ones(departures.size * frames, dtype=np.int64)])
    order = np.lexsort((steps, events))   # a departure before an arrival in the same cycle
    return int(max(0, np.cumsum(steps[order]).max()))


def _beat_times(net, offers, resize=False):
    """``{output port: cycles}`` of the frames whose input beats are offered at ``offers``,
    through the empty pipeline. With ``resize``, each line buffer of the default size gets the
    fewest rows that take every beat when its producer offers it (see :func:`schedule`)."""
    feeds, readers = net.feeds, net.readers
    times = {INPUT: list(offers)}
    for name, spec in net.blocks.items():
        beats = times[feeds[(name, "i_stream", None)]]
        if resize:
            # A fork's readers are sized against what the fork is offered: a reader that
            # refuses a beat stops the fork, and with it the producer.
            for reader in ([r for n in range(spec.params["outputs"])
                            for r in readers[(name, "o_streams", n)] if r is not None]
                           if "outputs" in spec.params else [name]):
                _size_buffer(net, reader, net.blocks[reader], beats)
            spec = net.blocks[name]
        if (name, "i_skip", None) in feeds:
            times[(name, "o_stream", None)] = spec.timing.beat_times(
                beats, times[feeds[(name, "i_skip", None)]])
        elif "outputs" in spec.params:            # a fork: every reader takes the beat
            outputs = spec.params["outputs"]
            taken = np.asarray(beats)
            for n in range(outputs):
                reader = readers[(name, "o_streams", n)][0]
                if reader is not None:
                    taken = np.maximum(taken, net.blocks[reader].timing.input_times(beats))
            for n in range(outputs):
                times[(name, "o_streams", n)] = taken.tolist()
        else:
            times[(name, "o_stream", None)] = spec.timing.beat_times(beats)
    return times


def _window_timing(timing):
    return timing.inner if hasattr(timing, "inner") else timing


def _size_buffer(net, name, spec, offers):
    """Give the line buffer of block ``name`` (if it has one of the default size) the fewest
    rows, from its own full-rate ring up to two frames more, with which it takes every beat
    when it is offered."""
    if not issubclass(spec.cls, (SlidingWindow, MaxPool, SumPool)) or \
            spec.params.get("buffer_rows") is not None:
        return
    window = _window_timing(spec.timing)
    g = window.geometry
    for rows in range(window.buffer_rows, g.window_rows + 2 * g.stored_rows + 1):
        candidate = BlockSpec(spec.cls, spec.params | {"buffer_rows": rows})
        if list(_window_timing(candidate.timing).input_times(offers)) == list(offers):
            if rows != window.buffer_rows:
                net.blocks[name] = candidate
            return


def schedule(net, fifo_depths=None):
    """The :class:`Schedule` of ``net``; ``fifo_depths`` (``{FIFO: depth}``) overrides the
    computed depths (to study a design: a shallower FIFO can cost throughput or deadlock)."""
    chosen = dict(fifo_depths or {})
    fifos = [f for names in net.joins.values() for f in names]
    unknown = sorted(set(chosen) - set(fifos))
    if unknown:
        raise ValueError(f"fifo_depths names {', '.join(unknown)}, which are not FIFOs of this "
                         f"design; its FIFOs are {', '.join(fifos) or 'none'}")
    block_cycles = {name: spec.timing.cycles_per_frame for name, spec in net.blocks.items()
                    if spec.timing.cycles_per_frame}
    in_beats = net.input.elements // net.input.lanes
    out_beats = net.output.elements // net.output.lanes
    interval = max(list(block_cycles.values()) + [in_beats, out_beats])
    # Frames offered every interval: line buffers are sized to take every beat as its producer
    # offers it, so that no block waits on another and the model below is exact.
    _beat_times(net, [f * interval + k for f in range(FRAMES) for k in range(in_beats)],
                resize=True)
    times = _beat_times(net, range(in_beats))
    depths = {}
    for add, names in net.joins.items():
        departures = [t - 1 for t in times[(add, "o_stream", None)]]
        for fifo in names:
            arrivals = times[net.feeds[(fifo, "i_stream", None)]]
            depths[fifo] = chosen.get(fifo, max(1, fifo_occupancy(arrivals, departures,
                                                                  interval)))
    windows = any(issubclass(spec.cls, (SlidingWindow, MaxPool, SumPool))
                  for spec in net.blocks.values())
    return Schedule(times, block_cycles, interval, int(times[net.feeds[OUTPUT]][-1]), windows,
                    depths)
