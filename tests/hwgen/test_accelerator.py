"""Whole accelerators in the Amaranth simulator against the golden; folding and reorder rules."""

import numpy as np
import pytest

import quant
from hwgen import FoldingError, check_folding, choose_folding
from hwgen import compile_graph
from hwgen.blocks import MatVecUnit
from hwgen.folding import lane_bits, widened_filters
from hwgen.passes import reorder_filters
from quant import graph as g

from .streams import run_stream
from .graphs import random_inputs, random_mlp


def rtl_accelerator(acc, x, backpressure, seed):
    beats = x.reshape(-1, acc.in_elements)
    out, _, _, when = run_stream(acc, beats, len(x) * acc.out_beats,
                                 in_bits=acc.graph.input.bits, out_bits=acc.out_bits,
                                 out_signed=acc.out_signed, out_count=acc.out_elements,
                                 in_gaps=backpressure, out_stalls=backpressure, seed=seed)
    return out.reshape(len(x), -1), when


def ref_accelerator(graph, x):
    return quant.run(graph, x)[graph.output]


NETWORKS = {
    "mixed_two_layer": dict(sizes=(20, 16, 6), high=(2, 0)),
    "three_layer_requant_out": dict(sizes=(12, 8, 8, 4), high=(4, 2, 1), final_requant=True),
    "fan_in_one": dict(sizes=(1, 4, 3), high=(0, 1)),
}
FOLDINGS = {
    "auto": None,
    "unfolded": "unfolded",
    "narrow": "narrow",
}


def folding_for(graph, style):
    if style is None:
        return None
    denses = [n for n in graph.nodes if n.op == "dense"]
    if style == "unfolded":
        return {n.name: n.tensors["weight"].shape for n in denses}
    # narrow: the smallest PE that widens no lane (the precisions repeat fold by fold), SIMD 1
    folding = {}
    last = denses[-1].name
    for n in denses:
        out = n.tensors["weight"].shape[0]
        folding[n.name] = (next(pe for pe in range(1, out + 1) if out % pe == 0 and
                                widened_filters(n, pe, fixed=n.name == last) == 0), 1)
    return folding


@pytest.mark.parametrize("backpressure", [0.0, 0.5], ids=["flow", "backpressure"])
@pytest.mark.parametrize("style", FOLDINGS)
@pytest.mark.parametrize("net", NETWORKS)
def test_accelerator_matches_golden(net, style, backpressure):
    seed = list(NETWORKS).index(net)
    graph = random_mlp(seed, **NETWORKS[net])
    acc = compile_graph(graph, folding_for(graph, FOLDINGS[style]))
    x = random_inputs(graph, 5, seed)
    got, when = rtl_accelerator(acc, x, backpressure, seed)
    expected = ref_accelerator(graph, x)
    bad = np.argwhere(got != expected)
    assert not bad.size, (f"input {bad[0][0]} output {bad[0][1]}: expected "
                          f"{expected[tuple(bad[0])]}, got {got[tuple(bad[0])]} (seed {seed})")
    if backpressure == 0:
        frame_ends = when[acc.out_beats - 1::acc.out_beats]
        assert list(np.diff(frame_ends[2:])) == [acc.cycles_per_frame] * (len(x) - 3)
        assert frame_ends[0] == acc.latency   # the first input beat transfers in cycle 0


def test_reorder_filters_keeps_golden_outputs():
    graph = random_mlp(4, sizes=(10, 12, 8, 5), high=(4, 2, 1), final_requant=True)
    folding = {"fc1": (3, 1), "fc2": (4, 1), "fc3": (5, 1)}
    reordered = reorder_filters(graph, folding)
    assert not np.array_equal(reordered["fc1"].tensors["weight"], graph["fc1"].tensors["weight"])
    check_folding(reordered, folding)
    x = random_inputs(graph, 50, 4)
    before, after = quant.run(graph, x), quant.run(reordered, x)
    np.testing.assert_array_equal(after[graph.output], before[graph.output])
    # The last layer keeps the user's order.
    np.testing.assert_array_equal(reordered["fc3"].tensors["weight_bits"],
                                  graph["fc3"].tensors["weight_bits"])


