"""The layer-sequential engine's generated Verilog in cocotb (sim.engine): every tensor it
writes to DRAM equals the golden under random pauses on every AXI channel and random burst
latencies; mismatches, bad status, stray bursts and bad inputs are reported; a
ResNet-18-shaped network runs whole in Verilator (slow tier)."""

import json
from pathlib import Path

import numpy as np
import pytest

import quant
from hwgen.engine import EngineConfig, TensorLayout, compile_program, engine_golden
from hwgen.engine.model import program_cycles
from hwgen.engine.program import OPS
from quant import graph as g, zoo
from sim import SimulationError, ToolchainError
from sim.engine import load_engine_design, simulate_engine
from tests.graphgen import ENGINE_CONFIGS, random_case, random_engine_case, random_inputs
from tests.hwgen.engine.test_engine import global_pool_graph, graph_of, vector_graph

#: A small engine: four 4-bit-or-8-bit lanes, buffers small enough that layers run in bands.
SIM = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), input_words=128, output_words=64,
                   weight_words=128, addr_bits=20)


@pytest.fixture(scope="session")
def sim_verilog(engine_verilog):
    """The SIM engine's top.v."""
    return engine_verilog(SIM)


@pytest.fixture(scope="session")
def engine_dir(sim_verilog):
    """The SIM engine's folder: its Verilog and the builds every run shares."""
    return sim_verilog.parent


def engine_design(graph, folder, verilog, config=SIM):
    """``graph``'s program for the engine of ``verilog``: ``program.bin`` and ``metadata.json``
    in ``folder`` (as ``hwgen.generate(arch="engine")`` writes them), the Verilog shared."""
    program = compile_program(graph, config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "program.bin").write_bytes(bytes(program.image))
    meta = program.to_metadata() | {"verilog": str(verilog),
                                    "image": str(folder / "program.bin")}
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta, program


def conv_graph(seed=0):
    """A convolution whose fold holds three 8-bit filters for one 8-bit lane (three passes),
    with stride, padding and a requantizer with offsets rounding half to even. (Its input's
    8 channels fill whole groups, so it reads the input map as it is, not as its windows.)"""
    rng = np.random.default_rng(seed)
    bits = np.array([8, 8, 4, 8, 4, 8, 4])
    w = rng.integers(-7, 8, (7, 8, 3, 3))
    w[bits == 8] = rng.integers(-127, 128, (4, 8, 3, 3))
    return graph_of((8, 9, 7), [
        g.conv2d("conv", w, rng.integers(-99, 99, 7), bits, stride=[2, 1], padding=1),
        g.requantize("act", rng.integers(1, 1 << 12, 7), 14, 5, False,
                     offset=rng.integers(-5000, 5000, 7), rounding="half_even"),
    ])


def mixed_graph():
    """The convolution of :func:`conv_graph` (three passes, two folds, two bands), then a max
    pool, an add and a dense layer."""
    rng = np.random.default_rng(3)
    bits = np.array([8, 8, 4, 8, 4, 8, 4])
    w = rng.integers(-7, 8, (7, 8, 3, 3))
    w[bits == 8] = rng.integers(-127, 128, (4, 8, 3, 3))
    return graph_of((8, 9, 7), [
        g.conv2d("conv", w, rng.integers(-99, 99, 7), bits, stride=[2, 1], padding=1),
        g.requantize("act", rng.integers(1, 1 << 12, 7), 14, 5, False),
        g.maxpool2d("pool", 2, 2, padding=0, inputs=["act"]),
        g.add("sum", ["pool", "pool"]),
        g.flatten("flat"),
        g.dense("fc", rng.integers(-7, 8, (5, 42)), rng.integers(-9, 9, 5), np.full(5, 4)),
    ])


def stem_graph():
    """A strided, padded 3x3 stem on a 3-channel image (so it reads the input as its windows),
    then a 3x3 convolution on the stem's map."""
    rng = np.random.default_rng(7)
    return graph_of((3, 10, 9), [
        g.conv2d("stem", rng.integers(-7, 8, (5, 3, 3, 3)), rng.integers(-99, 99, 5),
                 np.full(5, 4), stride=2, padding=1),
        g.requantize("stem_act", rng.integers(1, 1 << 12, 5), 14, 5, False),
        g.conv2d("conv", rng.integers(-7, 8, (4, 5, 3, 3)), rng.integers(-99, 99, 4),
                 np.full(4, 4), padding=1),
    ])


