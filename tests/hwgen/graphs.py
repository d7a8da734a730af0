"""Random QGraphs for tests: dense layers with FILM-QNN style per-filter precision."""

import numpy as np

import quant
from quant import graph as g


def random_mlp(seed, sizes=(20, 16, 6), high=(2, 0), in_bits=8, a_bits=5, final_requant=False):
    """A dense/requantize chain; ``high[k]`` filters of layer ``k`` get 8-bit weights."""
    rng = np.random.default_rng(seed)
    nodes = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bits = np.full(fan_out, 4)
        bits[rng.choice(fan_out, high[k], replace=False)] = 8
        hi = (1 << (bits - 1)) - 1
        weight = rng.integers(-hi[:, None], hi[:, None] + 1, (fan_out, fan_in))
        nodes.append(g.dense(f"fc{k + 1}", weight, rng.integers(-200, 200, fan_out), bits))
        if k < len(sizes) - 2 or final_requant:
            nodes.append(g.requantize(f"act{k + 1}", rng.integers(1, 64, fan_out),
                                      10 + k, a_bits))
    return quant.QGraph(quant.InputSpec((sizes[0],), in_bits, False), nodes)


def random_inputs(graph, count, seed):
    lo, hi = graph.input.range
    return np.random.default_rng(seed).integers(lo, hi + 1, (count, *graph.input.shape))


def budget_with_lut_lanes_and_block_roms(graph, device="xczu9eg", clock_mhz=200):
    """The smallest utilization, in steps of 0.001, at which :func:`hwgen.compile` both keeps
    weight ROMs in block RAM and moves MAC lanes to LUTs. Which budget does that follows the
    cost model, so the tests that need such a design look for it."""
    import hwgen
    for permille in range(1, 100):
        try:
            options = hwgen.compile(graph, device=device, clock_mhz=clock_mhz,
                                    utilization=permille / 1000).build_options
        except hwgen.DesignError:            # the budget is too small for any design
            continue
        if options["rom_styles"] and any(options["lut_lanes"].values()):
            return permille / 1000
    raise AssertionError(f"no budget up to 0.1 gives both on {device}")
