"""The boards a design can be built for: name, part, clock, toolchain, family and platform.

:func:`get_board` takes a registered name (``pynq_z2``, ``zcu102``, ``ulx3s_85f``, ...) or
``"module:Class"`` naming any Amaranth Xilinx or ECP5 platform class. :func:`list_boards`
lists the registered ones.
"""

import importlib
from dataclasses import dataclass, field

from amaranth.vendor import LatticeECP5Platform, XilinxPlatform

from hwgen.model.devices import find_device

from .errors import BoardError
from .platforms import PynqZ2Platform, ZCU102Platform

__all__ = ["Board", "DEFAULT_TARGET_MHZ", "list_boards", "get_board", "resource_units"]

#: Clock the self-test runs at on every board (made by a PLL or MMCM from the board clock), and
#: the fabric clock of the Zynq block designs.
DEFAULT_TARGET_MHZ = 100.0

_RESOURCE_UNITS = {"LUT": "LUTs", "FF": "flip-flops", "DSP": "DSP slices",
                   "BRAM": "block RAMs"}


@dataclass(frozen=True)
class Board:
    """A build target.

    Attributes
    ----------
    name : str
        Registry name (``pynq_z2``) or the ``module:Class`` it was given as.
    platform : type
        The Amaranth platform class.
    part : str
        Part name: as Vivado takes it (``xc7z020clg400-1``), or for ECP5 device, speed grade
        and package (``LFE5U-85F-6BG381``).
    clock_mhz : float
        Frequency of the board clock that the platform's default clock resource carries.
    toolchain : str
        ``"vivado"`` (a Vivado project is written; Vivado runs it) or ``"open-ecp5"`` (yosys,
        nextpnr-ecp5 and ecppack run here).
    family : str
        ``"xc7"`` (7-series, DSP48E1), ``"xcup"`` (UltraScale and UltraScale+, DSP48E2) or
        ``"ecp5"``; the family :func:`hwgen.synth.synthesize` maps to.
    processor : str or None
        ``"ps7"`` (Zynq-7000) or ``"psu"`` (Zynq UltraScale+ MPSoC) when the board's flow
        feeds the accelerator from the processing system through an AXI DMA; ``None`` when
        the board runs the self-test top only.
    device : hwgen.model.Device or None
        The part in the estimator's table (:data:`hwgen.model.DEVICES`, the one table of
        capacities), ``None`` for a part not in it.
    resources : dict or None
        What the build's fit check compares with (from ``device``): ``LUT``, ``FF``, ``DSP``
        and ``BRAM`` (36 Kb blocks on Xilinx, 18 Kb EBR on ECP5); ``None`` for an unknown part.
    target_mhz : float
        Clock the design runs at (:data:`DEFAULT_TARGET_MHZ`): the self-test top makes it from
        the board clock with a PLL or MMCM; the Zynq block designs take it from the
        processing system.
    description : str
    """

    name: str
    platform: type
    part: str
    clock_mhz: float
    toolchain: str
    family: str
    processor: str | None = None
    device: object = field(default=None, compare=False)
    resources: dict | None = field(default=None, compare=False)
    target_mhz: float = 0.0
    description: str = ""

    def as_dict(self):
        """JSON-ready summary (the platform as ``module:Class``)."""
        return {"name": self.name, "part": self.part, "clock_mhz": self.clock_mhz,
                "target_mhz": self.target_mhz, "toolchain": self.toolchain,
                "family": self.family, "processor": self.processor,
                "platform": f"{self.platform.__module__}:{self.platform.__qualname__}",
                "device": None if self.device is None else self.device.name,
                "resources": self.resources, "description": self.description}


def _describe(name, platform, *, processor=None, target_mhz=None, description=""):
    instance = platform()
    if isinstance(instance, XilinxPlatform):
        toolchain = "vivado"
        family = "xc7" if instance.family == "series7" else "xcup"
        if instance.family not in ("series7", "ultrascale", "ultrascaleplus"):
            raise BoardError(f"board {name!r}: Xilinx family {instance.family} is not "
                             f"supported; supported are 7-series, UltraScale and "
                             f"UltraScale+")
        part = instance._part
    elif isinstance(instance, LatticeECP5Platform):
        toolchain, family = "open-ecp5", "ecp5"
        part = f"{instance.device}-{instance.speed}{instance.package}"
    else:
        raise BoardError(f"board {name!r}: platform {platform.__qualname__} is neither a "
                         f"Xilinx nor an ECP5 platform; only those are supported")
    if instance.default_clk is None:
        raise BoardError(f"board {name!r}: platform {platform.__qualname__} has no default "
                         f"clock (default_clk); the self-test top needs one")
    clock_mhz = instance.default_clk_frequency / 1e6
    device = find_device(instance.device)
    return Board(name=name, platform=platform, part=part, clock_mhz=clock_mhz,
                 toolchain=toolchain, family=family, processor=processor, device=device,
                 resources=_resources(device, family),
                 target_mhz=float(target_mhz or DEFAULT_TARGET_MHZ), description=description)


