"""A small CNN for the engine's board builds: two convolutions of mixed-precision filters, a
max pool, requantizers and a dense layer, small enough for a self-test image in block RAM."""

import numpy as np

import quant
from hwgen.engine import EngineConfig
from quant import graph as g


def small_cnn(seed=0):
    """(3, 8, 8) 8-bit unsigned input -> conv 3x3 8 -> requantize -> max pool 2 -> conv 3x3 8
    -> requantize -> flatten -> dense 10."""
    rng = np.random.default_rng(seed)

    def conv(name, outs, ins, bits):
        w = rng.integers(-7, 8, (outs, ins, 3, 3))
        wide = np.flatnonzero(bits == 8)
        w[wide] = rng.integers(-127, 128, (len(wide), ins, 3, 3))
        return g.conv2d(name, w, rng.integers(-99, 99, outs), bits, padding=1)

    bits = np.array([4, 8, 4, 4, 4, 4, 8, 4])
    return quant.QGraph(quant.InputSpec((3, 8, 8), 8, False), [
        conv("conv1", 8, 3, bits),
        g.requantize("act1", rng.integers(1, 1 << 10, 8), 14, 4, False),
        g.maxpool2d("pool", 2, 2),
        conv("conv2", 8, 8, bits[::-1].copy()),
        g.requantize("act2", rng.integers(1, 1 << 10, 8), 14, 4, False),
        g.flatten("flat"),
        g.dense("fc", rng.integers(-7, 8, (10, 128)), rng.integers(-9, 9, 10),
                np.full(10, 4)),
    ])


def small_engine(family, **fields):
    """A 4x4 engine with one 8-bit lane and small buffers, its lanes packed for ``family``."""
    return EngineConfig(**{"tm": 4, "tn": 4, "lane_bits": (4, 4, 4, 8), "input_words": 256,
                           "output_words": 128, "weight_words": 128, "family": family}
                        | fields)
