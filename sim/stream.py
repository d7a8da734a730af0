"""Valid/ready streams in cocotb: a driver and a monitor with back-pressure, and beat packing.

How a tensor travels on a stream (element order, elements per beat, packing into payload
words) is :class:`quant.stream_format.StreamFormat`'s; the agents here move payload words.
:func:`pack_beat` and :func:`unpack_beat` pack the elements of one beat (element 0 in the low
bits, two's complement), for testbenches that drive a block beat by beat. cocotb is imported
only when a driver or monitor runs.

Clocking convention of the driver and monitor: both step in lock step with
:func:`run_lockstep`. Right after a rising edge each agent drives the values for the next edge;
at the falling edge, when everything has settled, it samples the handshake; at the next rising
edge the beat is committed if ``valid`` and ``ready`` were both high. Sampling at the falling
edge makes the result independent of how a simulator orders callbacks at the rising edge
(Verilator reports registers already updated there, Icarus does not).
"""

import random

import numpy as np

from quant.numerics import is_int

from .errors import SimulationError

__all__ = ["pack_beat", "unpack_beat", "Pattern", "StreamDriver", "StreamMonitor",
           "run_lockstep", "run_cycles"]


def _check_bits(bits, signed):
    if not is_int(bits):
        raise TypeError(f"bits must be an integer, not {bits!r}")
    limit = 64 if signed else 63
    if not 1 <= bits <= limit:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"bits must be in 1..{limit} for {kind} elements (they are returned "
                         f"as int64), not {bits}")
    return int(bits)


def _check_count(name, n):
    if not is_int(n):
        raise TypeError(f"{name} must be an integer, not {n!r}")
    if n < 1:
        raise ValueError(f"{name} must be at least 1, not {n}")
    return int(n)


def pack_beat(values, bits):
    """Pack ``values`` into one payload word, element 0 in the low ``bits`` bits.

    Each value may be signed or unsigned: it must lie in ``-2^(bits-1) .. 2^bits - 1`` and is
    stored as its low ``bits`` bits (two's complement for negative values).

    Returns
    -------
    int
        The payload word, ``0 <= word < 2^(len(values) * bits)``.
    """
    bits = _check_bits(bits, signed=True)
    lo, hi, mask = -(1 << (bits - 1)), (1 << bits) - 1, (1 << bits) - 1
    word = 0
    for i, value in enumerate(values):
        value = int(value)
        if not lo <= value <= hi:
            raise ValueError(f"element {i} = {value} does not fit in {bits} bits; elements "
                             f"must lie in {lo}..{hi}")
        word |= (value & mask) << (i * bits)
    return word


def unpack_beat(word, bits, n, signed):
    """Unpack ``n`` elements of ``bits`` bits from a payload word (element 0 in the low bits).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64, sign-extended when ``signed``.
    """
    bits = _check_bits(bits, signed)
    n = _check_count("n", n)
    word = int(word)
    if not 0 <= word < (1 << (n * bits)):
        raise ValueError(f"word must lie in 0..2^{n * bits}-1 for {n} elements of {bits} bits, "
                         f"not {word:#x}")
    mask, half = (1 << bits) - 1, 1 << (bits - 1)
    values = []
    for i in range(n):
        v = (word >> (i * bits)) & mask
        if signed and v >= half:
            v -= 1 << bits
        values.append(v)
    return np.array(values, dtype=np.int64)


def _random_source(seed, name):
    # One independent, reproducible stream per agent: the string seed is hashed with SHA-512.
    return random.Random(f"{int(seed)}/{name}")


class Pattern:
    """When a handshake signal (a driver's ``valid``, a monitor's ``ready``) is held low.

    ``spec`` is one of:

    - a probability ``p`` (or ``"random:p"``): low in a cycle with probability ``p``,
      ``0 <= p < 1``;
    - ``"bursty:H,L"``: runs high and low in turn, of random lengths ``1..2H`` and ``1..2L``
      cycles (``H`` and ``L`` on average);
    - ``"stall:S,N"``: high except for the ``N`` cycles from cycle ``S`` on.

    The random patterns come from ``seed`` and ``name``, so each agent has its own.
    """

    def __init__(self, spec, *, seed=0, name=""):
        self.kind, self.args = parse_pattern(spec)
        self.spec = spec
        self._random = _random_source(seed, name).random
        self._run_high, self._left = True, 0

    @property
    def always_high(self):
        return self.kind == "random" and self.args[0] == 0.0

    @property
    def high_fraction(self):
        """Share of the cycles that are high, in the long run."""
        if self.kind == "random":
            return 1.0 - self.args[0]
        if self.kind == "bursty":
            return self.args[0] / sum(self.args)
        return 1.0

    @property
    def stall_cycles(self):
        """Cycles of a single stall (0 for the other patterns)."""
        return self.args[1] if self.kind == "stall" else 0

    def high(self, cycle):
        """Whether the signal may be high in ``cycle`` (call once per cycle, in order)."""
        if self.kind == "random":
            return self.args[0] == 0.0 or self._random() >= self.args[0]
        if self.kind == "stall":
            start, length = self.args
            return not start <= cycle < start + length
        while self._left == 0:
            self._run_high = not self._run_high
            mean = self.args[0] if self._run_high else self.args[1]
            self._left = 1 + int(self._random() * 2 * mean)
        self._left -= 1
        return self._run_high