def check_result(result, graph, x, program):
    """Everything a passing run promises, checked independently of its own bookkeeping."""
    values = engine_golden(program.layers, quant.run(graph, x))
    assert result.ok, result.describe()
    assert result.tensors == [layer.output for layer in program.layers]
    assert result.values_compared == sum(values[v].size for v in result.tensors)
    for value in result.tensors:
        assert np.array_equal(result.outputs[value], values[value]), value
    frames, layers = len(x), len(program.layers)
    assert result.layer_cycles.shape == result.layer_end_cycles.shape == (frames, layers)
    assert (result.layer_cycles > 0).all()
    # layer_done pulses one cycle before busy falls; CYCLES counts the cycles busy is high.
    assert np.array_equal(result.layer_end_cycles[:, -1] + 1, result.frame_cycles)
    assert np.array_equal(result.cycles_register, result.frame_cycles)
    assert result.cycles > result.frame_cycles.sum() and result.cycles_per_second > 0
    # The layer log, written as the run goes: each frame's start and layer ends at the
    # cycles measured, and each layer's tensor (the last frame's) as it was when it ended.
    run = result.log.parent
    lines = (run / "layers.txt").read_text().split("\n")[:-1]
    logged = np.array([[int(v) for v in line.split()] for line in lines])
    assert logged[:, 0].tolist() == list(range(layers + 1)) * frames
    ends = logged[:, 1].reshape(frames, layers + 1)
    assert np.array_equal(ends[:, 1:] - ends[:, :1], result.layer_end_cycles)
    for i, value in enumerate(result.tensors):
        layout = TensorLayout.from_metadata(result.design["tensors"][value])
        saved = layout.unpack((run / f"layer{i}.bin").read_bytes())
        assert np.array_equal(saved, result.outputs[value][-1]), value


def test_conv_in_passes_and_bands_under_backpressure(engine_dir, sim_verilog):
    graph = conv_graph()
    meta, program = engine_design(graph, engine_dir / "conv", sim_verilog)
    d = program.layers[0].descriptor
    assert (d.passes, d.folds) == (3, 2) and d.bands > 1       # what this test is about
    assert d.kernel_h == 3 and program.input[1].patches is None
    x = random_inputs(graph, 2, 11)
    result = simulate_engine(graph, x, out_dir=engine_dir, design=meta, backpressure=0.3,
                             latency=(0, 12), seed=11)
    check_result(result, graph, x, program)
    assert result.latency == (0, 12) and result.backpressure == 0.3
    assert "latency 0..12, seed 11" in result.describe()
    report = json.loads((engine_dir / "sim_report.json").read_text())
    assert report["ok"] and report["layer_cycles"]["conv"] == result.layer_cycles[:, 0].tolist()


def test_vector_ops_and_dense_after_a_flatten_with_latency(engine_dir, sim_verilog):
    graph = vector_graph()
    meta, program = engine_design(graph, engine_dir / "vector", sim_verilog)
    x = np.random.default_rng(2).integers(-32, 32, (2, 6, 8, 8))
    result = simulate_engine(graph, x, out_dir=engine_dir, design=engine_dir / "vector",
                             backpressure=0.25, latency=6, seed=2)
    check_result(result, graph, x, program)
    assert result.layers == ["dw", "pool", "avg", "sum", "fc"]


@pytest.mark.parametrize("seed", [5, 19, 20])
def test_random_graphs(engine_dir, sim_verilog, seed):
    case = random_case(seed)
    meta, program = engine_design(case.graph, engine_dir / f"random{seed}", sim_verilog)
    x = random_inputs(case.graph, 2, seed)
    result = simulate_engine(case.graph, x, out_dir=engine_dir, design=meta,
                             backpressure=case.backpressure or 0.2, latency=(1, 1 + seed % 9),
                             seed=seed)
    check_result(result, case.graph, x, program)


#: Each engine's cases in the default tier. On the 4x4 engine, graphs whose third fold reaches
#: its weight bank before the first fold gives it back (seeds 28 and 89 failed before the
#: compute unit waited for it); on the 8x8 engines no seed below 150 opens that window at
#: latency 3 by the cycle model, and two seeds stand for their ports and split products. The
#: slow tier runs the other seeds below 150.
DEFAULT_ENGINE_SEEDS = {"4x4": (28, 89), "8x8_ecp5_2port": (0, 1), "8x8_xc7_4port": (26, 0)}