def _resources(device, family):
    """The fit check's view of ``device``: block RAM in the units synthesis counts it in
    (RAMB36 on Xilinx, where a RAMB18 is half of one; 18 Kb EBR on ECP5)."""
    if device is None:
        return None
    bram = device.bram18 if family == "ecp5" else device.bram18 // 2
    return {"LUT": device.lut, "FF": device.ff, "DSP": device.dsp, "BRAM": bram}


def _registry():
    from amaranth_boards.arty_a7 import ArtyA7_35Platform, ArtyA7_100Platform
    from amaranth_boards.arty_s7 import ArtyS7_50Platform
    from amaranth_boards.arty_z7 import ArtyZ720Platform
    from amaranth_boards.genesys2 import Genesys2Platform
    from amaranth_boards.kc705 import KC705Platform
    from amaranth_boards.kcu105 import KCU105Platform
    from amaranth_boards.nexys4ddr import Nexys4DDRPlatform
    from amaranth_boards.ulx3s import (ULX3S_12F_Platform, ULX3S_25F_Platform,
                                       ULX3S_45F_Platform, ULX3S_85F_Platform)
    from amaranth_boards.versa_ecp5 import VersaECP5Platform

    entries = [
        ("pynq_z2", PynqZ2Platform, {"processor": "ps7",
                                     "description": "TUL PYNQ-Z2, Zynq-7020"}),
        ("zcu102", ZCU102Platform, {"processor": "psu",
                                    "description": "AMD ZCU102, Zynq UltraScale+ ZU9EG"}),
        ("arty_z7_20", ArtyZ720Platform, {"description": "Digilent Arty Z7-20, Zynq-7020 "
                                                         "(programmable logic only)"}),
        ("arty_a7_35", ArtyA7_35Platform, {"description": "Digilent Arty A7-35T"}),
        ("arty_a7_100", ArtyA7_100Platform, {"description": "Digilent Arty A7-100T"}),
        ("arty_s7_50", ArtyS7_50Platform, {"description": "Digilent Arty S7-50"}),
        ("nexys4ddr", Nexys4DDRPlatform, {"description": "Digilent Nexys 4 DDR, Artix-7 100T"}),
        ("genesys2", Genesys2Platform, {"description": "Digilent Genesys 2, Kintex-7 325T"}),
        ("kc705", KC705Platform, {"description": "AMD KC705, Kintex-7 325T"}),
        ("kcu105", KCU105Platform, {"description": "AMD KCU105, Kintex UltraScale KU040"}),
        ("ulx3s_12f", ULX3S_12F_Platform, {"description": "ULX3S, ECP5 12F"}),
        ("ulx3s_25f", ULX3S_25F_Platform, {"description": "ULX3S, ECP5 25F"}),
        ("ulx3s_45f", ULX3S_45F_Platform, {"description": "ULX3S, ECP5 45F"}),
        ("ulx3s_85f", ULX3S_85F_Platform, {"description": "ULX3S, ECP5 85F"}),
        ("versa_ecp5", VersaECP5Platform, {"description": "Lattice ECP5 Versa, ECP5UM 45F"}),
    ]
    return {name: _describe(name, platform, **options) for name, platform, options in entries}


_BOARDS = None


def _boards():
    global _BOARDS
    if _BOARDS is None:
        _BOARDS = _registry()
    return _BOARDS


def list_boards():
    """The registered boards, sorted by name."""
    return [board for _, board in sorted(_boards().items())]


def _from_class(spec):
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise BoardError(f"board {spec!r} must be a registered name or 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BoardError(f"board {spec!r}: module {module_name!r} cannot be imported ({e})") \
            from None
    platform = module
    for part in class_name.split("."):
        platform = getattr(platform, part, None)
        if platform is None:
            raise BoardError(f"board {spec!r}: module {module_name!r} has no {class_name!r}")
    if not isinstance(platform, type):
        raise BoardError(f"board {spec!r}: {class_name!r} is not a platform class")
    return _describe(spec, platform)


def get_board(name):
    """The :class:`Board` for a registered name or a ``"module:Class"`` platform.

    A :class:`Board` is returned unchanged.

    Raises
    ------
    BoardError
        For an unknown name (the message lists the known ones) or a class that is not a
        usable Xilinx or ECP5 platform.
    """
    if isinstance(name, Board):
        return name
    if not isinstance(name, str):
        raise TypeError(f"board must be a board name or 'module:Class', not {name!r}")
    if ":" in name:
        return _from_class(name)
    boards = _boards()
    if name not in boards:
        known = ", ".join(sorted(boards))
        raise BoardError(f"unknown board {name!r}; known boards: {known} (or give an Amaranth "
                         f"platform as 'module:Class')")
    return boards[name]


def resource_units(kind):
    """Human name of a resource kind (``"DSP"`` -> ``"DSP slices"``)."""
    return _RESOURCE_UNITS.get(kind, kind)
