"""The engine compiler: its program, run by the engine's reference, equals the golden on every
tensor it writes; filter placement; descriptors and parameters round-trip; and every layer it
cannot run is named up front."""

import dataclasses

import numpy as np
import pytest

import quant
from hwgen.engine import Descriptor, EngineConfig, compile_program, engine_golden, run_image
from hwgen.engine.config import crossbar_sources
from hwgen.engine.image import place_filters
from hwgen.engine.params import (MAX_PASSES, FoldParams, decode_params, encode_params,
                                 param_layout)
from hwgen.engine.weights import kstep_widths, unpack_fields
from hwgen.errors import UnsupportedLayerError
from quant import graph as g
from quant.export import export
from quant.models import mnist_cnn, resnet_mnist
from quant.nn import fold_batchnorms
from tests.graphgen import ENGINE_CONFIGS, random_case, random_engine_case, random_inputs

from .test_engine import NARROW, global_pool_graph, uneven_passes

SMALL = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=512, output_words=256,
                     weight_words=256, addr_bits=20)


def assert_every_tensor_equal(graph, config, frames):
    program = compile_program(graph, config)
    for x in frames:
        image = run_image(program.load_input(bytearray(program.image), x), config)
        golden = engine_golden(program.layers, quant.run(graph, x[None]))
        for layer in program.layers:
            want = golden[layer.output][0]
            got = program.read(image, layer.output).reshape(want.shape)
            assert np.array_equal(got, want), (layer.name, x)
    return program


@pytest.mark.parametrize("model", [mnist_cnn, resnet_mnist])
def test_mnist_examples_equal_the_golden(model):
    graph = export(fold_batchnorms(model().eval()), (1, 28, 28))
    config = EngineConfig(tm=16, tn=16, addr_bits=24)
    frames = np.random.default_rng(1).integers(0, 256, (2, 1, 28, 28))
    program = assert_every_tensor_equal(graph, config, frames)
    assert program.output[0] > program.input[0]
    assert program.splittable_pools == ()       # no global pool


def test_random_graphs_equal_the_golden():
    compiled = 0
    for seed in range(60):
        graph = random_case(seed).graph
        try:
            compile_program(graph, SMALL)
        except UnsupportedLayerError:
            continue
        assert_every_tensor_equal(graph, SMALL, random_inputs(graph, 3, seed))
        compiled += 1
    assert compiled >= 25          # the others read activations wider than the multipliers


@pytest.mark.parametrize("seeds", [range(100), pytest.param(range(100, 400),
                                                          marks=pytest.mark.slow)])
@pytest.mark.parametrize("config", ENGINE_CONFIGS)
def test_engine_scale_random_graphs_compile_and_equal_the_golden(config, seeds):
    for seed in seeds:
        case = random_engine_case(seed)
        try:
            assert_every_tensor_equal(case.graph, ENGINE_CONFIGS[config],
                                      random_inputs(case.graph, 2, seed))
        except (AssertionError, UnsupportedLayerError) as error:
            raise AssertionError(f"{case.summary()}: {error}") from error


def test_a_global_pool_beyond_the_input_buffer_sums_rows_then_the_column():
    rng = np.random.default_rng(8)
    graph, inputs = global_pool_graph(rng)
    program = assert_every_tensor_equal(graph, SMALL, inputs(3))
    assert [layer.name for layer in program.layers] == ["gap.rows", "gap", "fc"]
    rows, pool = (layer.descriptor for layer in program.layers[:2])
    assert (rows.kernel_h, rows.kernel_w, rows.out_height, rows.out_width, rows.requant) == \
        (1, 13, 14, 1, 0)
    assert (pool.kernel_h, pool.kernel_w, pool.in_width, pool.requant) == (14, 1, 1, 1)
    # Signed 6-bit inputs, 13 a row: the row sums are 10-bit signed.
    assert (rows.out_bits, rows.out_signed) == (10, 1)
    assert program.layers[0].row_sums and program.layers[0].nodes == ("gap",)
    # A buffer that holds the map runs the pool as one layer; it could still split it.
    whole = dataclasses.replace(SMALL, input_words=1024)
    program = assert_every_tensor_equal(graph, whole, inputs(1))
    assert [layer.name for layer in program.layers] == ["gap", "fc"]
    assert program.splittable_pools == ("gap",)