def _engine_seeds():
    return [(config, seed) if seed in DEFAULT_ENGINE_SEEDS[config] else
            pytest.param(config, seed, marks=pytest.mark.slow)
            for config in ENGINE_CONFIGS for seed in range(150)]


@pytest.mark.verilator
@pytest.mark.parametrize("config, seed", _engine_seeds())
def test_engine_scale_random_graphs_in_verilator(engine_verilog, config, seed):
    """Every tensor equals the golden under the case's pauses and random burst latencies;
    without pauses each layer takes the model's cycles."""
    case = random_engine_case(seed)
    verilog = engine_verilog(ENGINE_CONFIGS[config])
    meta, program = engine_design(case.graph, verilog.parent / f"random{seed}", verilog,
                                  ENGINE_CONFIGS[config])
    x = random_inputs(case.graph, case.frames, seed)
    result = simulate_engine(case.graph, x, out_dir=verilog.parent, design=meta,
                             simulator="verilator", backpressure=case.backpressure,
                             latency=(1, 1 + seed % 9), seed=seed)
    check_result(result, case.graph, x, program)
    result = simulate_engine(case.graph, x, out_dir=verilog.parent, design=meta,
                             simulator="verilator", latency=3, seed=seed)
    check_result(result, case.graph, x, program)
    model = [layer.total for layer in program_cycles(program, latency=3).layers]
    assert result.layer_cycles.tolist() == [model] * len(x), case.summary()


def test_backpressure_and_latency_cost_cycles_and_leave_values_alone(engine_dir, sim_verilog):
    graph = conv_graph()
    meta, _ = engine_design(graph, engine_dir / "conv", sim_verilog)
    x = random_inputs(graph, 1, 11)
    free = simulate_engine(graph, x, out_dir=engine_dir, design=meta, seed=4)
    slow = simulate_engine(graph, x, out_dir=engine_dir, design=meta, backpressure=0.6,
                           latency=12, seed=4)
    assert free.ok and slow.ok
    assert slow.frame_cycles[0] > free.frame_cycles[0]


@pytest.mark.parametrize("simulator", ["icarus",
                                       pytest.param("verilator", marks=pytest.mark.verilator)])
def test_without_pauses_each_layer_takes_the_models_cycles(engine_dir, sim_verilog, simulator):
    """With no pauses and a fixed read latency the DRAM is the cycle model's, so every layer
    of every frame takes exactly the cycles the model says."""
    graph = mixed_graph()
    meta, program = engine_design(graph, engine_dir / "mixed", sim_verilog)
    conv = program.layers[0].descriptor
    assert (conv.passes, conv.folds) == (3, 2) and conv.bands > 1
    assert [OPS[layer.descriptor.op] for layer in program.layers] == \
        ["matmul", "pool_max", "add", "matmul"]
    x = random_inputs(graph, 2, 8)
    for latency in (0, 5):
        result = simulate_engine(graph, x, out_dir=engine_dir, design=meta, latency=latency,
                                 simulator=simulator)
        check_result(result, graph, x, program)
        cycles = program_cycles(program, latency=latency)
        model = [layer.total for layer in cycles.layers]
        assert result.layer_cycles.tolist() == [model] * len(x), latency
        assert result.frame_cycles.tolist() == [cycles.total] * len(x), latency
        assert result.cycles_register.tolist() == [cycles.total] * len(x), latency


def test_a_stem_reading_the_input_as_its_windows_takes_the_models_cycles(engine_dir,
                                                                         sim_verilog):
    graph = stem_graph()
    meta, program = engine_design(graph, engine_dir / "stem", sim_verilog)
    stem = program.layers[0].descriptor
    assert program.input[1].patches == (3, 3, 2, 2, 1, 1) and stem.kernel_h == 1
    x = random_inputs(graph, 2, 4)
    result = simulate_engine(graph, x, out_dir=engine_dir, design=meta, backpressure=0.3,
                             seed=4)
    check_result(result, graph, x, program)
    result = simulate_engine(graph, x, out_dir=engine_dir, design=meta, latency=3)
    check_result(result, graph, x, program)
    assert result.frame_cycles.tolist() == [program_cycles(program, latency=3).total] * len(x)


