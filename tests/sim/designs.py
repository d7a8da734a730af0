"""Small stand-in designs that follow the hardware contract, for testing the sim package.

Each is a ``wiring.Component`` with ``i_stream`` / ``o_stream`` vector streams, converted to
``top.v`` with a ``metadata.json`` beside it by :func:`write_design`.
"""

import json
import math
from pathlib import Path

import numpy as np
from amaranth import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.verilog import to_verilog

__all__ = ["AddConstant", "Stuck", "write_design"]


def _wrap(x, bits, is_signed):
    x = np.asarray(x, dtype=np.int64) & ((1 << bits) - 1)
    if is_signed:
        x = np.where(x >= (1 << (bits - 1)), x - (1 << bits), x)
    return x


class AddConstant(wiring.Component):
    """Adds ``addend`` to every element of a vector stream, through a register pipeline.

    Parameters
    ----------
    elements : int
        Elements per beat.
    in_shape, out_shape : ShapeLike
        Element shapes; the sum wraps to ``out_shape``.
    addend : int
        Constant added to each element (0 gives an identity pipeline).
    depth : int
        Register stages between input and output (the latency), at least 1.
    interval : int
        The design accepts at most one input beat every ``interval`` cycles.
    fault : tuple of int, optional
        ``(lane, value)``: when lane ``lane`` of an input beat equals ``value``, that lane's
        output is one too high. A deliberately broken design, for mismatch reports.

    Members
    -------
    i_stream : ``In(stream.Signature(data.ArrayLayout(in_shape, elements)))``
    o_stream : ``Out(stream.Signature(data.ArrayLayout(out_shape, elements)))``
    """

    def __init__(self, *, elements, in_shape, out_shape=None, addend=0, depth=2, interval=1,
                 fault=None):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        if interval < 1:
            raise ValueError(f"interval must be at least 1, not {interval}")
        self._elements = elements
        self._in_shape = Shape.cast(in_shape)
        self._out_shape = Shape.cast(in_shape if out_shape is None else out_shape)
        self._addend = addend
        self._depth = depth
        self._interval = interval
        self._fault = fault
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(self._in_shape, elements))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(self._out_shape, elements))),
        })

    @property
    def latency(self):
        return self._depth

    @property
    def interval(self):
        return self._interval

    def reference(self, frames, out_shape=None):
        """NumPy reference on ``frames`` ``(N, *shape)``; outputs get ``out_shape`` per frame."""
        frames = np.asarray(frames, dtype=np.int64)
        lanes = frames.reshape(-1, self._elements)
        y = lanes + self._addend
        if self._fault is not None:
            lane, value = self._fault
            y[:, lane] += lanes[:, lane] == value
        y = _wrap(y, self._out_shape.width, self._out_shape.signed)
        return y.reshape(len(frames), *(frames.shape[1:] if out_shape is None else out_shape))

    def elaborate(self, platform):
        m = Module()
        n = self._elements
        valid = [Signal(name=f"valid_{k}") for k in range(self._depth)]
        stage = [Signal(data.ArrayLayout(self._out_shape, n), name=f"stage_{k}")
                 for k in range(self._depth)]
        ready = [Signal(name=f"ready_{k}") for k in range(self._depth)]

        for k in range(self._depth):
            downstream = self.o_stream.ready if k == self._depth - 1 else ready[k + 1]
            m.d.comb += ready[k].eq(~valid[k] | downstream)

        # Throttle: after a beat is taken, wait interval - 1 cycles before the next one.
        wait = Signal(range(self._interval))
        accept = Signal()
        m.d.comb += accept.eq(ready[0] & (wait == 0))
        m.d.comb += self.i_stream.ready.eq(accept)
        with m.If(self.i_stream.valid & accept):
            m.d.sync += wait.eq(self._interval - 1)
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)

        with m.If(ready[0]):
            m.d.sync += valid[0].eq(self.i_stream.valid & accept)
            for i in range(n):
                x = self.i_stream.payload[i]
                y = x + self._addend
                if self._fault is not None and self._fault[0] == i:
                    y = Mux(x == self._fault[1], y + 1, y)
                m.d.sync += stage[0][i].eq(y)
        for k in range(1, self._depth):
            with m.If(ready[k]):
                m.d.sync += valid[k].eq(valid[k - 1])
                m.d.sync += stage[k].eq(stage[k - 1])

        m.d.comb += [
            self.o_stream.valid.eq(valid[-1]),
            self.o_stream.payload.eq(stage[-1]),
        ]
        return m


class Stuck(wiring.Component):
    """Accepts every input beat and never sends anything: a design that hangs."""

    def __init__(self, *, elements, shape):
        layout = data.ArrayLayout(shape, elements)
        super().__init__({"i_stream": In(stream.Signature(layout)),
                          "o_stream": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        seen = Signal()
        m.d.comb += self.i_stream.ready.eq(1)
        m.d.sync += seen.eq(seen | self.i_stream.valid)
        m.d.comb += self.o_stream.valid.eq(0)
        return m


def _stream_meta(shape, elements_per_beat, element_shape):
    element_shape = Shape.cast(element_shape)
    size = math.prod(shape)
    return {"shape": list(shape), "elements_per_beat": elements_per_beat,
            "beats_per_frame": size // elements_per_beat, "bits": element_shape.width,
            "signed": element_shape.signed}


def write_design(component, out_dir, *, in_shape, out_shape, elements_per_beat, in_element,
                 out_element, cycles_per_frame, latency):
    """Convert ``component`` to ``out_dir/top.v`` and write ``metadata.json`` beside it.

    Returns the metadata dict with ``"verilog"`` added, like ``hwgen.generate``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = to_verilog(component)
    (out_dir / "top.v").write_text(text)
    meta = {"top": "top",
            "input": _stream_meta(in_shape, elements_per_beat, in_element),
            "output": _stream_meta(out_shape, elements_per_beat, out_element),
            "cycles_per_frame": cycles_per_frame, "latency": latency}
    (out_dir / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta | {"verilog": str(out_dir / "top.v")}
