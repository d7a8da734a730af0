"""MatVecLanes: one unfolded MatVecUnit per output position, in lock step, against NumPy and
its cycle model."""

import numpy as np
import pytest

from hwgen import FoldingError
from hwgen.blocks import MatVecLanes
from quant import numerics

from .streams import run_stream


def random_layer(rng, out_features, in_features, bits=4):
    limit = (1 << (bits - 1)) - 1
    weight = rng.integers(-limit, limit + 1, (out_features, in_features))
    return weight, rng.integers(-50, 51, out_features), np.full(out_features, bits)


@pytest.mark.parametrize("positions, multiplier, stalls", [
    (1, None, 0.0), (2, "xcup", 0.3), (4, "xc7", 0.5), (8, None, 0.2)])
def test_positions_match_numpy_under_back_pressure(positions, multiplier, stalls):
    rng = np.random.default_rng(positions)
    weight, bias, bits = random_layer(rng, 5, 12)
    vectors = 4 * positions
    unit = MatVecLanes(positions=positions, weight=weight, bias=bias, weight_bits=bits,
                       in_bits=4, in_signed=False, multiplier=multiplier, vectors=vectors)
    x = rng.integers(0, 16, (2 * vectors, 12))           # two frames of input vectors
    out, _, _, _ = run_stream(unit, x.reshape(-1, positions * 12), len(x) // positions,
                              in_bits=4, out_bits=unit.acc_bits, out_signed=True,
                              out_count=positions * 5, in_gaps=0.3, out_stalls=stalls,
                              seed=positions, drain=20)
    expected = numerics.dense(x, weight, bias)
    np.testing.assert_array_equal(out.reshape(-1, 5), expected)
    assert unit.simd == positions * 12 and unit.pe == 5


def test_measured_cycles_equal_the_model():
    rng = np.random.default_rng(7)
    weight, bias, bits = random_layer(rng, 3, 6)
    unit = MatVecLanes(positions=4, weight=weight, bias=bias, weight_bits=bits, in_bits=5,
                       in_signed=True, vectors=16)
    x = rng.integers(-16, 16, (32, 6))
    _, _, taken, when = run_stream(unit, x.reshape(-1, 24), 8, in_bits=5,
                                   out_bits=unit.acc_bits, out_signed=True, out_count=12)
    assert when == unit.beat_times(taken)
    assert unit.cycles_per_frame == 4


def test_folded_units_are_refused():
    rng = np.random.default_rng(0)
    weight, bias, bits = random_layer(rng, 4, 8)
    common = dict(weight=weight, bias=bias, weight_bits=bits, in_bits=4, in_signed=False,
                  name="conv2")
    with pytest.raises(FoldingError, match="layer 'conv2': with 2 positions a beat every unit "
                                           "is unfolded: PE must be 4 and SIMD 8, not 2 and 8"):
        MatVecLanes(positions=2, vectors=8, pe=2, **common)
    with pytest.raises(FoldingError, match="layer 'conv2': positions 3 does not divide the 8 "
                                           "output positions; choose one of 1, 2, 4, 8"):
        MatVecLanes(positions=3, vectors=8, **common)