def test_row_sums_wider_than_the_vector_lanes_are_refused():
    graph, _ = global_pool_graph(np.random.default_rng(8), bits=14, signed=False)
    with pytest.raises(UnsupportedLayerError, match=r"layer 'gap': its row sums take 18 bits; "
                                                    r"the engine's vector lanes take at most "
                                                    r"16 bits"):
        compile_program(graph, SMALL)


def test_filters_stay_on_their_own_lane_and_wider_ones_swap_onto_a_wide_lane():
    lanes = (4, 4, 4, 8)
    assert place_filters(lanes, [4, 4, 4, 4]) == [{0: 0, 1: 1, 2: 2, 3: 3}]
    # Filter 1 needs the 8-bit lane; filter 3, there, takes lane 1 in exchange.
    assert place_filters(lanes, [4, 8, 4, 4]) == [{0: 0, 1: 3, 2: 2, 3: 1}]
    # Two 8-bit filters and one 8-bit lane: two passes.
    assert place_filters(lanes, [8, 4, 8, 2]) == [{0: 3, 1: 1, 3: 0}, {3: 2}]
    # A fold of fewer filters than lanes: a free wide lane, no exchange.
    assert place_filters((4, 4, 8, 8), [8, 4]) == [{1: 1, 2: 0}]
    with pytest.raises(ValueError, match="a 9-bit filter fits no lane"):
        place_filters(lanes, [9])


def test_random_placements_put_every_filter_once_on_a_lane_that_holds_it_within_reach():
    rng = np.random.default_rng(0)
    for case in range(300):
        lanes = tuple(int(b) for b in rng.choice([2, 4, 8] if case % 2 else [4, 8], 8))
        bits = [int(b) for b in rng.integers(1, max(lanes) + 1, int(rng.integers(1, 9)))]
        passes = place_filters(lanes, bits)
        reach = crossbar_sources(lanes)
        placed = [f for p in passes for f in p.values()]
        assert sorted(placed) == list(range(len(bits)))
        assert all(lanes[lane] >= bits[f] for p in passes for lane, f in p.items())
        assert all(lane in reach[f] for p in passes for lane, f in p.items())
        if len(set(lanes)) == 2:       # as few passes as any placement: the wide lanes' count
            top = max(lanes)
            assert len(passes) == max(1, -(-sum(b > min(lanes) for b in bits) //
                                           lanes.count(top)))


def test_the_crossbar_reaches_each_channels_own_lane_and_the_other_width():
    assert crossbar_sources((4, 4, 4, 8)) == [(0, 3), (1, 3), (2, 3), (0, 1, 2, 3)]
    assert crossbar_sources((8, 8, 8)) == [(0,), (1,), (2,)]


def test_descriptors_and_parameters_round_trip():
    d = Descriptor(op=1, last=1, requant=1, rounding=1, in_addr=0xDEADBEE0, kernel_h=7,
                   pad_value=0xFFFFFFC0, in2_row_words=513, passes=4, first_passes=3)
    assert Descriptor.decode(d.encode()) == d
    with pytest.raises(ValueError, match="descriptor field stride_h must fit 4 bits, not 16"):
        Descriptor(stride_h=16).encode()
    rng = np.random.default_rng(2)
    mult = rng.integers(0, 1 << 24, 4).tolist()
    offset = rng.integers(-(1 << 48) + 1, 1 << 48, 4).tolist()
    bias = rng.integers(-(1 << 31), 1 << 31, (MAX_PASSES, 4)).tolist()
    source = [[(int(a), int(b)) for a, b in rng.integers(0, 2, (4, 2)) * [3, 1]]
              for _ in range(MAX_PASSES)]
    params = FoldParams(passes=3, next_passes=MAX_PASSES, mult=mult, offset=offset, bias=bias,
                        source=source)
    raw = encode_params(SMALL, params)
    assert len(raw) % SMALL.data_bytes == 0
    assert decode_params(SMALL, raw) == params
    # The plain-integer packing is the layout's own constant.
    expected = param_layout(SMALL).const({
        "passes": 3, "next_passes": MAX_PASSES, "mult": mult, "offset": offset, "bias": bias,
        "source": [[{"lane": a, "valid": b} for a, b in row] for row in source]}).as_bits()
    assert int.from_bytes(raw, "little") == expected


