"""Board registry and the platforms defined here (PYNQ-Z2, ZCU102)."""

import pytest
from amaranth.build import ResourceError

from boards import BoardError, cli_list, get_board, list_boards
from boards.platforms import PynqZ2Platform, ZCU102Platform
from boards.registry import DEFAULT_TARGET_MHZ
from hwgen.model import DEVICES, device

EXPECTED = {
    # name: (part, board clock MHz, toolchain, family, processor)
    "pynq_z2": ("xc7z020clg400-1", 125, "vivado", "xc7", "ps7"),
    "zcu102": ("xczu9eg-ffvb1156-2-e", 125, "vivado", "xcup", "psu"),
    "arty_z7_20": ("xc7z020clg400-1", 125, "vivado", "xc7", None),
    "arty_a7_35": ("xc7a35ticsg324-1L", 100, "vivado", "xc7", None),
    "nexys4ddr": ("xc7a100tcsg324-1", 100, "vivado", "xc7", None),
    "kcu105": ("xcku040-ffva1156-2-e", 125, "vivado", "xcup", None),
    "ulx3s_85f": ("LFE5U-85F-6BG381", 25, "open-ecp5", "ecp5", None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_board(name):
    board = get_board(name)
    part, clock, toolchain, family, processor = EXPECTED[name]
    assert (board.part, board.clock_mhz, board.toolchain, board.family, board.processor) == \
        (part, clock, toolchain, family, processor)
    assert board.resources is not None and board.target_mhz == DEFAULT_TARGET_MHZ
    assert board.as_dict()["platform"].endswith(board.platform.__qualname__)


def test_every_registered_board_can_run_the_selftest():
    """A default clock and at least three LEDs (done, passed, failed) on every board."""
    for board in list_boards():
        platform = board.platform()
        assert platform.default_clk is not None, board.name
        leds = 0
        for i in range(8):
            try:
                platform.lookup("led", i)
            except ResourceError:
                break
            leds += 1
        assert leds >= 3, board.name
        assert board.resources is not None, board.name


def test_every_board_part_is_in_the_estimators_table():
    """One table of capacities: each board's part, its family and the fit check's figures
    come from :data:`hwgen.model.DEVICES`, and the board's name finds the part."""
    for board in list_boards():
        part = board.device
        assert part is not None and part is device(board.name), board.name
        assert part.family == board.family and board.name in part.boards
        bram = part.bram18 if part.family == "ecp5" else part.bram18 // 2
        assert board.resources == {"LUT": part.lut, "FF": part.ff, "DSP": part.dsp,
                                   "BRAM": bram}
        assert board.as_dict()["device"] == part.name


def test_unknown_board_lists_the_known_ones():
    names = ", ".join(board.name for board in list_boards())
    with pytest.raises(BoardError, match=r"^unknown board 'pynq_z3'; known boards: "
                                         + names.replace("(", r"\(") + r" \(or give"):
        get_board("pynq_z3")


def test_board_as_module_and_class():
    board = get_board("amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_85FPlatform")
    assert board.part == "LFE5U-85F-8MG285" and board.family == "ecp5"
    assert board.clock_mhz == 48 and board.device is DEVICES["lfe5u-85f"]
    assert board.resources == {"LUT": 83_640, "FF": 83_640, "DSP": 156, "BRAM": 208}
    assert get_board(board) is board


@pytest.mark.parametrize("spec, message", [
    ("no_such_module:Platform", r"module 'no_such_module' cannot be imported"),
    ("amaranth_boards.ulx3s:NoSuchPlatform", r"has no 'NoSuchPlatform'"),
    ("amaranth_boards.icestick:ICEStickPlatform", r"neither a Xilinx nor an ECP5 platform"),
    ("boards.registry:DEFAULT_TARGET_MHZ", r"'DEFAULT_TARGET_MHZ' is not a platform class"),
    (":Platform", r"must be a registered name or 'module:Class'"),
], ids=["module", "class", "ice40", "not-a-class", "empty-module"])
def test_bad_module_class(spec, message):
    with pytest.raises(BoardError, match=message):
        get_board(spec)


def test_board_name_type():
    with pytest.raises(TypeError, match="board must be a board name"):
        get_board(3)


def _pins(platform, name, count):
    pins = []
    for i in range(count):
        resource = platform.lookup(name, i)
        io = resource.ios[0]
        pins.append(io.names[0] if hasattr(io, "names") else (io.p.names[0], io.n.names[0]))
    return pins


def test_pynq_z2_pins():
    platform = PynqZ2Platform()
    assert platform.default_clk_frequency == 125e6
    assert _pins(platform, "clk125", 1) == ["H16"]
    assert _pins(platform, "led", 4) == ["R14", "P14", "N16", "M14"]
    assert _pins(platform, "button", 4) == ["D19", "D20", "L20", "L19"]
    assert _pins(platform, "switch", 2) == ["M20", "M19"]


def test_zcu102_pins():
    platform = ZCU102Platform()
    assert platform.default_clk_frequency == 125e6
    assert _pins(platform, "clk125", 1) == [("G21", "F21")]
    assert _pins(platform, "led", 8) == ["AG14", "AF13", "AE13", "AJ14", "AJ15", "AH13",
                                         "AH14", "AL12"]
    assert _pins(platform, "button", 5) == ["AG15", "AE14", "AE15", "AF15", "AG13"]


def test_cli_list():
    text = cli_list()
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "PART", "CLOCK", "TOOLCHAIN", "FAMILY", "TOPS"]
    for board in list_boards():
        assert any(line.split()[:2] == [board.name, board.part] for line in lines), board.name
    assert "zcu102" in text and "zynq-dma, selftest" in text and "module:Class" in text