def parse_pattern(spec):
    """``(kind, args)`` of a :class:`Pattern` spec; ``ValueError`` naming the rule if bad."""
    text = f"random:{float(spec)!r}" if isinstance(spec, (int, float, np.floating)) \
        and not isinstance(spec, bool) else str(spec)
    kind, _, text = text.partition(":")
    try:
        if kind == "random":
            (p,) = (float(v) for v in text.split(","))
            if 0.0 <= p < 1.0:
                return kind, (p,)
        elif kind in ("bursty", "stall"):
            a, b = (int(v) for v in text.split(","))
            if (kind == "bursty" and min(a, b) >= 1) or (kind == "stall" and min(a, b) >= 0):
                return kind, (a, b)
    except ValueError:
        pass
    raise ValueError(f"backpressure must be a probability in [0, 1), \"random:P\", "
                     f"\"bursty:H,L\" (mean cycles high and low, at least 1) or \"stall:S,N\" "
                     f"(N cycles low from cycle S), not {spec!r}")


def _ports(dut, prefix):
    ports = []
    for member in ("payload", "valid", "ready"):
        name = f"{prefix}__{member}"
        try:
            ports.append(getattr(dut, name))
        except AttributeError:
            raise SimulationError(f"design has no port {name}; a stream needs ports "
                                  f"{prefix}__payload, {prefix}__valid and {prefix}__ready") \
                from None
    return ports


def _unsigned(value):
    """A port value as an unsigned integer: a 1-bit port reads as a single ``Logic``, a wider
    one as a ``LogicArray``; both raise ``ValueError`` on X or Z bits."""
    if hasattr(value, "to_unsigned"):
        return value.to_unsigned()
    return int(value)


def _high(signal, name, cycle):
    value = signal.value
    try:
        return bool(value)
    except ValueError:
        raise SimulationError(f"{name} is {value} (not 0 or 1) at cycle {cycle}") from None


class StreamDriver:
    """Drives payload words into a stream sink of the design (``<prefix>__payload/valid/ready``).

    While no beat is pending, ``valid`` is held low in the cycles the ``gap`` pattern says;
    once ``valid`` is high it stays high until the beat transfers, as the stream rules require.

    Parameters
    ----------
    dut : cocotb handle
        The design's top level.
    words : list of int
        Payload words in transfer order.
    beats_per_frame : int
        Beats of one frame; the cycle of each frame's first beat is recorded.
    gap : float or str
        The :class:`Pattern` of cycles without ``valid`` between beats (a probability, by
        default 0).
    seed : int
        Seed of the gap pattern.
    prefix : str
        Port prefix (default ``"i_stream"``).

    Attributes
    ----------
    frame_start_cycles : list of int
        Cycle at which each frame's first beat transferred.
    """

    def __init__(self, dut, words, *, beats_per_frame, gap=0.0, seed=0, prefix="i_stream"):
        self.name = prefix
        self._payload, self._valid, self._ready = _ports(dut, prefix)
        self._words = list(words)
        self._beats_per_frame = _check_count("beats_per_frame", beats_per_frame)
        self._gap = Pattern(gap, seed=seed, name=prefix)
        self._index = 0
        self._presenting = False
        self._valid_level = None
        self._fire = False
        self.frame_start_cycles = []

    @property
    def beats_sent(self):
        return self._index

    @property
    def done(self):
        return self._index == len(self._words)

    def reset_values(self):
        """Set the idle values (``valid`` low); call before the clock starts."""
        self._valid.value = 0
        self._payload.value = 0
        self._valid_level = 0

    def drive(self, cycle):
        if not self._presenting and self._index < len(self._words):
            if self._gap.high(cycle):
                self._payload.value = self._words[self._index]
                self._presenting = True
        level = 1 if self._presenting else 0
        if level != self._valid_level:
            self._valid.value = level
            self._valid_level = level

    def sample(self, cycle):
        self._fire = self._presenting and _high(self._ready, f"{self.name}__ready", cycle)

    def commit(self, cycle):
        if self._fire:
            if self._index % self._beats_per_frame == 0:
                self.frame_start_cycles.append(cycle)
            self._index += 1
            self._presenting = False
            self._fire = False


