"""Self-test top: the accelerator checks itself at power-up against golden outputs in ROM.

:class:`SelfTest` streams test frames from a ROM into an accelerator, compares every output
beat with the golden's (a second ROM) and reports the verdict; no host is needed.
:class:`SelfTestTop` puts it on a board: the board clock drives it (through a PLL on ECP5 or
an MMCM on Xilinx when the board clock is not the clock wanted) and LEDs show the verdict:

* LED 0: done (every expected output beat arrived),
* LED 1: passed (done, no mismatch, no extra beat, no time-out),
* LED 2: failed (a mismatch, an extra beat, or no output for ``stall_limit`` cycles),
* LED 3: heartbeat (about 1 Hz: the clock runs).
"""

import math

import numpy as np
from amaranth.hdl import Cat, ClockDomain, Elaboratable, Instance, Module, Mux, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

import quant
from quant.numerics import is_int

from .errors import BoardError

__all__ = ["selftest_vectors", "SelfTest", "SelfTestTop", "ecp5_pll_params",
           "xilinx_mmcm_params", "LEDS"]

#: What each LED shows.
LEDS = {0: "done", 1: "passed", 2: "failed", 3: "heartbeat"}

# Test words the source's queue holds (enough for one per cycle), and the cycles from reading
# a word to offering it: the ROM, a register, the queue.
_SOURCE_DEPTH = 6
_SOURCE_LATENCY = 4


def selftest_vectors(graph, count=4, seed=0):
    """Test inputs for ``graph`` and their golden outputs: ``(inputs, expected)``.

    The first two frames are the ends of the input range (all minimum, all maximum); the rest
    are uniform random in the range, from ``seed``.
    """
    if not is_int(count) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    lo, hi = graph.input.range
    shape = tuple(graph.input.shape)
    rng = np.random.default_rng(seed)
    frames = [np.full(shape, lo), np.full(shape, hi)][:count]
    frames += list(rng.integers(lo, hi + 1, (count - len(frames), *shape)))
    inputs = np.stack(frames).astype(np.int64)
    return inputs, quant.run(graph, inputs)[graph.output]