def test_a_global_pool_split_into_row_sums_takes_the_models_cycles(engine_dir, sim_verilog):
    # 2 channel groups of 10 x 9 pixels are more than SIM's 128 input words.
    graph, inputs = global_pool_graph(np.random.default_rng(5), channels=8, size=(10, 9))
    meta, program = engine_design(graph, engine_dir / "split_pool", sim_verilog)
    assert [layer.name for layer in program.layers] == ["gap.rows", "gap", "fc"]
    x = inputs(2)
    result = simulate_engine(graph, x, out_dir=engine_dir, design=meta, latency=3)
    check_result(result, graph, x, program)
    assert np.array_equal(result.outputs["gap.rows"], x.sum(axis=-1, keepdims=True))
    assert result.frame_cycles.tolist() == [program_cycles(program, latency=3).total] * len(x)


@pytest.mark.verilator
def test_verilator_equals_the_golden_and_icarus_cycle_for_cycle(engine_dir, sim_verilog):
    """The same run in both simulators: the same values and the same cycles."""
    graph = vector_graph()
    meta, program = engine_design(graph, engine_dir / "vector_verilator", sim_verilog)
    x = np.random.default_rng(3).integers(-32, 32, (2, 6, 8, 8))
    runs = [simulate_engine(graph, x, out_dir=engine_dir, design=meta, simulator=simulator,
                            backpressure=0.3, latency=2, seed=13)
            for simulator in ("verilator", "icarus")]
    check_result(runs[0], graph, x, program)
    assert np.array_equal(runs[0].layer_end_cycles, runs[1].layer_end_cycles)
    assert runs[0].cycles_per_frame == runs[1].cycles_per_frame


# -- failures are reported ----------------------------------------------------------------------


def test_a_design_for_other_weights_is_reported_with_frame_tensor_and_index(engine_dir,
                                                                           sim_verilog):
    """The RTL runs the program it was given, built from other weights: every tensor from the
    first changed layer on differs, and the report says where, with the seed."""
    built, graph = conv_graph(seed=0), conv_graph(seed=1)
    meta, _ = engine_design(built, engine_dir / "conv", sim_verilog)
    x = random_inputs(graph, 2, 5)
    with pytest.raises(SimulationError) as info:
        simulate_engine(graph, x, out_dir=engine_dir, design=meta, backpressure=0.2, seed=7)
    result = info.value.result
    # The RTL computed the design's network exactly; the golden is the other one.
    theirs, ours = quant.run(built, x), quant.run(graph, x)
    assert np.array_equal(result.outputs["act"], theirs["act"])
    differ = theirs["act"] != ours["act"]
    assert result.mismatches == result.tensor_mismatches["act"] == int(differ.sum()) > 0
    index = tuple(int(i) for i in np.unravel_index(np.argmax(differ), differ.shape))
    first = result.first_mismatch
    assert (first.frame, first.tensor, first.layer, first.index) == \
        (index[0], "act", "conv", tuple(index[1:]))
    assert (first.expected, first.got) == (ours["act"][index], theirs["act"][index])
    message = str(info.value)
    assert f"frame {index[0]}, tensor 'act' (layer 'conv'), index {tuple(index[1:])}" in message
    assert f"expected {first.expected}, got {first.got}" in message and "seed 7" in message
    assert "the RTL runs its program, and the program computes something else" in message
    assert not result.ok and result.to_json()["first_mismatch"]["tensor"] == "act"


def test_a_corrupted_weight_in_the_image_is_caught_in_its_layer(engine_dir, sim_verilog):
    """One weight word of the dense layer flipped in program.bin: the layers before it still
    equal the golden, the dense layer's output does not, and the report names it."""
    graph = vector_graph()
    meta, program = engine_design(graph, engine_dir / "corrupt", sim_verilog)
    fc = program.layers[-1].descriptor
    at = fc.param_addr + fc.fold_words * SIM.data_bytes        # fold 0's first weight word
    image = bytearray(Path(meta["image"]).read_bytes())
    image[at:at + SIM.data_bytes] = bytes(b ^ 0xFF for b in image[at:at + SIM.data_bytes])
    Path(meta["image"]).write_bytes(image)
    x = np.random.default_rng(2).integers(-32, 32, (2, 6, 8, 8))
    with pytest.raises(SimulationError) as info:
        simulate_engine(graph, x, out_dir=engine_dir, design=meta, backpressure=0.2, seed=8)
    result = info.value.result
    layers = result.layer_mismatches
    bad = layers.pop("fc")
    assert bad > 0 and set(layers.values()) == {0}
    assert result.first_mismatch.layer == "fc"
    assert f"(1 of 5 layers: fc {bad})" in str(info.value)
    assert "the RTL runs its program, and the program computes something else" in \
        str(info.value)