def test_weights_are_stored_at_their_lanes_width():
    # Four filters, two of them 8-bit, on the lanes (4, 4, 4, 8): two passes; six inputs, two
    # k-steps of tn = 4.
    rng = np.random.default_rng(5)
    bits = np.array([4, 8, 4, 8])
    w = np.where(bits[:, None] == 8, rng.integers(-100, 100, (4, 6)),
                 rng.integers(-7, 8, (4, 6)))
    graph = quant.QGraph(quant.InputSpec((6,), 8, False),
                         [g.dense("fc", w, np.zeros(4, int), bits)])
    program = compile_program(graph, SMALL)
    d = program.layers[0].descriptor
    assert (d.folds, d.passes, d.ksteps) == (1, 2, 2)
    assert d.kstep_words == 2                   # (4 + 4 + 4 + 8) x 4 = 80 bits in two words
    word = SMALL.data_bytes * d.kstep_words
    data = program.image[d.param_addr + d.fold_words * SMALL.data_bytes:][:4 * word]
    stored = unpack_fields(data, kstep_widths(SMALL), 4, word).reshape(2, 2, 4, 4)
    padded = np.zeros((4, 8), int)
    padded[:, :6] = w
    placed = place_filters(SMALL.lane_bits, bits)
    assert len(placed) == 2
    for q, lanes in enumerate(placed):
        for lane in range(4):
            want = padded[lanes[lane]] if lane in lanes else np.zeros(8, int)
            assert (stored[q, :, lane].reshape(-1) == want).all(), (q, lane)


def _dense(name, inputs, outs, ins, bits=4, rng=np.random.default_rng(3)):
    w = rng.integers(-7, 8, (outs, ins))
    return g.dense(name, w, rng.integers(-9, 9, outs), np.full(outs, bits), inputs=inputs)


def test_every_layer_it_cannot_run_is_named_at_once():
    rng = np.random.default_rng(4)
    wide = rng.integers(-100, 100, (4, 6))            # 8-bit filters
    graph = quant.QGraph(quant.InputSpec((3, 40, 40), 8, False), [
        g.conv2d("conv", rng.integers(-7, 8, (4, 3, 3, 3)), np.zeros(4, int), np.full(4, 4),
                 padding=1),
        g.requantize("act", np.full(4, 3), 10, 8, False),
        g.flatten("flat"),
        g.requantize("per_feature", np.full(6400, 3), 4, 8, False),
        g.dense("fc", rng.integers(-7, 8, (6, 6400)), np.zeros(6, int), np.full(6, 4)),
        g.requantize("act2", np.full(6, 3), 4, 8, False),
        g.dense("wide", wide, np.zeros(4, int), np.full(4, 8)),
    ])
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 4), input_words=512,
                          output_words=256, weight_words=256, addr_bits=20)
    with pytest.raises(UnsupportedLayerError) as err:
        compile_program(graph, config)
    problems = err.value.problems
    assert any(p.startswith("layer 'per_feature': a requantize with one multiplier per "
                            "feature of a flattened map has no engine op") for p in problems)
    assert any(p.startswith("layer 'wide': has 8-bit filters; the engine's widest lanes are "
                            "4-bit") for p in problems)
    assert any(p.startswith("layer 'fc': one output row needs") and "input buffer holds 512"
               in p for p in problems), problems