def test_choose_folding_balances_layers():
    graph = random_mlp(1, sizes=(64, 32, 10), high=(4, 1))
    folding = choose_folding(graph, mac_budget=32)
    check_folding(graph, folding)
    cycles = {n: (graph[n].tensors["weight"].shape[0] // pe) *
                 (graph[n].tensors["weight"].shape[1] // simd) for n, (pe, simd) in folding.items()}
    assert cycles["fc1"] == 64 * 32 // 32
    assert cycles["fc2"] <= cycles["fc1"]


def test_folding_errors_list_every_problem():
    graph = random_mlp(2, sizes=(20, 16, 6), high=(2, 1))
    with pytest.raises(FoldingError) as info:
        check_folding(graph, {"fc1": (3, 7), "fc2": (2, 1), "fc9": (1, 1)})
    message = str(info.value)
    assert "layer 'fc1': PE 3 does not divide out_features 16; choose one of 1, 2, 4, 8, 16" \
        in message
    assert "layer 'fc1': SIMD 7 does not divide in_features 20" in message
    assert "not dense layers of the model: fc9" in message
    assert "precision" not in message   # any PE suits any mix of precisions


def test_uneven_precisions_widen_lanes_and_stay_exact():
    """16 filters, 2 of them 8-bit, in 4 folds of 4 lanes: the 8-bit filters share one lane
    (reordered), so one of the four lanes is 8 bits wide; fc2 (the output, fixed order) gets
    its lanes widened where its own 8-bit filter falls."""
    graph = random_mlp(2, sizes=(20, 16, 6), high=(2, 1))
    folding = {"fc1": (4, 2), "fc2": (2, 1)}
    check_folding(graph, folding)
    assert lane_bits(graph["fc1"], 4, fixed=False).tolist() == [8, 4, 4, 4]
    assert sorted(lane_bits(graph["fc2"], 2, fixed=True).tolist()) == [4, 8]
    acc = compile_graph(graph, folding)
    units = {name: block for name, block in acc.blocks if isinstance(block, MatVecUnit)}
    assert units["fc1"].lane_bits.tolist() == [8, 4, 4, 4]
    x = np.random.default_rng(4).integers(0, 32, (6, 20))
    got, *_ = run_stream(acc, x.reshape(-1, acc.in_elements), 6 * acc.out_beats,
                         in_bits=graph.input.bits, out_bits=acc.out_bits,
                         out_signed=acc.out_signed, out_count=acc.out_elements)
    np.testing.assert_array_equal(got.reshape(6, -1), quant.run(graph, x)[graph.output])


@pytest.mark.parametrize("simd", [1, 2, 4])
def test_a_requantize_on_the_input_rescales_it_per_feature(simd):
    """A requantizer before the first weight layer: its multipliers follow the stream's beat,
    and a width converter gives the dense layer its SIMD."""
    rng = np.random.default_rng(simd)
    graph = quant.QGraph(quant.InputSpec((4,), 8, False),
                         [g.requantize("scale", rng.integers(1, 40, 4), 6, 4),
                          g.dense("fc", rng.integers(-7, 8, (2, 4)), np.zeros(2, np.int64),
                                  np.full(2, 4))])
    acc = compile_graph(graph, {"fc": (1, simd)})
    x = rng.integers(0, 256, (6, 4))
    got, _ = rtl_accelerator(acc, x, 0.3, simd)
    np.testing.assert_array_equal(got, ref_accelerator(graph, x))


def test_rom_styles_name_matrix_vector_layers_and_known_styles():
    graph = random_mlp(0)
    acc = compile_graph(graph, {"fc1": (4, 4), "fc2": (2, 4)}, rom_styles={"fc1": "logic"})
    assert [b.rom_style for _, b in acc.blocks if isinstance(b, MatVecUnit)] == ["logic", None]
    with pytest.raises(ValueError, match=r"layer 'act1': rom_styles names a layer that has no "
                                         r"weight ROMs of a matrix-vector unit \(dense layers "
                                         r"and convolutions: fc1, fc2\); layer 'fc2': rom_style "
                                         r"must be one of None, 'block', 'logic', not 'lutram'"):
        compile_graph(graph, {"fc1": (4, 4), "fc2": (2, 4)},
                      rom_styles={"act1": "block", "fc2": "lutram"})