def test_an_engine_error_status_is_reported(engine_dir, sim_verilog):
    """A descriptor with an unknown op: the engine stops with STATUS error, which the run
    reports (with the seed) instead of comparing anything, and the last run's report is not
    left behind."""
    graph = conv_graph()
    meta, _ = engine_design(graph, engine_dir / "bad_op", sim_verilog)
    image = bytearray(Path(meta["image"]).read_bytes())
    image[0] = (image[0] & 0xF0) | 0xF                 # op field of the first descriptor
    Path(meta["image"]).write_bytes(image)
    out = engine_dir / "bad_op_run"
    out.mkdir()
    (out / "sim_report.json").write_text('{"ok": true}\n')
    with pytest.raises(SimulationError, match=r"frame 0: STATUS is 0b110 after busy fell "
                                              r"\(.*ERROR is 1\).*seed 3"):
        simulate_engine(graph, random_inputs(graph, 1, 3), out_dir=out, design=meta, seed=3)
    assert not (out / "sim_report.json").exists()


def test_a_write_outside_the_layers_output_is_reported(engine_dir, sim_verilog):
    """The metadata says the output lies where the input does, the descriptor says
    otherwise: the engine's first write burst lands outside the tensor the run watches."""
    graph = conv_graph()
    meta, _ = engine_design(graph, engine_dir / "moved", sim_verilog)
    tensors = dict(meta["tensors"])
    tensors["act"] = dict(tensors["act"], address=tensors["input"]["address"])
    meta = meta | {"tensors": tensors}
    with pytest.raises(SimulationError, match=r"layer 0 \('conv'\) wrote \d+ bytes at 0x[0-9a-f]+, "
                                              r"outside its output tensor"):
        simulate_engine(graph, random_inputs(graph, 1, 3), out_dir=engine_dir, design=meta)


# -- bad arguments are refused before anything runs ----------------------------------------------


@pytest.fixture
def small_design(tmp_path):
    """A design whose Verilog is a placeholder file: these tests never reach a simulator."""
    verilog = tmp_path / "top.v"
    verilog.write_text("module top; endmodule\n")
    graph = conv_graph()
    meta, _ = engine_design(graph, tmp_path / "design", verilog)
    return graph, meta


@pytest.mark.parametrize("inputs, message", [
    (np.zeros((2, 8, 9)), r"inputs must have shape \(8, 9, 7\) or \(N, 8, 9, 7\), not \(2, 8, 9\)"),
    (np.full((1, 8, 9, 7), 256), r"inputs must lie in the 8-bit unsigned range 0..255; input 0 "
                                 r"has 256 at \(0, 0, 0\)"),
    (np.zeros((1, 8, 9, 7)) + 0.5, r"inputs must be integers, not float64"),
    (np.zeros((0, 8, 9, 7), dtype=int), r"inputs must hold at least one frame"),
])
def test_bad_inputs_are_refused(tmp_path, small_design, inputs, message):
    graph, meta = small_design
    with pytest.raises(ValueError, match=message):
        simulate_engine(graph, inputs, out_dir=tmp_path, design=meta)
    assert not (tmp_path / "sim_build").exists()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"latency": -1}, ValueError, r"latency must be a non-negative integer of cycles or a "
                                  r"\(min, max\) pair with 0 <= min <= max, not -1"),
    ({"latency": 1.5}, ValueError, r"latency must .*, not 1.5"),
    ({"latency": (5, 2)}, ValueError, r"latency must .*, not \(5, 2\)"),
    ({"backpressure": 1.0}, ValueError, r"backpressure must be a probability in \[0, 1\)"),
    ({"seed": "x"}, TypeError, r"seed must be an integer, not 'x'"),
    ({"max_cycles": 0}, ValueError, r"max_cycles must be a positive integer, not 0"),
    ({"simulator": "questa"}, ValueError, r"simulator must be one of 'icarus', 'verilator', not "
                                          r"'questa'"),
    ({"config": EngineConfig(tm=8, tn=8)}, ValueError, r"config .* is not the design's engine"),
    ({"config": {"tm": 4}}, TypeError, r"config must be an EngineConfig"),
])
def test_bad_arguments_are_refused(tmp_path, small_design, kwargs, error, message):
    graph, meta = small_design
    with pytest.raises(error, match=message):
        simulate_engine(graph, np.zeros((8, 9, 7), dtype=int), out_dir=tmp_path, design=meta,
                        **kwargs)
    assert not (tmp_path / "sim_build").exists()