def test_an_image_beyond_the_address_space_is_refused():
    graph = quant.QGraph(quant.InputSpec((64, 64, 64), 8, False), [
        g.conv2d("conv", np.ones((4, 64, 1, 1), int), np.zeros(4, int), np.full(4, 4))])
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), addr_bits=16)
    with pytest.raises(UnsupportedLayerError, match=r"the DRAM image takes \d+ bytes, beyond "
                                                    r"the engine's 16-bit address space"):
        compile_program(graph, config)


def test_a_fold_needing_more_passes_than_the_crossbar_holds_is_refused():
    graph = quant.QGraph(quant.InputSpec((4,), 8, False),
                         [_dense("fc", ["input"], 8, 4, bits=8)])
    config = EngineConfig(tm=8, tn=8, lane_bits=(4,) * 7 + (8,))
    with pytest.raises(UnsupportedLayerError, match=r"layer 'fc': a fold of 8 filters needs 8 "
                                                    r"passes over the lanes .* at most 4"):
        compile_program(graph, config)


@pytest.mark.parametrize("kwargs, message", [
    ({"tm": 4, "tn": 8}, "engine tm must equal tn"),
    ({"tm": 4, "tn": 4, "lane_bits": (4, 4, 9, 8)}, "engine lane_bits must be 4 widths in 2..8"),
    ({"data_bits": 48}, "engine data_bits must be a power of two in 32..1024, not 48"),
    ({"act_bits": 17}, "engine act_bits must be in 2..16, not 17"),
    ({"family": "lut"}, "engine family must be one of 'xc7', 'xcup', 'ecp5', not 'lut'"),
    ({"input_words": 0}, "engine input_words must be a positive integer, not 0"),
])
def test_configurations_it_cannot_build_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**kwargs)


def test_each_fold_stores_only_the_passes_it_needs():
    rng = np.random.default_rng(6)
    graph = uneven_passes(rng)
    program = assert_every_tensor_equal(graph, NARROW, rng.integers(0, 256, (2, 5, 8, 6)))
    layer = program.layers[0]
    d, counts = layer.descriptor, (2, 1, 3)
    assert layer.fold_passes == counts and (d.passes, d.first_passes) == (3, 2)
    weight = graph.nodes[0].tensors["weight"]
    bits = graph.nodes[0].tensors["weight_bits"]
    padded = np.zeros((12, 8, 3, 3), int)                  # input channels to two groups
    padded[:, :5] = weight
    columns = np.moveaxis(padded, 1, -1).reshape(12, -1)   # k-step order (ky, kx, channel)
    word = NARROW.data_bytes * d.kstep_words
    address = d.param_addr
    for f, count in enumerate(counts):
        params = decode_params(NARROW, program.image[address:])
        assert (params.passes, params.next_passes) == (count, counts[(f + 1) % 3])
        address += d.fold_words * NARROW.data_bytes
        # The fold's weights: its own passes, nothing more; the next fold's parameters follow.
        rows = count * d.ksteps
        stored = unpack_fields(program.image[address:address + rows * word],
                               kstep_widths(NARROW), rows, word).reshape(count, d.ksteps, 4, 4)
        placed = place_filters(NARROW.lane_bits, bits[4 * f:4 * f + 4])
        assert len(placed) == count
        for q, lanes in enumerate(placed):
            for lane in range(4):
                want = columns[4 * f + lanes[lane]] if lane in lanes else np.zeros(72, int)
                assert (stored[q, :, lane].reshape(-1) == want).all(), (f, q, lane)
        address += rows * word
    assert address == d.param_addr + (3 * d.fold_words + 6 * d.ksteps * d.kstep_words) \
        * NARROW.data_bytes