class SelfTest(wiring.Component):
    """Runs ``inputs`` through ``accelerator`` after reset and compares with ``expected``.

    Parameters
    ----------
    accelerator : hwgen.Accelerator
    inputs : ndarray of int, shape (N, *input shape)
        Test frames, baked into a ROM as the accelerator's input stream carries them
        (``in_format``: feature maps pixel by pixel, see :attr:`hwgen.Accelerator.in_format`).
    expected : ndarray of int, shape (N, *output shape)
        The outputs the accelerator must produce (the golden's), baked into a ROM in the
        output stream's format (``out_format``).
    stall_limit : int, optional
        Cycles without an output beat, before all arrived, after which the test fails. By
        default four times (latency + cycles per frame) plus 256.

    The ROMs hold ``in_words`` and ``out_words``, one payload word per beat.

    Members
    -------
    done : Out(1)
        Every expected output beat arrived (held).
    passed : Out(1)
        Done, with no mismatch, no extra beat and no time-out.
    failed : Out(1)
        A mismatch, an extra output beat, or a time-out (held).
    mismatches : Out(16)
        Output beats that differ from the expected ones (saturating).
    timed_out : Out(1)
        No output beat for ``stall_limit`` cycles before all arrived.
    """

    done: Out(1)
    passed: Out(1)
    failed: Out(1)
    mismatches: Out(16)
    timed_out: Out(1)

    def __init__(self, accelerator, inputs, expected, *, stall_limit=None):
        from hwgen import Accelerator

        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator must be an hwgen.Accelerator, not {accelerator!r}")
        graph = accelerator.graph
        in_shape = tuple(graph.input.shape)
        out_shape = tuple(graph.shapes()[graph.output])
        inputs, expected = np.asarray(inputs), np.asarray(expected)
        if inputs.ndim < 1 or inputs.shape[1:] != in_shape or len(inputs) == 0:
            raise ValueError(f"inputs must have shape (N, {', '.join(map(str, in_shape))}) "
                             f"with N >= 1, not {inputs.shape}")
        if expected.shape != (len(inputs), *out_shape):
            raise ValueError(f"expected must have shape {(len(inputs), *out_shape)}, not "
                             f"{expected.shape}")
        self._acc = accelerator
        self._inputs, self._expected = inputs.copy(), expected.copy()
        self._in_format, self._out_format = accelerator.in_format, accelerator.out_format
        self._in_words = self._in_format.pack(inputs)
        self._out_words = self._out_format.pack(expected)
        if stall_limit is None:
            stall_limit = 4 * (accelerator.latency + accelerator.cycles_per_frame) + 256
        if not is_int(stall_limit) or stall_limit < 1:
            raise ValueError(f"stall_limit must be a positive integer, not {stall_limit!r}")
        self._stall_limit = stall_limit
        super().__init__()

    accelerator = property(lambda self: self._acc)
    frames = property(lambda self: len(self._inputs))
    stall_limit = property(lambda self: self._stall_limit)
    inputs = property(lambda self: self._inputs.copy())
    expected = property(lambda self: self._expected.copy())
    in_format = property(lambda self: self._in_format)
    out_format = property(lambda self: self._out_format)
    in_words = property(lambda self: list(self._in_words))
    out_words = property(lambda self: list(self._out_words))

    @property
    def cycles(self):
        """Cycles the test needs from reset to ``done`` when it passes (an upper bound)."""
        acc = self._acc
        return (acc.latency + self.frames * max(acc.cycles_per_frame, acc.in_beats)
                + _SOURCE_LATENCY + 8)

    def elaborate(self, platform):
        m = Module()
        acc = self._acc
        m.submodules.accelerator = acc
        n_in, n_out = len(self._in_words), len(self._out_words)
        in_bits = acc.i_stream.payload.shape().size
        out_bits = acc.o_stream.payload.shape().size

        # Source: the ROM is read one word per cycle while the queue in front of the
        # accelerator has room for it (words read and not yet taken are counted), and each word
        # is registered once more on its way (a block RAM's output is slow), so neither the
        # ROM address nor its enable depends on the accelerator's ready.
        m.submodules.inputs = inputs = Memory(shape=in_bits, depth=n_in, init=self._in_words)
        m.submodules.source = source = SyncFIFOBuffered(width=in_bits, depth=_SOURCE_DEPTH)
        rd = inputs.read_port()
        sent = Signal(range(n_in + 1))
        held = Signal(range(_SOURCE_DEPTH + 1))
        read, read_q, data_q = Signal(), Signal(2), Signal(in_bits, reset_less=True)
        taken = acc.i_stream.valid & acc.i_stream.ready
        m.d.comb += [
            read.eq((sent < n_in) & (held < _SOURCE_DEPTH)),
            rd.addr.eq(sent),
            source.w_data.eq(data_q),
            source.w_en.eq(read_q[1]),
            acc.i_stream.valid.eq(source.r_rdy),
            acc.i_stream.payload.eq(source.r_data),
            source.r_en.eq(acc.i_stream.ready),
        ]
        m.d.sync += [
            read_q.eq(Cat(read, read_q[0])),
            data_q.eq(rd.data),
            held.eq(held + read - taken),
        ]
        with m.If(read):
            m.d.sync += sent.eq(sent + 1)

        # Sink: always ready. Beat k is registered while the expected ROM reads word k; the
        # next cycle compares them, the one after counts a mismatch.
        m.submodules.expected = expected = Memory(shape=out_bits, depth=n_out,
                                                  init=self._out_words)
        erd = expected.read_port()
        received = Signal(range(n_out + 1))
        fire = acc.o_stream.valid
        got, check, bad, extra = (Signal(out_bits, reset_less=True), Signal(), Signal(),
                                  Signal())
        m.d.comb += [
            acc.o_stream.ready.eq(1),
            erd.addr.eq(Mux(received < n_out, received, 0)),
            erd.en.eq(fire),
        ]
        m.d.sync += [
            check.eq(fire & (received < n_out)),
            bad.eq(check & (got != erd.data)),
        ]
        with m.If(fire):
            m.d.sync += got.eq(acc.o_stream.payload.as_value())
            with m.If(received < n_out):
                m.d.sync += received.eq(received + 1)
            with m.Else():
                m.d.sync += extra.eq(1)
        with m.If(bad & (self.mismatches != 0xFFFF)):
            m.d.sync += self.mismatches.eq(self.mismatches + 1)

        # Verdict: done three cycles after the last beat, when its comparison has counted.
        all_received = received == n_out
        settle = Signal(3)
        m.d.sync += settle.eq(Cat(all_received, settle[:2]))
        idle = Signal(range(self._stall_limit + 1))
        with m.If(fire | all_received):
            m.d.sync += idle.eq(0)
        with m.Elif(idle == self._stall_limit):
            m.d.sync += self.timed_out.eq(1)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)
        failed = self.timed_out | extra | (self.mismatches != 0)
        m.d.comb += [
            self.done.eq(settle[2]),
            self.failed.eq(failed),
            self.passed.eq(settle[2] & ~failed),
        ]
        return m


