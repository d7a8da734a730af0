"""The engine on several AXI4 ports (hwgen.engine.ports), each port on its own cocotbext-axi
AxiRam over one memory that holds the image in planes: every tensor equals the golden when
the ports stall and answer late independently of each other, and without pauses each layer
takes the one-port cycle model's cycles."""

from dataclasses import replace

import pytest

from hwgen.engine.model import program_cycles
from sim.engine import simulate_engine
from tests.graphgen import random_inputs
from tests.sim.test_engine_sim import SIM, check_result, engine_design, mixed_graph, stem_graph


@pytest.fixture(scope="module", params=[2, 4])
def ported(request, engine_verilog):
    """``(config, folder, top.v)`` of a 128-bit engine on 2 or 4 ports."""
    config = replace(SIM, data_bits=128, ports=request.param)
    path = engine_verilog(config)
    return config, path.parent, path


def test_without_pauses_each_layer_takes_the_models_cycles(ported):
    config, folder, verilog = ported
    graph = mixed_graph()
    meta, program = engine_design(graph, folder / "mixed", verilog, config)
    x = random_inputs(graph, 2, 8)
    result = simulate_engine(graph, x, out_dir=folder, design=meta, latency=3)
    check_result(result, graph, x, program)
    cycles = program_cycles(program, latency=3)
    assert result.layer_cycles.tolist() == [[layer.total for layer in cycles.layers]] * len(x)
    assert result.frame_cycles.tolist() == [cycles.total] * len(x)


def test_ports_stalling_apart_leave_values_alone(ported):
    config, folder, verilog = ported
    graph = stem_graph()
    meta, program = engine_design(graph, folder / "stem", verilog, config)
    x = random_inputs(graph, 2, 5)
    result = simulate_engine(graph, x, out_dir=folder, design=meta, backpressure=0.3,
                             latency=(1, 9), seed=11)
    check_result(result, graph, x, program)