def test_the_reference_refuses_a_fold_whose_pass_count_disagrees_with_the_fold_before():
    rng = np.random.default_rng(6)
    program = compile_program(uneven_passes(rng), NARROW)
    d = program.layers[0].descriptor
    image = bytearray(program.image)
    image[:64] = Descriptor(**{**vars(d), "first_passes": 1}).encode()
    with pytest.raises(ValueError, match="fold 0 of the layer at parameter address .* has 2 "
                                         "passes, where the fold before .* says 1"):
        run_image(image, NARROW)


def _stem(channels, kernel, stride, padding, size=(11, 13), second_reader=False):
    rng = np.random.default_rng(kernel * 10 + stride)
    layers = [g.conv2d("stem", rng.integers(-7, 8, (6, channels, kernel, kernel)),
                       rng.integers(-20, 20, 6), np.full(6, 4), stride=stride, padding=padding),
              g.requantize("act", np.full(6, 3), 6, 6, False)]
    if second_reader:       # the input read again, by a pool beside the stem
        layers += [g.maxpool2d("pool", kernel=1, stride=1, inputs=["input"])]
    return quant.QGraph(quant.InputSpec((channels, *size), 8, False), layers)


@pytest.mark.parametrize("channels, kernel, stride, padding", [
    (3, 3, 1, 1), (3, 7, 2, 3), (1, 5, 2, 2), (2, 3, 3, 0), (3, 2, 2, 0)])
def test_a_stem_on_few_channels_reads_the_input_as_its_windows(channels, kernel, stride,
                                                               padding):
    graph = _stem(channels, kernel, stride, padding)
    program = assert_every_tensor_equal(
        graph, SMALL, np.random.default_rng(kernel).integers(0, 256, (2, channels, 11, 13)))
    _, layout = program.input
    d = program.layers[0].descriptor
    assert layout.patches == (kernel, kernel, stride, stride, padding, padding)
    assert (d.kernel_h, d.kernel_w, d.stride_h, d.pad_h) == (1, 1, 1, 0)
    assert d.ksteps == -(-channels * kernel * kernel // SMALL.tn)
    assert (d.in_height, d.in_width) == (d.out_height, d.out_width)


def test_a_stem_reads_the_input_as_it_is_when_windows_save_no_k_steps_or_it_has_other_readers():
    wide = compile_program(_stem(4, 3, 1, 1), SMALL)           # 4 channels fill a group
    assert wide.input[1].patches is None and wide.layers[0].descriptor.kernel_h == 3
    shared = compile_program(_stem(3, 3, 1, 1, second_reader=True), SMALL)
    assert shared.input[1].patches is None and shared.layers[0].descriptor.kernel_h == 3


@pytest.mark.parametrize("seed", range(12))
def test_patches_are_the_windows_of_the_map_and_unpack_to_it(seed):
    from hwgen.engine.layout import TensorLayout
    rng = np.random.default_rng(seed)
    c, h, w = (int(v) for v in (rng.integers(1, 5), *rng.integers(3, 9, 2)))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    sh, sw = (int(v) for v in rng.integers(1, 3, 2))
    ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    layout = TensorLayout((c, h, w), 5, True, 4, 32, (kh, kw, sh, sw, ph, pw))
    x = rng.integers(-16, 16, (c, h, w))
    plain = TensorLayout((c * kh * kw,) + layout.map[1:], 5, True, 4, 32)
    stored = plain.unpack(layout.pack(x))
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    for oy in range(layout.map[1]):
        for ox in range(layout.map[2]):
            window = padded[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
            assert np.array_equal(stored[:, oy, ox], np.moveaxis(window, 0, -1).reshape(-1))
    read = np.zeros((c, h + 2 * ph, w + 2 * pw), bool)
    for oy in range(layout.map[1]):
        for ox in range(layout.map[2]):
            read[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw] = True
    read = read[:, ph:ph + h, pw:pw + w]
    assert np.array_equal(layout.unpack(layout.pack(x)), np.where(read, x, 0))
    assert TensorLayout.from_metadata(layout.to_metadata()) == layout