def ecp5_pll_params(f_in_mhz, f_out_mhz):
    """Dividers of an ECP5 EHXPLLL that makes ``f_out`` from ``f_in`` (CLKOP as feedback).

    ``f_out = f_in * CLKFB_DIV / CLKI_DIV`` with the VCO (``f_out * CLKOP_DIV``) in
    400..800 MHz and the phase detector input (``f_in / CLKI_DIV``) at least 3.125 MHz.

    Returns
    -------
    dict
        ``CLKI_DIV``, ``CLKFB_DIV``, ``CLKOP_DIV``, the frequency reached and the VCO.
    """
    best = None
    for clki in range(1, 129):
        pfd = f_in_mhz / clki
        if pfd < 3.125:
            break
        if pfd > 400:
            continue
        for clkfb in range(1, 81):
            f_out = pfd * clkfb
            for clkop in range(1, 129):
                vco = f_out * clkop
                if 400 <= vco <= 800:
                    key = (abs(f_out - f_out_mhz), abs(vco - 600))
                    if best is None or key < best[0]:
                        best = (key, {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
                                      "f_out_mhz": f_out, "vco_mhz": vco})
    if best is None or best[0][0] > 0.01 * f_out_mhz:
        raise BoardError(f"an ECP5 PLL cannot make {f_out_mhz} MHz from {f_in_mhz} MHz")
    return best[1]


#: MMCM primitive, VCO range (MHz) and largest feedback multiplier of each Xilinx family
#: (DS181/DS182, DS892, DS922/DS925, slowest speed grades).
_MMCM = {"series7": ("MMCME2_BASE", 600.0, 1200.0, 64),
         "ultrascale": ("MMCME3_BASE", 600.0, 1440.0, 128),
         "ultrascaleplus": ("MMCME4_BASE", 800.0, 1600.0, 128)}


def xilinx_mmcm_params(family, f_in_mhz, f_out_mhz):
    """Settings of a Xilinx MMCM that makes ``f_out`` from ``f_in``.

    ``f_out = f_in * CLKFBOUT_MULT_F / (DIVCLK_DIVIDE * CLKOUT0_DIVIDE_F)`` with integer
    settings, the VCO in the family's range (nearest 1 GHz preferred) and the phase detector
    input in 10..450 MHz.

    Returns
    -------
    dict
        ``primitive``, ``DIVCLK_DIVIDE``, ``CLKFBOUT_MULT_F``, ``CLKOUT0_DIVIDE_F``, the
        frequency reached and the VCO.
    """
    if family not in _MMCM:
        raise BoardError(f"no MMCM settings for Xilinx family {family}")
    primitive, vco_lo, vco_hi, max_mult = _MMCM[family]
    best = None
    for divide in range(1, 11):
        pfd = f_in_mhz / divide
        if not 10 <= pfd <= 450:
            continue
        for mult in range(2, max_mult + 1):
            vco = pfd * mult
            if not vco_lo <= vco <= vco_hi:
                continue
            out_div = max(1, min(128, round(vco / f_out_mhz)))
            f_out = vco / out_div
            key = (abs(f_out - f_out_mhz), abs(vco - 1000), divide)
            if best is None or key < best[0]:
                best = (key, {"primitive": primitive, "DIVCLK_DIVIDE": divide,
                              "CLKFBOUT_MULT_F": mult, "CLKOUT0_DIVIDE_F": out_div,
                              "f_out_mhz": f_out, "vco_mhz": vco})
    if best is None or best[0][0] > 0.01 * f_out_mhz:
        raise BoardError(f"a {primitive} cannot make {f_out_mhz} MHz from {f_in_mhz} MHz")
    return best[1]