def test_a_design_of_another_graph_is_refused(tmp_path, small_design):
    graph, meta = small_design
    other = graph_of((8, 9, 7), [g.conv2d("conv", np.ones((7, 8, 3, 3), int),
                                          np.zeros(7, int), np.full(7, 4), padding=1)])
    with pytest.raises(ValueError, match=r"design does not fit the graph:\n"
                                         r"design layer 'conv' writes 'act', which the graph "
                                         r"does not have"):
        simulate_engine(other, np.zeros((8, 9, 7), dtype=int), out_dir=tmp_path, design=meta)
    wide = graph_of((8, 9, 7), graph.nodes, bits=9)
    with pytest.raises(ValueError, match=r"design input is 8-bit unsigned \(0..255\) and cannot "
                                         r"carry the graph input range 0..511"):
        simulate_engine(wide, np.zeros((8, 9, 7), dtype=int), out_dir=tmp_path, design=meta)


def test_design_metadata_is_checked(tmp_path, small_design):
    _, meta = small_design
    with pytest.raises(ValueError, match=r"describes architecture 'dataflow'; simulate_engine "
                                         r"runs 'engine' designs"):
        load_engine_design({k: v for k, v in meta.items() if k != "architecture"})
    broken = meta | {"layers": [], "top": "1top"}
    with pytest.raises(ValueError, match=r"design metadata is invalid:\nmetadata top must be a "
                                         r"Verilog module name, not '1top'\nmetadata "
                                         r"layers must list the program's layers"):
        load_engine_design(broken)
    size = meta["image_bytes"] + 64
    with pytest.raises(ValueError, match=rf"holds \d+ bytes; the metadata says {size}"):
        load_engine_design(meta | {"image_bytes": size})
    with pytest.raises(FileNotFoundError, match="design image file"):
        load_engine_design(meta | {"image": str(tmp_path / "none.bin")})
    loaded = load_engine_design(Path(meta["image"]).parent)      # the folder works too
    assert loaded["config"] == SIM and loaded["verilog"] == meta["verilog"]


def test_a_missing_simulator_is_reported_before_generating(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"needs `iverilog`, which is not on PATH"):
        simulate_engine(conv_graph(), np.zeros((8, 9, 7), dtype=int), out_dir=tmp_path,
                        config=SIM)
    assert not (tmp_path / "rtl").exists()


# -- a whole network in Verilator ------------------------------------------------------------------

#: An engine for ResNet-18 at 32 x 32: 8 x 8 lanes (one 8-bit in eight), buffers for the
#: widest band of rows and the deepest fold (layer4's 3 x 3 x 512 k-steps), and an address
#: space for its 22 MB image.
RESNET_ENGINE = EngineConfig(tm=8, tn=8, addr_bits=25, input_words=512, output_words=256,
                             weight_words=1024)


@pytest.mark.slow
@pytest.mark.verilator
def test_resnet18_runs_whole_in_verilator(tmp_path):
    graph = zoo.resnet18(seed=0, input_size=32)
    x = np.random.default_rng(0).integers(0, 256, (1, 3, 32, 32))
    result = simulate_engine(graph, x, out_dir=tmp_path, config=RESNET_ENGINE,
                             simulator="verilator", backpressure=0.1, latency=4, seed=1)
    assert result.ok, result.describe()
    values = quant.run(graph, x)
    assert len(result.tensors) == 36 and result.tensors[-1] == "fc"
    for value in result.tensors:
        assert np.array_equal(result.outputs[value], values[value]), value
    assert np.array_equal(result.cycles_register, result.frame_cycles)
    print(f"\nResNet-18 at 32 x 32 on {RESNET_ENGINE.tm} x {RESNET_ENGINE.tn}: "
          f"{int(result.frame_cycles[0])} cycles, {result.sim_seconds:.1f} s in Verilator "
          f"({result.cycles_per_second:.0f} cycles/s)")
