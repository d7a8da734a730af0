"""The timing protocol every block implements: how beats of one frame move through it.

A block's ``timing`` is one of the classes below, computed from the block's parameters alone
(``Block.timing_of(**params)``), so the scheduler (:mod:`hwgen.schedule`) follows a frame
through a whole design without building any hardware. Each timing has:

- ``latency``: cycles from the last input beat an output beat needs to that output beat,
  with the block empty and its output taken when offered;
- ``cycles_per_frame``: steady-state cycles per frame with the input always offered and the
  output always taken;
- ``beat_times(times, *others)``: the cycles the output beats of one frame are offered, given
  the cycles each input beat is offered (``others`` for blocks with a second input);
- ``input_times(times)``: the cycles the input beats are taken (a block that can refuse a
  beat, such as a full line buffer, takes it later than it is offered).

Beat times are lists of ints in cycles; a beat offered at ``t`` into an empty block and
passed through one register is offered at ``t + 1`` on the other side.
"""

import numpy as np

__all__ = ["Timed", "Pipe", "Join", "Gather", "MatVecTiming", "WindowTiming",
           "ConverterTiming"]


class Timed:
    """Mixin for blocks: the protocol's members, read from the block's ``timing``."""

    latency = property(lambda self: self.timing.latency)
    cycles_per_frame = property(lambda self: self.timing.cycles_per_frame)

    def beat_times(self, *times):
        """Output beat cycles of one frame, given its input beat cycles (output always
        taken)."""
        return self.timing.beat_times(*times)

    def input_times(self, times):
        """Cycles the input beats of one frame are taken, when offered at ``times``."""
        return self.timing.input_times(times)


class Pipe:
    """One output beat per input beat, ``latency`` cycles later, one beat per cycle."""

    def __init__(self, beats, latency):
        self.beats, self._latency = int(beats), int(latency)

    latency = property(lambda self: self._latency)
    cycles_per_frame = property(lambda self: self.beats)

    def beat_times(self, times):
        return [t + self._latency for t in times]

    def input_times(self, times):
        return list(times)


class Join(Pipe):
    """Two inputs, one output: a beat leaves one cycle after both its halves are there and
    after the previous beat left (an :class:`~hwgen.blocks.Add`)."""

    def __init__(self, beats):
        super().__init__(beats, 1)

    def beat_times(self, times, other=None):
        out, last = [], -1
        for k, t in enumerate(times):
            start = max(t, other[k] if other is not None else t, last)
            out.append(start + 1)
            last = start + 1
        return out


class Gather:
    """Groups of ``count`` pixels, ``folds`` beats each, reduced to one beat per fold; each
    group's last pixel sends its beats ``latency`` cycles after they arrive (pools, depthwise
    units). ``inner`` is the timing of a block in front (a line buffer), if any."""

    def __init__(self, in_beats, count, folds, latency, inner=None):
        self.in_beats, self.count, self.folds = int(in_beats), int(count), int(folds)
        self._latency, self.inner = int(latency), inner

    @property
    def latency(self):
        return self._latency + (self.inner.latency if self.inner is not None else 0)

    @property
    def cycles_per_frame(self):
        return self.inner.cycles_per_frame if self.inner is not None else self.in_beats

    def beat_times(self, times):
        if self.inner is not None:
            times = self.inner.beat_times(times)
        times = np.asarray(times, dtype=np.int64).reshape(-1, self.count, self.folds)
        return (times[:, -1, :].ravel() + self._latency).tolist()

    def input_times(self, times):
        return self.inner.input_times(times) if self.inner is not None else list(times)


class MatVecTiming:
    """A matrix-vector unit: ``vectors`` input vectors per frame, each ``input_folds`` beats,
    each giving ``output_folds`` beats; a vector starts one cycle after its last beat arrives,
    or when the vector before it is done, and output fold ``f`` leaves
    ``input_folds * (f + 1) + pipeline`` cycles after the start."""

    def __init__(self, input_folds, output_folds, vectors, pipeline):
        self.input_folds, self.output_folds = int(input_folds), int(output_folds)
        self.vectors, self.pipeline = int(vectors), int(pipeline)

    @property
    def latency(self):
        return self.input_folds + self.pipeline

    @property
    def cycles_per_frame(self):
        return self.vectors * self.input_folds * self.output_folds

    def beat_times(self, times):
        sf, nf = self.input_folds, self.output_folds
        out, free = [], 0
        for v in range(len(times) // sf):
            start = max(times[(v + 1) * sf - 1] + 1, free)
            out.extend(start + sf * (f + 1) + self.pipeline - 1 for f in range(nf))
            free = start + sf * nf
        return out

    def input_times(self, times):
        return list(times)


class WindowTiming:
    """A line buffer (:class:`~hwgen.blocks.SlidingWindow`) of ``buffer_rows`` rows over
    ``geometry``; its beats follow the exact cycle model ``geometry.schedule``."""

    def __init__(self, geometry, buffer_rows, cycles_per_frame):
        self.geometry, self.buffer_rows = geometry, int(buffer_rows)
        self._cycles = int(cycles_per_frame)

    #: A beat written at cycle ``t`` is read from ``t + 1`` and shown one cycle later.
    latency = 2
    cycles_per_frame = property(lambda self: self._cycles)

    def beat_times(self, times):
        frames = len(times) // self.geometry.in_beats
        _, out = self.geometry.schedule(times, frames, self.buffer_rows)
        return out.tolist()

    def input_times(self, times):
        frames = len(times) // self.geometry.in_beats
        taken, _ = self.geometry.schedule(times, frames, self.buffer_rows)
        return taken.tolist()


class ConverterTiming:
    """A width converter from ``in_count`` to ``out_count`` elements per beat, ``elements``
    per frame: gathering sends a beat one cycle after its last part; splitting takes a beat in
    the cycle the last part of the one before leaves."""

    def __init__(self, elements, in_count, out_count):
        self.elements, self.in_count, self.out_count = int(elements), in_count, out_count

    latency = 1

    @property
    def cycles_per_frame(self):
        return self.elements // min(self.in_count, self.out_count)

    def beat_times(self, times):
        if self.in_count == self.out_count:
            return list(times)
        if self.out_count > self.in_count:
            k = self.out_count // self.in_count
            return [t + 1 for t in times[k - 1::k]]
        out = []
        for t in times:
            start = max(t, out[-1]) if out else t
            out.extend(start + 1 + i for i in range(self.in_count // self.out_count))
        return out

    def input_times(self, times):
        if self.out_count >= self.in_count:
            return list(times)
        k, taken, last = self.in_count // self.out_count, [], None
        for t in times:
            start = max(t, last) if last is not None else t
            taken.append(start)
            last = start + k
        return taken
