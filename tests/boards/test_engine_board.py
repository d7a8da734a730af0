"""Engine board builds: Vivado projects for PYNQ-Z2 and ZCU102 (dry runs), the PYNQ driver
run against the engine's RTL in simulation, the engine's self-test, errors; the ULX3S
self-test bitstream in the slow tier."""

import json
import queue
import re
import subprocess
import sys
import threading
import types
from dataclasses import replace

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

import boards
import quant
from boards import BoardError, get_board, vivado
from boards.drivers import engine as driver
from boards.engine import buffer_bits, selftest_input
from boards.engine_selftest import EngineSelfTest
from tests.hwgen.engine.test_engine import global_pool_graph
from hwgen.app.cli import main
from hwgen.engine import compile_program, run_image
from hwgen.engine.control import MAGIC, REGISTERS
from hwgen.engine.core import Engine

from ..hwgen.engine.bench import axil_read, axil_write, port_memories
from .engine_graphs import small_cnn, small_engine

FAMILY = {"pynq_z2": "xc7", "zcu102": "xcup"}
PROCESSOR = {"pynq_z2": ("processing_system7", "M_AXI_GP0", "S_AXI_HP0",
                         "S_AXI_HP0/HP0_DDR_LOWOCM", "0x43c00000"),
             "zcu102": ("zynq_ultra_ps_e", "M_AXI_HPM0_FPD", "S_AXI_HP0_FPD",
                        "SAXIGP2/HP0_DDR_LOW", "0xa0000000")}


@pytest.fixture(scope="module")
def zynq_builds(tmp_path_factory):
    """Dry-run engine builds (no estimate) for both Zynq boards."""
    graph = small_cnn()
    root = tmp_path_factory.mktemp("engine")
    return graph, {name: (root / name, boards.build(
        graph, name, root / name, dry_run=True, estimate=False, arch="engine",
        engine=small_engine(family), log=None)) for name, family in FAMILY.items()}


def _connected(tcl, a, b):
    return re.search(rf"^connect_bd_intf_net \[get_bd_intf_pins {re.escape(a)}\] "
                     rf"\[get_bd_intf_pins {re.escape(b)}\]$", tcl, re.M) is not None


@pytest.mark.parametrize("name", ["pynq_z2", "zcu102"])
def test_zynq_engine_dry_run_writes_a_complete_project(zynq_builds, name):
    graph, builds = zynq_builds
    out, report = builds[name]
    board = get_board(name)
    ip, master, slave, ddr, base = PROCESSOR[name]
    tcl = (out / "build.tcl").read_text()
    assert re.search(rf"^set part {re.escape(board.part)}$", tcl, re.M)
    assert f"[latest_ip {ip}] ps]" in tcl
    assert "create_bd_cell -type module -reference hwgen_engine accel" in tcl
    # AXI4-Lite registers on the general-purpose master, the AXI4 master on the HP port.
    assert _connected(tcl, f"ps/{master}", "ctrl_xbar/S00_AXI")
    assert _connected(tcl, "ctrl_xbar/M00_AXI", "accel/s_axi")
    assert _connected(tcl, "accel/m_axi", "mem_xbar/S00_AXI")
    assert _connected(tcl, "mem_xbar/M00_AXI", f"ps/{slave}")
    assert "axi_dma" not in tcl
    # Address map: registers in the processor's space, the DDR in the engine's.
    assert f"-offset {base} -range 0x1000" in tcl
    assert f"[get_bd_addr_segs ps/{ddr}]" in tcl
    assert "assign_bd_address -target_address_space [get_bd_addr_spaces accel/m_axi] $ddr" \
        in tcl
    # Clock and reset reach the engine; the HP port is as wide as the engine's bus.
    assert "accel/aclk" in tcl and "accel/aresetn" in tcl
    width_key = {"pynq_z2": "PCW_S_AXI_HP0_DATA_WIDTH", "zcu102": "PSU__SAXIGP2__DATA_WIDTH"}
    assert f"CONFIG.{width_key[name]} {{64}}" in tcl
    rtl = re.search(r"^set rtl_files \[list ([^\]]*)\]$", tcl, re.M).group(1).split()
    assert rtl == ["rtl/hwgen_engine_core.v", "rtl/hwgen_engine.v"]
    wrapper = (out / "rtl/hwgen_engine.v").read_text()
    assert "PROTOCOL AXI4, DATA_WIDTH 64, ADDR_WIDTH 32" in wrapper
    assert "PROTOCOL AXI4LITE, DATA_WIDTH 32, ADDR_WIDTH 12" in wrapper
    assert re.search(r"^module hwgen_engine_core\(", (out / rtl[0]).read_text(), re.M)
    assert "-source build.tcl" in (out / "build.sh").read_text()
    assert report["flow"] == "zynq-engine" and report["architecture"] == "engine"
    assert set(report["files"]) >= {"build.tcl", "build.sh", "design.json", "program.bin",
                                    "driver/hwgen_engine.py", "driver/layout.py",
                                    "rtl/hwgen_engine.v", "rtl/hwgen_engine_core.v"}
    design = json.loads((out / "design.json").read_text())
    program = compile_program(graph, small_engine(FAMILY[name]))
    assert (out / "program.bin").read_bytes() == bytes(program.image)
    assert design["image_bytes"] == len(program.image)
    assert design["registers"] == REGISTERS and design["magic"] == MAGIC
    assert design["engine"]["family"] == FAMILY[name]
    assert report["cycles_per_frame"] == design["cycles_per_frame_model"]


