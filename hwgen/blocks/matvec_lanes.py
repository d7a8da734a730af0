"""MatVecLanes: several output positions per cycle, one matrix-vector unit per position."""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import FoldingError
from ._util import check_count, divisors, element_shape
from .matvec import PIPELINE_DEPTH, MatVecUnit
from .timing import MatVecTiming, Timed

__all__ = ["MatVecLanes"]


class MatVecLanes(Timed, wiring.Component):
    """``positions`` :class:`MatVecUnit` s side by side, each unfolded (``pe = out_features``,
    ``simd = in_features``), all fed by one stream.

    Each input beat holds ``positions`` whole input vectors (the windows of consecutive output
    positions, as a :class:`~hwgen.blocks.ParallelWindow` gives them), one per unit; each
    output beat holds every unit's ``out_features`` accumulators, position after position, so
    a map stays in HWC order. The units see the same beats and the same back-pressure, so
    they run in lock step: a beat is taken when every unit is ready (a unit's ready depends
    on its registers only) and offered when every unit has its result.

    Every unit holds its own copy of the weights.

    Parameters
    ----------
    positions : int
        Output positions per beat; divides ``vectors``.
    vectors : int
        Input vectors per frame (output positions of the convolution).
    weight, bias, weight_bits, in_bits, in_signed, multiplier, lut_lanes, rom_style
        As :class:`MatVecUnit`'s, for every unit.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in_shape, positions * in_features)))
    o_stream : Out(stream.Signature(ArrayLayout(signed(acc_bits), positions * out_features)))
    """

    def __init__(self, *, positions, weight, vectors, name="dense", **unit):
        positions = check_count("positions", positions, name)
        vectors = check_count("vectors", vectors, name)
        if vectors % positions:
            raise FoldingError(f"layer '{name}': positions {positions} does not divide the "
                               f"{vectors} output positions; choose one of "
                               f"{', '.join(map(str, divisors(vectors)))}")
        out_features, in_features = weight.shape
        unit |= {"pe": unit.get("pe", out_features), "simd": unit.get("simd", in_features)}
        if (unit["pe"], unit["simd"]) != (out_features, in_features):
            raise FoldingError(f"layer '{name}': with {positions} positions a beat every unit "
                               f"is unfolded: PE must be {out_features} and SIMD "
                               f"{in_features}, not {unit['pe']} and {unit['simd']}")
        self._units = [MatVecUnit(weight=weight, vectors=vectors // positions,
                                  name=f"{name}_p{j}", **unit) for j in range(positions)]
        first = self._units[0]
        self._positions, self._vectors, self._name = positions, vectors, name
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(
                element_shape(first.in_bits, first.in_signed), positions * in_features))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(
                signed(first.acc_bits), positions * out_features))),
        })

    positions = property(lambda self: self._positions)
    vectors = property(lambda self: self._vectors)
    units = property(lambda self: list(self._units))
    in_features = property(lambda self: self._units[0].in_features)
    out_features = property(lambda self: self._units[0].out_features)
    pe = property(lambda self: self._units[0].pe)
    #: Inputs per cycle over all the units (the layer's folding: ``positions`` whole windows).
    simd = property(lambda self: self._positions * self._units[0].simd)
    in_bits = property(lambda self: self._units[0].in_bits)
    in_signed = property(lambda self: self._units[0].in_signed)
    acc_bits = property(lambda self: self._units[0].acc_bits)
    weight_bits = property(lambda self: self._units[0].weight_bits)
    lane_bits = property(lambda self: self._units[0].lane_bits)
    rom_style = property(lambda self: self._units[0].rom_style)

    @property
    def dsp_count(self):
        """Hardware multipliers of all the units."""
        return self._positions * self._units[0].dsp_count

    @property
    def lut_lane_count(self):
        """Lanes that multiply in LUTs, over all the units."""
        return self._positions * self._units[0].lut_lane_count

    @classmethod
    def timing_of(cls, *, positions, weight, vectors, **_):
        """One vector per unit each beat: a unit's timing, ``vectors / positions`` vectors of
        one beat each."""
        return MatVecTiming(1, 1, vectors // positions, PIPELINE_DEPTH)

    timing = property(lambda self: self.timing_of(positions=self._positions,
                                                  weight=self._units[0]._weight,
                                                  vectors=self._vectors))

    def reference(self, x):
        return self._units[0].reference(x)

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_stream, self.o_stream
        word = self.in_features * element_shape(self.in_bits, self.in_signed).width
        taken = Signal()
        m.d.comb += [taken.eq(Cat(u.i_stream.ready for u in self._units).all()),
                     i.ready.eq(taken),
                     o.valid.eq(Cat(u.o_stream.valid for u in self._units).all())]
        for j, unit in enumerate(self._units):
            m.submodules[f"p{j}"] = unit
            m.d.comb += [
                unit.i_stream.valid.eq(i.valid & taken),
                unit.i_stream.payload.eq(i.payload.as_value()[j * word:(j + 1) * word]),
                unit.o_stream.ready.eq(o.ready & o.valid),
            ]
        m.d.comb += o.payload.eq(Cat(u.o_stream.payload.as_value() for u in self._units))
        return m