class SelfTestTop(Elaboratable):
    """A :class:`SelfTest` on a board: clock (direct, or from a PLL or MMCM) and LEDs.

    Parameters
    ----------
    selftest : SelfTest or boards.engine_selftest.EngineSelfTest
    clock_mhz : float, optional
        Clock to run at. ``None`` or the board clock's frequency uses the board clock;
        another frequency comes from an EHXPLLL (ECP5) or an MMCM (Xilinx 7-series,
        UltraScale, UltraScale+) whose lock releases the reset.
    """

    def __init__(self, selftest, *, clock_mhz=None):
        # Any self-test with the verdict members: SelfTest, or the engine's
        # (boards.engine_selftest.EngineSelfTest).
        if not all(hasattr(selftest, name) for name in ("done", "passed", "failed")):
            raise TypeError(f"selftest must be a SelfTest or an EngineSelfTest, not "
                            f"{selftest!r}")
        self._selftest = selftest
        self._clock_mhz = clock_mhz

    selftest = property(lambda self: self._selftest)

    def _ecp5_pll(self, m, platform, board_mhz, clock_mhz, clk_out, locked):
        pll = ecp5_pll_params(board_mhz, clock_mhz)
        m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk,
                                                                      dir="-"))
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{board_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll['f_out_mhz']:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_CLKI_DIV=pll["CLKI_DIV"], p_CLKFB_DIV=pll["CLKFB_DIV"],
            p_FEEDBK_PATH="CLKOP", p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=pll["CLKOP_DIV"], p_CLKOP_CPHASE=pll["CLKOP_DIV"] - 1,
            p_CLKOP_FPHASE=0,
            i_RST=0, i_STDBY=0, i_CLKI=clk_in.i, i_CLKFB=clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=locked)
        return pll["f_out_mhz"]

    def _xilinx_mmcm(self, m, platform, board_mhz, clock_mhz, clk_out, locked):
        mmcm = xilinx_mmcm_params(platform.family, board_mhz, clock_mhz)
        m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk,
                                                                      dir="-"))
        feedback, unbuffered = Signal(name="mmcm_feedback"), Signal(name="mmcm_clk")
        m.submodules.mmcm = Instance(
            mmcm["primitive"],
            p_BANDWIDTH="OPTIMIZED", p_CLKIN1_PERIOD=round(1000 / board_mhz, 3),
            p_DIVCLK_DIVIDE=mmcm["DIVCLK_DIVIDE"],
            p_CLKFBOUT_MULT_F=float(mmcm["CLKFBOUT_MULT_F"]),
            p_CLKOUT0_DIVIDE_F=float(mmcm["CLKOUT0_DIVIDE_F"]),
            i_CLKIN1=clk_in.i, i_CLKFBIN=feedback, o_CLKFBOUT=feedback,
            o_CLKOUT0=unbuffered, o_LOCKED=locked, i_RST=0, i_PWRDWN=0)
        m.submodules.clock_buffer = Instance("BUFG", i_I=unbuffered, o_O=clk_out)
        return mmcm["f_out_mhz"]

    def elaborate(self, platform):
        from amaranth.build import ResourceError
        from amaranth.vendor import LatticeECP5Platform, XilinxPlatform

        m = Module()
        m.submodules.selftest = test = self._selftest
        board_mhz = platform.default_clk_frequency / 1e6
        clock_mhz = board_mhz if self._clock_mhz is None else float(self._clock_mhz)
        if abs(clock_mhz - board_mhz) > 1e-6:
            m.domains.sync = sync = ClockDomain("sync")
            clk_out, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
            # nextpnr-ecp5 and Vivado derive the constraint of the generated clock from the
            # board clock's (the platform constrains that input pin).
            if isinstance(platform, LatticeECP5Platform):
                clock_mhz = self._ecp5_pll(m, platform, board_mhz, clock_mhz, clk_out, locked)
            elif isinstance(platform, XilinxPlatform):
                clock_mhz = self._xilinx_mmcm(m, platform, board_mhz, clock_mhz, clk_out,
                                              locked)
            else:
                raise BoardError(f"a {clock_mhz:g} MHz clock from the {board_mhz:g} MHz board "
                                 f"clock needs a PLL, provided on ECP5 and Xilinx only")
            m.d.comb += sync.clk.eq(clk_out)
            m.submodules.reset = ResetSynchronizer(~locked, domain="sync")

        leds = []
        while len(leds) < len(LEDS):
            try:
                platform.lookup("led", len(leds))
            except ResourceError:  # the board has fewer LEDs
                break
            led = io.Buffer("o", platform.request("led", len(leds), dir="-"))
            m.submodules[f"led{len(leds)}"] = led
            leds.append(led)
        if len(leds) < 3:
            raise BoardError(f"the self-test shows done, passed and failed on three LEDs; "
                             f"{type(platform).__name__} has {len(leds)}")
        beat = Signal(max(1, int(math.log2(clock_mhz * 1e6))))
        m.d.sync += beat.eq(beat + 1)
        shown = [test.done, test.passed, test.failed, beat[-1]]
        for led, value in zip(leds, shown):
            m.d.comb += led.o.eq(value)
        return m