@pytest.mark.parametrize("name, bits, width_key", [
    ("zcu102", 128, "PSU__SAXIGP2__DATA_WIDTH"), ("pynq_z2", 64, "PCW_S_AXI_HP0_DATA_WIDTH")])
def test_a_wider_engine_meets_the_widest_port(name, bits, width_key):
    """The block design's one high-performance port is at most ``port_bits`` wide: what the
    estimate of an engine as built takes as the engine's widest bus."""
    board = get_board(name)
    assert vivado.port_bits(board) == bits
    tcl = vivado.engine_block_design_tcl(board, rtl_files=["rtl/e.v"], module="e",
                                         data_bits=512)
    assert f"CONFIG.{width_key} {{{bits}}}" in tcl


def test_engine_wrapper_compiles(zynq_builds):
    """The wrapper and the engine's Verilog elaborate together (Icarus)."""
    _, builds = zynq_builds
    out, _ = builds["zcu102"]
    run = subprocess.run(["iverilog", "-g2012", "-s", "hwgen_engine", "-o", "/dev/null",
                          str(out / "rtl/hwgen_engine.v"), str(out / "rtl/hwgen_engine_core.v")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def ported_build(tmp_path_factory):
    """A dry-run ZCU102 build of a 512-bit engine on four 128-bit ports: ``(folder,
    config)``."""
    config = small_engine("xcup", data_bits=512, ports=4)
    out = tmp_path_factory.mktemp("engine_ports")
    boards.build(small_cnn(), "zcu102", out, dry_run=True, estimate=False, arch="engine",
                 engine=config, log=None)
    return out, config


#: Per board, high-performance port k's interface, enable and width settings, DDR segment
#: and clock pin.
HP_NAMES = {"zcu102": lambda k: (f"S_AXI_HP{k}_FPD", f"PSU__USE__S_AXI_GP{k + 2}",
                                 f"PSU__SAXIGP{k + 2}__DATA_WIDTH", f"SAXIGP{k + 2}/HP{k}_DDR_LOW",
                                 f"saxihp{k}_fpd_aclk"),
            "pynq_z2": lambda k: (f"S_AXI_HP{k}", f"PCW_USE_S_AXI_HP{k}",
                                  f"PCW_S_AXI_HP{k}_DATA_WIDTH", f"S_AXI_HP{k}/HP{k}_DDR_LOWOCM",
                                  f"S_AXI_HP{k}_ACLK")}


@pytest.mark.parametrize("name, ports, bits", [("zcu102", 4, 128), ("zcu102", 2, 128),
                                               ("pynq_z2", 2, 64), ("pynq_z2", 4, 64)])
def test_each_engine_port_takes_its_own_hp_port(name, ports, bits):
    """Each of the engine's ports goes through its own SmartConnect to its own HP port, as
    wide as the port has, with the PS DDR in its address space and the fabric clock."""
    tcl = vivado.engine_block_design_tcl(get_board(name), rtl_files=["e.v"], module="e",
                                         data_bits=ports * bits, ports=ports)
    for k in range(ports):
        slave, enable, width, segment, clock = HP_NAMES[name](k)
        assert _connected(tcl, f"accel/m_axi{k}", f"mem_xbar{k}/S00_AXI")
        assert _connected(tcl, f"mem_xbar{k}/M00_AXI", f"ps/{slave}")
        assert f"CONFIG.{enable} {{1}}" in tcl and f"CONFIG.{width} {{{bits}}}" in tcl
        assert f"[get_bd_addr_segs ps/{segment}]" in tcl
        assert f"[get_bd_addr_spaces accel/m_axi{k}] $ddr" in tcl
        assert f"ps/{clock}" in tcl and f"mem_xbar{k}/aresetn" in tcl
    assert HP_NAMES[name](ports)[0] not in tcl and "accel/m_axi]" not in tcl


def test_an_engine_on_four_ports_is_built_with_four_masters(ported_build):
    """The ZCU102 build's wrapper has the four 128-bit masters and elaborates with the
    engine; design.json says the ports and where PLANE is."""
    out, config = ported_build
    assert _connected((out / "build.tcl").read_text(), "mem_xbar3/M00_AXI",
                      "ps/S_AXI_HP3_FPD")
    wrapper = (out / "rtl/hwgen_engine.v").read_text()
    assert wrapper.count("PROTOCOL AXI4, DATA_WIDTH 128, ADDR_WIDTH 32") == 4
    assert "ASSOCIATED_BUSIF m_axi0:m_axi1:m_axi2:m_axi3:s_axi" in wrapper
    design = json.loads((out / "design.json").read_text())
    assert design["engine"]["ports"] == 4 and design["registers"]["PLANE"] == 0x2C
    run = subprocess.run(["iverilog", "-g2012", "-s", "hwgen_engine", "-o", "/dev/null",
                          str(out / "rtl/hwgen_engine.v"), str(out / "rtl/hwgen_engine_core.v")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_driver_refuses_planes_off_a_4_kib_page(ported_build):
    """A buffer on a 64-byte boundary serves a one-port engine; planes need 4 KiB pages."""
    out, config = ported_build
    design = json.loads((out / "design.json").read_text())

    class Registers:
        def read(self, offset):
            return {REGISTERS["ID"]: MAGIC, REGISTERS["CONFIG"]: design["config_word"]}[offset]

    with pytest.raises(RuntimeError, match=r"at 0x5040 .* is not 4096-byte aligned"):
        driver.EngineOverlay(out / "hwgen.bit", design=design,
                             image=(out / "program.bin").read_bytes(),
                             pynq=_fake_pynq(bytearray(1 << 20), Registers(), first=0x5040))


def test_more_ports_than_a_processor_has_are_refused():
    with pytest.raises(BoardError, match="has 4 high-performance ports"):
        vivado.engine_block_design_tcl(get_board("zcu102"), rtl_files=["e.v"], module="e",
                                       data_bits=1024, ports=8)


def test_bundled_engine_driver_runs_without_the_project(zynq_builds, tmp_path):
    """driver/ imports on its own (no hwgen, no pynq) and packs as the project does."""
    graph, builds = zynq_builds
    out, _ = builds["pynq_z2"]
    x = selftest_input(graph, 3)
    np.save(tmp_path / "x.npy", x)
    script = ("import sys, numpy as np, hwgen_engine as d\n"
              "assert 'hwgen' not in sys.modules and 'pynq' not in sys.modules\n"
              f"design = d.load_design({str(out / 'design.json')!r})\n"
              f"image = bytearray(open({str(out / 'program.bin')!r}, 'rb').read())\n"
              f"d.write_input(image, design, np.load({str(tmp_path / 'x.npy')!r}))\n"
              "sys.stdout.buffer.write(bytes(image))\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=out / "driver",
                         capture_output=True, env={"PYTHONPATH": str(out / "driver")})
    assert run.returncode == 0, run.stderr.decode()
    program = compile_program(graph, small_engine("xc7"))
    assert run.stdout == bytes(program.load_input(bytearray(program.image), x))


# -- the driver against the engine's RTL ---------------------------------------------------------

class _Registers:
    """The engine's AXI4-Lite port as PYNQ's register interface (``read``, ``write``), served
    by the engine in the Amaranth simulator, each of its AXI4 masters on ``memory`` (stalling
    at random, each on its own). The simulation runs in a thread; while the driver does not
    access a register, simulated time stands."""

    def __init__(self, config, memory, faulty=None):
        self.requests, self.replies = queue.Queue(), queue.Queue()
        self.dut = Engine(config)
        faulty = faulty or {}
        self.axi = port_memories(self.dut, config, memory, lambda k: dict(
            latency=2 + k, stall=0.2 if config.ports > 1 else 0.0, seed=k,
            faulty=faulty.get(k, range(0))))
        self.thread = threading.Thread(target=self._simulate, daemon=True)
        self.thread.start()

    def _simulate(self):
        dut = self.dut

        async def bench(ctx):
            while (request := self.requests.get()) is not None:
                kind, offset, value = request
                try:
                    if kind == "write":
                        await axil_write(ctx, dut.s_axil, offset, value)
                        self.replies.put(None)
                    else:
                        self.replies.put(await axil_read(ctx, dut.s_axil, offset))
                except Exception as error:      # noqa: BLE001 - handed to the driver
                    self.replies.put(error)

        top = Module()
        top.domains.sync = ClockDomain()
        top.submodules.dut = dut
        sim = Simulator(top)
        sim.add_clock(1e-8)
        for axi in self.axi:
            sim.add_testbench(axi.read, background=True)
            sim.add_testbench(axi.write, background=True)
        sim.add_testbench(bench)
        sim.run()

    def _call(self, *request):
        self.requests.put(request)
        reply = self.replies.get(timeout=600)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def read(self, offset):
        return self._call("read", offset, None)

    def write(self, offset, value):
        self._call("write", offset, value)

    def close(self):
        self.requests.put(None)
        self.thread.join(timeout=60)


class _Buffer(np.ndarray):
    """What ``pynq.allocate`` returns: an array over physical memory."""

    def flush(self):
        pass

    def invalidate(self):
        pass

    def freebuffer(self):
        pass


def _fake_pynq(memory, registers, first=0x5000):
    """A ``pynq`` module whose buffers lie in ``memory`` (page aligned, from ``first``) and
    whose overlay's engine cell is ``registers``."""
    state = {"next": first}

    def allocate(shape, dtype):
        count = int(np.prod(shape))
        address = state["next"]
        state["next"] += -(-count // 4096) * 4096
        array = np.frombuffer(memory, dtype=dtype, count=count, offset=address).view(_Buffer)
        array.physical_address = address
        return array

    return types.SimpleNamespace(allocate=allocate,
                                 Overlay=lambda path: types.SimpleNamespace(accel=registers))


@pytest.mark.parametrize("ports", [1, 4])
def test_driver_runs_frames_on_the_engine_rtl(zynq_builds, ported_build, ports):
    """The driver's own packing builds each frame's image in 'DDR' (in planes, on four
    ports), the engine's RTL runs it from there, the driver reads the outputs and counters
    back: outputs equal the golden, every tensor equals what the image's own reference
    (hwgen.engine.image, run_image) leaves, and the counters report the run."""
    graph, builds = zynq_builds
    if ports == 1:
        out, _ = builds["pynq_z2"]
        config = small_engine("xc7", addr_bits=20)
    else:
        out, config = ported_build
        config = replace(config, addr_bits=20)
    design = json.loads((out / "design.json").read_text())
    design["engine"]["addr_bits"] = config.addr_bits     # the simulated DDR is 1 MiB
    memory = bytearray(1 << config.addr_bits)
    registers = _Registers(config, memory)
    try:
        engine = driver.EngineOverlay(out / "hwgen.bit", design=design,
                                      image=(out / "program.bin").read_bytes(), timeout=600,
                                      pynq=_fake_pynq(memory, registers))
        assert engine.buffer.physical_address == 0x5000
        assert engine.planes.ports == ports
        rng = np.random.default_rng(7)
        x = rng.integers(0, 256, (2, 3, 8, 8))
        y = engine.run(x)
        golden = quant.run(graph, x)[graph.output]
        assert y.shape == golden.shape and np.array_equal(y, golden)
        counters = engine.counters()
        assert counters["STATUS"] == 0b010 and counters["ERROR"] == 0
        assert counters["LAYERS"] == len(design["layers"])
        assert 0 < counters["CYCLES"] < 10 * design["cycles_per_frame_model"]
        # The last frame's image against the reference run on the compiler's image.
        program = compile_program(graph, replace(config, addr_bits=32))
        want = run_image(program.load_input(bytearray(program.image), x[-1]),
                         program.config)
        for layer in program.layers:
            assert np.array_equal(driver.read_tensor(engine.buffer, design, layer.output),
                                  program.read(want, layer.output)), layer.name
        if ports > 1:
            # Plane k of the buffer holds lane k of every bus word of the image.
            buffer, lane = np.asarray(engine.buffer), config.port_bits // 8
            word = config.data_bytes
            first = bytes(program.image[:word])
            for k in range(ports):
                start = k * engine.planes.plane_bytes
                assert buffer[start:start + lane].tobytes() == first[k * lane:(k + 1) * lane]
        engine.close()
    finally:
        registers.close()


def test_driver_names_an_error_response_on_one_port(ported_build):
    """One of four ports answers every burst SLVERR: the engine stops before its first layer
    and the driver's error names the code and its meaning."""
    out, config = ported_build
    config = replace(config, addr_bits=20)
    design = json.loads((out / "design.json").read_text())
    design["engine"]["addr_bits"] = config.addr_bits
    memory = bytearray(1 << config.addr_bits)
    registers = _Registers(config, memory, faulty={2: range(len(memory))})
    try:
        engine = driver.EngineOverlay(out / "hwgen.bit", design=design,
                                      image=(out / "program.bin").read_bytes(), timeout=600,
                                      pynq=_fake_pynq(memory, registers))
        with pytest.raises(driver.EngineError, match=r"ERROR 3 \(a DRAM read or write was "
                                                     r"answered with an error .*\) after 0 "
                                                     r"layers"):
            engine.run_frame(np.zeros((3, 8, 8), dtype=np.int64))
        engine.close()
    finally:
        registers.close()


def test_driver_refuses_another_engine(zynq_builds):
    """A bitstream whose CONFIG word is not the program's engine is refused."""
    _, builds = zynq_builds
    out, _ = builds["pynq_z2"]
    design = json.loads((out / "design.json").read_text())

    class Registers:
        def read(self, offset):
            return {REGISTERS["ID"]: MAGIC, REGISTERS["CONFIG"]: 0x0008_1010}[offset]

    with pytest.raises(RuntimeError, match="CONFIG 0x00081010"):
        driver.EngineOverlay(out / "hwgen.bit", design=design,
                             image=(out / "program.bin").read_bytes(),
                             pynq=_fake_pynq(bytearray(1 << 16), Registers()))


# -- the self-test ---------------------------------------------------------------------------

def _run_selftest(test):
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.test = test
    sim = Simulator(top)
    sim.add_clock(1e-8)
    result = {}

    async def bench(ctx):
        for cycle in range(test.cycles):
            await ctx.tick()
            if ctx.get(test.done):
                break
        result.update(cycles=cycle, done=ctx.get(test.done), passed=ctx.get(test.passed),
                      failed=ctx.get(test.failed), mismatches=ctx.get(test.mismatches))

    sim.add_testbench(bench)
    sim.run()
    return result


@pytest.fixture(scope="module")
def selftest_program():
    graph = small_cnn()
    x = selftest_input(graph, 0)
    program = compile_program(graph, small_engine("ecp5", addr_bits=16))
    program.load_input(program.image, x)
    golden = {value: tensor[0] for value, tensor in quant.run(graph, x[None]).items()}
    return program, golden


def test_engine_selftest_passes_with_the_golden(selftest_program):
    program, golden = selftest_program
    result = _run_selftest(EngineSelfTest(program, golden))
    assert result["done"] and result["passed"] and not result["failed"], result
    assert result["mismatches"] == 0


@pytest.mark.parametrize("element", [3, -1], ids=["early", "last"])
def test_engine_selftest_fails_on_one_wrong_element(selftest_program, element):
    """One element of the output (not a padding bit) differs from what the engine writes:
    the test fails with one mismatching word, also when it is in the last word checked (so
    the count waits for the comparison)."""
    program, golden = selftest_program
    output = program.graph.output
    wrong = dict(golden, **{output: golden[output].copy()})
    wrong[output].flat[element] ^= 1
    result = _run_selftest(EngineSelfTest(program, wrong))
    assert result["done"] and result["failed"] and not result["passed"], result
    assert result["mismatches"] == 1


@pytest.mark.parametrize("graph", [
    small_cnn(),
    # Its global pool is more than the input buffer holds: the self-test checks the row sums.
    global_pool_graph(np.random.default_rng(2))[0]], ids=["cnn", "split_pool"])
def test_ecp5_engine_dry_run(tmp_path, graph):
    report = boards.build(graph, "ulx3s_85f", tmp_path, dry_run=True, estimate=False,
                          arch="engine", engine=small_engine("ecp5", addr_bits=16), log=None)
    assert report["flow"] == "selftest" and report["architecture"] == "engine"
    assert report["notes"] and "no processing system" in report["notes"][0]
    assert {"build.sh", "build_selftest.sh", "selftest.il"} <= set(report["files"])
    assert report["selftest"]["checked_words"] > 0


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("board, config, message", [
    ("pynq_z2", small_engine("xcup"), r"packed for xcup; board pynq_z2 .* has xc7 "
                                      r"multipliers: give --engine family=xc7"),
    ("pynq_z2", small_engine("xc7", tm=64, tn=64, lane_bits=(8,) * 64),
     r"64x64 MAC array takes [\d,]+ DSP slices; board pynq_z2 \(xc7z020clg400-1\) has 220"),
    ("pynq_z2", small_engine("xc7", input_words=1 << 16),
     r"buffers take [\d,]+ Kbit; the block RAM of board pynq_z2 .* holds 5,040 Kbit"),
    ("zcu102", small_engine("xcup", addr_bits=20),
     r"20-bit addresses reach 0x100000 bytes; the PS DDR .* spans 0x80000000: give "
     r"--engine addr_bits=31"),
    ("ulx3s_12f", small_engine("ecp5", input_words=1 << 12),
     r"buffers and the self-test's copy of the DRAM image take [\d,]+ Kbit; the block RAM "
     r"of board ulx3s_12f .* holds 576 Kbit"),
    ("ulx3s_85f", small_engine("ecp5", data_bits=128, ports=2),
     r"self-test serves the engine's DRAM image from block RAM on one AXI4 port; this engine "
     r"has 2: give --engine ports=1"),
])
def test_boards_that_cannot_take_the_engine(tmp_path, board, config, message):
    with pytest.raises(BoardError, match=message):
        boards.build(small_cnn(), board, tmp_path, dry_run=True, estimate=False,
                     arch="engine", engine=config, log=None)
    assert not (tmp_path / "build.tcl").exists()


def test_buffer_bits_of_the_default_engine():
    from hwgen.engine import EngineConfig
    assert buffer_bits(EngineConfig()) > 2 * 2048 * 16 * 17


def test_dataflow_options_are_refused_for_the_engine(tmp_path):
    with pytest.raises(ValueError, match="folding configure the dataflow architecture"):
        boards.build(small_cnn(), "zcu102", tmp_path, dry_run=True, estimate=False,
                     arch="engine", folding={"conv1": (1, 1)}, log=None)


def test_cli_build_engine(tmp_path, capsys):
    model = tmp_path / "cnn.qgraph"
    quant.save(small_cnn(), model)
    out = tmp_path / "out"
    code = main(["build", str(model), "--board", "pynq_z2", "--arch", "engine", "--engine",
                 "tm=4,tn=4,lane_bits=4/4/4/8,input_words=256,output_words=128,"
                 "weight_words=128", "--dry-run", "--no-synth", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "zynq-engine (hwgen_engine)" in text
    design = json.loads((out / "design.json").read_text())
    assert design["engine"]["family"] == "xc7"           # the board's, as none was given
    assert not (out / "INCOMPLETE").exists()
    for argv, message in [
        (["--engine", "tm=4,tn=4"], "--engine configures --arch engine"),
        (["--arch", "engine", "--folding", "conv1=1x1"], "--folding configure the dataflow"),
        (["--arch", "engine", "--engine", "tm=4,tn=4,lane_bits=4/4/4/8,family=xcup"],
         "packed for xcup"),
    ]:
        code = main(["build", str(model), "--board", "pynq_z2", "--dry-run", "--no-synth",
                     "--out", str(tmp_path / "bad"), *argv])
        assert code == 1 and message in capsys.readouterr().err, argv


# -- place and route ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.xfail(strict=True, raises=boards.BuildError, reason=(
    "benchmarks/engine_ulx3s.json: nextpnr's Fmax is 65.34 MHz; the critical path (15.3 ns, "
    "12.9 of routing) is the loader's state into the unpacker's buffer enable"))
def test_ulx3s_engine_selftest_reaches_100_mhz(tmp_path):
    """The open flow end to end: a 4x4 engine and its self-test program on the ULX3S 85F, at
    least 100 MHz in nextpnr under the 100 MHz constraint of the PLL's output (the build
    raises BuildError when nextpnr's Fmax is below it)."""
    report = boards.build(small_cnn(), "ulx3s_85f", tmp_path, arch="engine",
                          engine=small_engine("ecp5", addr_bits=16), log=None)
    timing = report["timing"]
    assert timing["constraint_mhz"] == 100 and timing["met"] and timing["fmax_mhz"] >= 100
    util = report["utilization"]
    assert util["design"]["DSP"] > 0 and util["design"]["BRAM"] > 0
    assert (tmp_path / "selftest.bit").stat().st_size > 100_000
