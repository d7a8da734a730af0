"""The engine's cycle model against the engine in the Amaranth simulator, layer by layer: equal
cycle for cycle at a fixed DRAM read latency (every op, tiling and fold shape, a
ResNet-18-shaped network), a lower bound under AXI back-pressure."""

import json
from dataclasses import replace

import numpy as np
import pytest

from hwgen.engine import EngineConfig, compile_program
from hwgen.engine.model import (DEFAULT_LATENCY, LayerSchedule, layer_cycles, metadata_cycles,
                                 program_cycles)
from hwgen.engine.program import Descriptor
from quant import graph as g
from tests.graphgen import random_case, random_inputs

from .bench import run_engine
from .test_engine import NARROW, SMALL, _conv, graph_of, short_fold_after_a_long_one, \
    uneven_passes


def measured_and_model(graph, config, x, *, latency=DEFAULT_LATENCY, stall=0.0, seed=0):
    """Each layer's cycles in the simulator (from the end of the layer before to its own
    ``layer_done``) and in the model."""
    program = compile_program(graph, config)
    image = program.load_input(bytearray(program.image), x)
    memory = bytearray(1 << config.addr_bits)
    memory[:len(image)] = image
    run = run_engine(config, memory, latency=latency, stall=stall, seed=seed)
    measured = np.diff([0] + run["layers"]).tolist()
    model = program_cycles(program, latency=latency)
    assert model.total == sum(layer.total for layer in model.layers) + 1
    if not stall:
        # The CYCLES register counts the run as the model does.
        assert run["cycles"] == model.total
    return program, measured, model


def _requantize(name, rng, channels, bits=5, signed=False, inputs=None):
    return g.requantize(name, rng.integers(1, 1 << 10, channels), 12, bits, signed,
                        inputs=inputs)


def resnet18_shaped(rng):
    """Every kind of layer ResNet-18 has (7 x 7 stride-2 stem, 3 x 3 stride-2 max pool, a
    basic block with an identity shortcut, one with a 1 x 1 stride-2 projection, global
    average pool, classifier), FILM-QNN precisions, on a 16 x 16 input and few channels."""
    bits4, bits8 = np.array([4, 8, 4, 4]), np.array([4, 4, 8, 4, 4, 4, 4, 8])
    return graph_of((3, 16, 16), [
        _conv("conv1", rng, 4, 3, 7, bits4, stride=2, padding=3),
        _requantize("relu", rng, 4),
        g.maxpool2d("maxpool", 3, 2, 1),
        _conv("layer1.conv1", rng, 4, 4, 3, bits4, padding=1),
        _requantize("layer1.relu1", rng, 4),
        _conv("layer1.conv2", rng, 4, 4, 3, bits4, padding=1),
        _requantize("layer1.body", rng, 4, 8, True),
        _requantize("layer1.shortcut", rng, 4, 8, True, inputs=["maxpool"]),
        g.add("layer1.add", ["layer1.body", "layer1.shortcut"]),
        _requantize("layer1.relu", rng, 4),
        _conv("layer2.conv1", rng, 8, 4, 3, bits8, stride=2, padding=1),
        _requantize("layer2.relu1", rng, 8),
        _conv("layer2.conv2", rng, 8, 8, 3, bits8, padding=1),
        _requantize("layer2.body", rng, 8, 8, True),
        _conv("layer2.downsample", rng, 8, 4, 1, bits8, stride=2, inputs=["layer1.relu"]),
        _requantize("layer2.shortcut", rng, 8, 8, True),
        g.add("layer2.add", ["layer2.body", "layer2.shortcut"]),
        _requantize("layer2.relu", rng, 8),
        g.global_avgpool("avgpool"),
        _requantize("avgpool.requantize", rng, 8),
        g.flatten("flatten"),
        g.dense("fc", rng.integers(-7, 8, (10, 8)), rng.integers(-9, 9, 10), np.full(10, 4)),
    ])


@pytest.mark.parametrize("latency", [DEFAULT_LATENCY, 9])
def test_model_is_the_conv_schedule(latency):
    # Passes (three wide filters on one wide lane), two folds, bands, stride and padding.
    rng = np.random.default_rng(0)
    bits = np.array([8, 8, 4, 8, 4, 8, 4])
    graph = graph_of((5, 9, 7), [
        _conv("conv", rng, 7, 5, 3, bits, stride=[2, 1], padding=1),
        _requantize("act", rng, 7),
    ])
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=60,
                          output_words=24, weight_words=64, addr_bits=18)
    program, measured, model = measured_and_model(graph, config,
                                                  rng.integers(0, 256, (5, 9, 7)),
                                                  latency=latency)
    d = program.layers[0].descriptor
    assert (d.passes, d.folds) == (3, 2) and d.bands > 1
    assert [layer.total for layer in model.layers] == measured


@pytest.mark.parametrize("latency", [0, 4])
def test_model_is_the_schedule_of_a_fold_shorter_than_the_output_path(latency):
    rng = np.random.default_rng(2)
    program, measured, model = measured_and_model(short_fold_after_a_long_one(rng), SMALL,
                                                  rng.integers(0, 256, (4, 1, 6)),
                                                  latency=latency)
    assert [layer.total for layer in model.layers] == measured
    # The case is the hazard's: the second fold's k-steps end well before the first fold's
    # bank is given back, so the third fold has to wait for it.
    layer = program.layers[0]
    events = LayerSchedule(layer.descriptor, SMALL, latency, layer.fold_passes)
    events.run(0)
    second_ends = events.events[("wbuf_clear", 1)] - events.out_latency
    assert events.events[("wbuf_clear", 0)] - second_ends >= 5


