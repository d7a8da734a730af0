"""The engine on several AXI4 ports: the image's planes, the configuration's rule, the ports'
members. (The engine's RTL on several ports runs in cocotb in tests/sim/test_engine_ports.py
and under the PYNQ driver in tests/boards/test_engine_board.py.)"""

import numpy as np
import pytest

import quant
from hwgen.engine import EngineConfig, compile_program
from hwgen.engine.control import ERRORS, REGISTERS, Control, config_word
from hwgen.engine.core import Engine
from hwgen.engine.layout import PLANE_ALIGN, ImagePlanes
from hwgen.engine.ports import Planes, port_names
from tests.hwgen.engine.bench import (axil_read, axil_write, clear_faults, run_engine,
                                      three_dense_layers)
from tests.hwgen.streams import run_unit

#: A small engine on two 64-bit ports.
TWO_PORTS = EngineConfig(tm=4, tn=4, data_bits=128, ports=2, addr_bits=20, input_words=64,
                         output_words=32, weight_words=32, channels=16)


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("ports", [1, 2, 4])
def test_planes_hold_the_image_lane_by_lane(image, ports):
    planes = ImagePlanes(ports, 64, len(image))
    buffer = np.frombuffer(planes.planes(image), dtype=np.uint8)
    assert planes.read(buffer.copy(), 0, len(image)) == image
    if ports == 1:
        assert buffer.tobytes() == image
        return
    lane = 64 // ports
    assert planes.plane_bytes % PLANE_ALIGN == 0
    assert planes.plane_bytes >= -(-len(image) // 64) * lane
    words = -(-len(image) // 64)
    padded = np.frombuffer(image + bytes(words * 64 - len(image)), dtype=np.uint8)
    for k in range(ports):
        plane = buffer[k * planes.plane_bytes:k * planes.plane_bytes + words * lane]
        assert np.array_equal(plane.reshape(words, lane),
                              padded.reshape(words, ports, lane)[:, k]), k


@pytest.mark.parametrize("ports", [1, 2, 4])
def test_writes_land_where_reads_find_them(image, ports):
    """A write at any offset, across words and lanes, changes those bytes and no others."""
    planes = ImagePlanes(ports, 64, len(image))
    buffer = bytearray(planes.planes(image))
    planes.write(buffer, 130, b"across a lane and a word: " * 3)
    want = bytearray(image)
    want[130:130 + 78] = b"across a lane and a word: " * 3
    assert planes.read(buffer, 0, len(image)) == bytes(want)
    assert planes.read(buffer, 150, 7) == bytes(want[150:157])


def test_nothing_to_write_writes_nothing(image):
    planes = ImagePlanes(4, 64, len(image))
    buffer = bytearray(planes.planes(image))
    planes.write(buffer, 128, b"")
    assert planes.read(buffer, 0, len(image)) == image
    assert ImagePlanes(2, 64, 0).planes(b"") == b""


@pytest.mark.parametrize("ports, data_bytes", [(3, 64), (4, 8), (8, 64), (True, 64)])
def test_planes_the_engine_cannot_have_are_refused(ports, data_bytes):
    with pytest.raises(ValueError, match="an image in planes needs one of 1, 2, 4 ports of at least 4 bytes each"):
        ImagePlanes(ports, data_bytes, 1000)


def test_bytes_outside_the_image_or_a_buffer_of_another_size_are_refused(image):
    planes = ImagePlanes(4, 64, len(image))
    with pytest.raises(ValueError, match="bytes 9990..10010 are not inside the image of "
                                         "10000 bytes"):
        planes.read(bytearray(planes.nbytes), 9990, 20)
    with pytest.raises(ValueError, match=f"the image's planes take {planes.nbytes} bytes, "
                                         f"not 10000"):
        planes.write(bytearray(len(image)), 0, b"x")


@pytest.mark.parametrize("fields, message", [
    ({"ports": 3}, "engine ports must be one of 1, 2, 4 with lanes of at least 32 bits "
                   r"\(data_bits / ports\), not 3 on a 64-bit bus"),
    ({"ports": 4, "data_bits": 64}, "not 4 on a 64-bit bus"),
    ({"ports": "2"}, "not '2'"),
    ({"ports": True}, "not True"),
])
def test_port_counts_the_engine_cannot_have_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**fields)


def test_the_configuration_carries_its_ports():
    config = EngineConfig(data_bits=512, ports=4)
    assert config.port_bits == 128
    assert EngineConfig.from_dict(config.as_dict()) == config
    assert EngineConfig.from_dict({k: v for k, v in config.as_dict().items()
                                   if k != "ports"}).ports == 1


def test_an_engine_has_one_master_per_port():
    engine = Engine(EngineConfig(tm=4, tn=4, data_bits=256, ports=4))
    members = engine.signature.members
    assert port_names(4) == ["m_axi0", "m_axi1", "m_axi2", "m_axi3"]
    assert "m_axi" not in members
    for name in port_names(4):
        assert members[name].signature.data_bits == 64
    assert Engine(EngineConfig(tm=4, tn=4)).signature.members["m_axi"].signature.data_bits == 64


@pytest.mark.parametrize("ports, data_bits", [(1, 128), (3, 128), (4, 64)])
def test_planes_need_two_or_more_ports_of_32_bits(ports, data_bits):
    with pytest.raises(ValueError, match="ports must be a power of two of at least 2"):
        Planes(addr_bits=32, data_bits=data_bits, ports=ports)


def test_config_word_and_plane_register_follow_the_ports():
    """CONFIG carries the ports (less one) above the bus bytes, so a driver refuses a
    bitstream of another port count; only an engine of several ports has PLANE."""
    assert config_word(EngineConfig(tm=16, tn=16, data_bits=512, ports=4)) == \
        16 | 16 << 8 | 64 << 16 | 3 << 24
    assert config_word(EngineConfig(tm=16, tn=16, data_bits=512)) == 16 | 16 << 8 | 64 << 16
    assert REGISTERS["PLANE"] == 0x2C
    assert "plane" not in Control(config_word=0).signature.members
    assert "plane" in Control(config_word=0, ports=2).signature.members


@pytest.mark.parametrize("program, plane", [(0x1000, 0), (0x1000, 0x1800), (0x1040, 0x2000)])
def test_planes_not_on_4_kib_pages_are_refused_before_any_read(program, plane):
    """An engine of several ports started with PLANE 0 or PROGRAM or PLANE off a 4 KiB page
    reports error 2 at once and reads nothing; with both on pages it starts fetching."""
    dut = Engine(TWO_PORTS)
    seen = {}

    async def bench(ctx):
        await axil_write(ctx, dut.s_axil, REGISTERS["PROGRAM_LO"], program)
        await axil_write(ctx, dut.s_axil, REGISTERS["PLANE"], plane)
        await axil_write(ctx, dut.s_axil, REGISTERS["CTRL"], 1)
        reads = 0
        for _ in range(20):
            reads += ctx.get(dut.m_axi0.arvalid) + ctx.get(dut.m_axi1.arvalid)
            await ctx.tick()
        seen["reads"] = reads
        seen["status"] = await axil_read(ctx, dut.s_axil, REGISTERS["STATUS"])
        seen["error"] = await axil_read(ctx, dut.s_axil, REGISTERS["ERROR"])
        seen["plane"] = await axil_read(ctx, dut.s_axil, REGISTERS["PLANE"])

    run_unit(dut, bench)
    assert seen["plane"] == plane
    assert (seen["status"], seen["error"], seen["reads"]) == (0b110, 2, 0)
    assert "4 KiB" in ERRORS[2]


def test_planes_on_pages_start_the_program():
    dut = Engine(TWO_PORTS)
    seen = {}

    async def bench(ctx):
        await axil_write(ctx, dut.s_axil, REGISTERS["PROGRAM_LO"], 0x3000)
        await axil_write(ctx, dut.s_axil, REGISTERS["PLANE"], 0x2000)
        await axil_write(ctx, dut.s_axil, REGISTERS["CTRL"], 1)
        addresses = set()
        for _ in range(20):
            for port in (dut.m_axi0, dut.m_axi1):
                if ctx.get(port.arvalid):
                    addresses.add(ctx.get(port.araddr))
            await ctx.tick()
        seen["addresses"] = addresses
        seen["status"] = await axil_read(ctx, dut.s_axil, REGISTERS["STATUS"])

    run_unit(dut, bench)
    # The first descriptor, offset 0 of the image: plane 0 at PROGRAM, plane 1 a PLANE on.
    assert seen["addresses"] == {0x3000, 0x5000}
    assert seen["status"] & 1


@pytest.mark.parametrize("ports, where", [(2, "read"), (4, "write")])
def test_an_error_response_on_one_port_stops_the_run(ports, where):
    """One port answers SLVERR to a read of layer 1's parameters or a write of its output
    (the other ports answer OKAY): the run stops after that layer with error 3. Started
    again without the fault, the engine runs every layer and the output is the golden."""
    config = EngineConfig(tm=4, tn=4, data_bits=64 * ports, ports=ports, addr_bits=20,
                          input_words=64, output_words=32, weight_words=32, channels=16)
    rng = np.random.default_rng(13)
    graph = three_dense_layers(rng)
    program = compile_program(graph, config)
    x = rng.integers(0, 256, 6)
    image = program.load_input(bytearray(program.image), x)
    planes = ImagePlanes(ports, config.data_bytes, len(image))
    base, memory = 0x4000, bytearray(1 << config.addr_bits)
    memory[base:base + planes.nbytes] = planes.planes(image)
    d = program.layers[1].descriptor
    offset = d.param_addr if where == "read" else d.out_addr
    faulty = base + (ports - 1) * planes.plane_bytes + offset // ports

    result = run_engine(config, memory, program=base, plane=planes.plane_bytes, stall=0.2,
                        seed=5, port_options={ports - 1: {"faulty": range(faulty, faulty + 1)}},
                        restart=clear_faults)
    first = result["first"]
    assert (first["status"], first["error"], first["layers_register"]) == (0b110, 3, 2)
    assert (result["status"], result["error"], result["layers_register"]) == (0b10, 0, 3)
    loaded = planes.read(memory[base:base + planes.nbytes], 0, len(image))
    golden = quant.run(graph, x[None])[graph.output][0]
    assert np.array_equal(program.read(loaded, graph.output).reshape(golden.shape), golden)