class StreamMonitor:
    """Collects payload words from a stream source of the design (``<prefix>__payload/...``).

    ``ready`` is low in the cycles the ``stall`` pattern says.

    Parameters
    ----------
    dut : cocotb handle
        The design's top level.
    beats : int
        Number of beats to collect.
    beats_per_frame : int
        Beats of one frame; the cycle of each frame's last beat is recorded.
    stall : float or str
        The :class:`Pattern` of cycles with ``ready`` low (a probability, by default 0).
    seed : int
        Seed of the stall pattern.
    prefix : str
        Port prefix (default ``"o_stream"``).

    Attributes
    ----------
    words : list of int
        Payload words received, in order.
    frame_end_cycles : list of int
        Cycle at which each frame's last beat transferred.
    """

    def __init__(self, dut, beats, *, beats_per_frame, stall=0.0, seed=0, prefix="o_stream"):
        self.name = prefix
        self._payload, self._valid, self._ready = _ports(dut, prefix)
        self._beats = int(beats)
        self._beats_per_frame = _check_count("beats_per_frame", beats_per_frame)
        self._stall = Pattern(stall, seed=seed, name=prefix)
        self._ready_level = None
        self._fire = False
        self._word = None
        self.words = []
        self.frame_end_cycles = []

    @property
    def done(self):
        return len(self.words) >= self._beats

    @property
    def extra_beats(self):
        """Beats received beyond the ``beats`` expected."""
        return max(0, len(self.words) - self._beats)

    def hold_ready(self):
        """Keep ``ready`` high from now on (to catch beats after the expected ones)."""
        self._stall = Pattern(0.0)

    def reset_values(self):
        """Set the idle value of ``ready``; call before the clock starts."""
        self._ready_level = 1 if self._stall.always_high else 0
        self._ready.value = self._ready_level

    def drive(self, cycle):
        level = 1 if self._stall.high(cycle) else 0
        if level != self._ready_level:
            self._ready.value = level
            self._ready_level = level

    def sample(self, cycle):
        self._fire = bool(self._ready_level) and _high(self._valid, f"{self.name}__valid",
                                                       cycle)
        if self._fire:
            value = self._payload.value
            try:
                self._word = _unsigned(value)
            except ValueError:
                raise SimulationError(f"{self.name}__payload is {value} (has X or Z bits) in "
                                      f"beat {len(self.words)}, cycle {cycle}") from None

    def commit(self, cycle):
        if self._fire:
            self.words.append(self._word)
            if len(self.words) % self._beats_per_frame == 0:
                self.frame_end_cycles.append(cycle)
            self._fire = False


async def run_lockstep(clk, agents, *, max_cycles, on_progress=None, progress_every=1024):
    """Step ``agents`` once per clock cycle until all are done; return the cycle count.

    Cycle ``c`` is the ``c``-th rising edge of ``clk`` after this coroutine starts (start it
    right after reset is released, so cycle 1 is the first edge that sees reset low). Each
    agent has ``drive(cycle)``, ``sample(cycle)``, ``commit(cycle)`` and ``done``.

    Raises
    ------
    SimulationError
        When the agents are not done after ``max_cycles`` cycles, or an agent sees X or Z;
        its ``cycle`` attribute is the cycle reached.
    """
    from cocotb.triggers import FallingEdge, RisingEdge

    rising, falling = RisingEdge(clk), FallingEdge(clk)
    cycle = 0
    try:
        while not all(agent.done for agent in agents):
            if cycle >= max_cycles:
                raise SimulationError(f"timed out after {cycle} cycles")
            for agent in agents:
                agent.drive(cycle)
            await falling
            for agent in agents:
                agent.sample(cycle + 1)
            await rising
            cycle += 1
            for agent in agents:
                agent.commit(cycle)
            if on_progress is not None and cycle % progress_every == 0:
                on_progress(cycle)
    except SimulationError as error:
        error.cycle = cycle
        raise
    return cycle


async def run_cycles(clk, agents, cycles, *, start=0):
    """Step ``agents`` for exactly ``cycles`` clock cycles after cycle ``start``."""
    from cocotb.triggers import FallingEdge, RisingEdge

    rising, falling = RisingEdge(clk), FallingEdge(clk)
    for cycle in range(start, start + cycles):
        for agent in agents:
            agent.drive(cycle)
        await falling
        for agent in agents:
            agent.sample(cycle + 1)
        await rising
        for agent in agents:
            agent.commit(cycle + 1)