@pytest.mark.parametrize("latency", [DEFAULT_LATENCY, 7])
def test_model_is_the_schedule_of_folds_with_their_own_pass_counts(latency):
    rng = np.random.default_rng(6)
    program, measured, model = measured_and_model(uneven_passes(rng), NARROW,
                                                  rng.integers(0, 256, (5, 8, 6)),
                                                  latency=latency)
    layer = program.layers[0]
    assert layer.fold_passes == (2, 1, 3)
    assert [cycles.total for cycles in model.layers] == measured
    # Every fold at the layer's most passes would compute and read more.
    widest = layer_cycles(layer.descriptor, NARROW, latency=latency)
    assert widest.compute > model.layers[0].compute and widest.read > model.layers[0].read


@pytest.mark.parametrize("family", ["xcup", "ecp5"])
def test_model_is_the_schedule_of_every_layer_of_a_resnet18_shaped_network(family):
    # On ECP5 the output path is a stage longer (its product in registered pieces).
    rng = np.random.default_rng(4)
    graph = resnet18_shaped(rng)
    program, measured, model = measured_and_model(graph, replace(SMALL, family=family),
                                                  rng.integers(0, 256, (3, 16, 16)))
    assert {layer.op for layer in model.layers} == {"matmul", "pool_max", "pool_sum", "add"}
    assert [layer.total for layer in model.layers] == measured, \
        [layer.name for layer in program.layers]


@pytest.mark.parametrize("latency", [DEFAULT_LATENCY, 10])
def test_model_is_the_schedule_of_the_vector_ops_and_a_dense_layer(latency):
    rng = np.random.default_rng(1)
    graph = graph_of((6, 8, 8), [
        g.conv2d("dw", rng.integers(-7, 8, (6, 1, 3, 3)), rng.integers(-9, 9, 6),
                 np.full(6, 4), padding=1, groups=6),
        g.requantize("dw_act", np.full(6, 5), 6, 6, True),
        g.maxpool2d("pool", 2, 2, padding=0),
        g.avgpool2d("avg", 2, 1),
        g.requantize("avg_act", np.full(6, 3), 3, 6, True),
        g.add("sum", ["avg_act", "avg_act"]),
        g.flatten("flat"),
        g.dense("fc", rng.integers(-7, 8, (5, 54)), rng.integers(-9, 9, 5), np.full(5, 4)),
    ], bits=6, signed=True)
    _, measured, model = measured_and_model(graph, SMALL, rng.integers(-32, 32, (6, 8, 8)),
                                            latency=latency)
    assert [layer.op for layer in model.layers] == ["depthwise", "pool_max", "pool_sum",
                                                    "add", "matmul"]
    assert [layer.total for layer in model.layers] == measured


def test_model_is_the_schedule_of_a_random_graph_at_a_long_latency():
    graph = random_case(9).graph
    _, measured, model = measured_and_model(graph, SMALL, random_inputs(graph, 1, 9)[0],
                                            latency=20)
    assert [layer.total for layer in model.layers] == measured


def test_model_is_a_lower_bound_under_back_pressure():
    rng = np.random.default_rng(4)
    graph = resnet18_shaped(rng)
    _, measured, model = measured_and_model(graph, SMALL, rng.integers(0, 256, (3, 16, 16)),
                                            stall=0.3, seed=7)
    assert all(layer.total <= cycles for layer, cycles in zip(model.layers, measured))
    assert model.total < sum(measured)


def test_traffic_and_utilization():
    rng = np.random.default_rng(4)
    program = compile_program(resnet18_shaped(rng), SMALL)
    model = program_cycles(program)
    for layer, cycles in zip(program.layers, model.layers):
        d = layer.descriptor
        assert cycles.bytes_written == d.out_height * d.out_row_words * SMALL.data_bytes
        assert cycles.compute <= cycles.total and cycles.macs == layer.macs
        assert 0 <= cycles.utilization <= 1
    # A longer read latency never makes a layer faster.
    slower = program_cycles(program, latency=40)
    assert all(a.total <= b.total for a, b in zip(model.layers, slower.layers))
    assert slower.total > model.total and slower.latency == 40


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"latency must be a non-negative integer, not -1"):
        layer_cycles(Descriptor(op=1), SMALL, latency=-1)
    with pytest.raises(ValueError, match=r"descriptor op must be one of \[1, 2, 3, 4, 5\], "
                                         r"not 0"):
        layer_cycles(Descriptor(op=0), SMALL)
    with pytest.raises(ValueError, match=r"fold_passes must give each of the 2 folds 1 to 3 "
                                         r"passes, not \[1, 4\]"):
        layer_cycles(Descriptor(op=1, folds=2, passes=3), SMALL, fold_passes=[1, 4])


def test_metadata_carries_the_model():
    rng = np.random.default_rng(4)
    program = compile_program(resnet18_shaped(rng), SMALL)
    for latency in (DEFAULT_LATENCY, 30):
        model = program_cycles(program, latency=latency)
        meta = json.loads(json.dumps(program.to_metadata(latency=latency)))
        assert [layer["cycles_model"] for layer in meta["layers"]] == \
            [layer.total for layer in model.layers]
        assert meta["cycles_per_frame_model"] == model.total
        assert meta["cycles_model_latency"] == latency
        # The model of a design read back from its metadata, at any latency, is the program's.
        assert metadata_cycles(meta, latency=latency + 5) == \
            program_cycles(program, latency=latency + 5)
