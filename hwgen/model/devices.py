"""The FPGAs a design is estimated for: capacities, multiplier family and clock range.

Add a part by adding a :class:`Device` to :data:`DEVICES`; everything else reads the table.
"""

from dataclasses import asdict, dataclass

__all__ = ["Device", "DEVICES", "FAMILIES", "device"]

#: Families the cost model knows, with the hardware multiplier of each.
FAMILIES = {"xc7": "DSP48E1", "xcup": "DSP48E2", "ecp5": "MULT18X18D"}


@dataclass(frozen=True)
class Device:
    """One FPGA part and what it holds.

    Parameters
    ----------
    name : str
        Short name used on the command line (``"xc7z020"``).
    part : str
        Full part number of the reference board's chip.
    family : {"xc7", "xcup", "ecp5"}
        Logic and multiplier family (see :data:`FAMILIES`).
    lut, ff, dsp : int
        LUTs (LUT6 on Xilinx, LUT4 on ECP5), flip-flops, hardware multipliers.
    bram18 : int
        Block RAM in RAMB18 units (a RAMB36 is 2); on ECP5, EBR blocks (18 Kbit each).
    lutram : int
        LUTs that can be used as distributed RAM.
    clock_mhz : (float, float)
        Clock frequencies the part's clocking accepts: the lowest PLL/MMCM output and the
        global clock network's maximum at the part's speed grade.
    boards : tuple of str
        Boards that carry the part.
    """

    name: str
    part: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram18: int
    lutram: int
    clock_mhz: tuple
    boards: tuple = ()

    def capacity(self):
        """``{"lut", "ff", "dsp", "bram18", "lutram"}``: what the part holds, for utilization."""
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram18": self.bram18,
                "lutram": self.lutram}

    def check_clock(self, clock_mhz):
        """``clock_mhz`` as a float, or :class:`ValueError` when the part cannot run it."""
        lo, hi = self.clock_mhz
        if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)):
            raise TypeError(f"clock_mhz must be a number, not {clock_mhz!r}")
        if not lo <= clock_mhz <= hi:
            raise ValueError(f"clock_mhz must be within {lo:g}..{hi:g} MHz on {self.name}, "
                             f"not {clock_mhz:g}")
        return float(clock_mhz)

    def as_dict(self):
        return asdict(self)


#: Known parts, by short name. Capacities from the vendors' product tables (Zynq-7000 DS190,
#: Zynq UltraScale+ DS891, ECP5 DS1044); LUT RAM is Vivado's "LUT as Memory" for the Xilinx
#: parts and the RAM-capable half of the slices on ECP5 (669 Kbit distributed RAM).
DEVICES = {d.name: d for d in (
    Device("xc7z020", "xc7z020clg400-1", "xc7", lut=53_200, ff=106_400, dsp=220,
           bram18=280, lutram=17_400, clock_mhz=(4.69, 464.0),
           boards=("pynq-z2", "arty-z7-20")),
    Device("xczu9eg", "xczu9eg-ffvb1156-2-e", "xcup", lut=274_080, ff=548_160, dsp=2_520,
           bram18=1_824, lutram=144_000, clock_mhz=(6.25, 725.0), boards=("zcu102",)),
    Device("lfe5u-85f", "LFE5U-85F-6BG381C", "ecp5", lut=83_640, ff=83_640, dsp=156,
           bram18=208, lutram=41_820, clock_mhz=(3.125, 370.0), boards=("ulx3s-85f",)),
)}


def device(name):
    """The :class:`Device` called ``name`` (a short name, a part number or a board name).

    Raises
    ------
    TypeError
        When ``name`` is not a string or a :class:`Device`.
    ValueError
        When no known part matches; the message lists the known ones.
    """
    if isinstance(name, Device):
        return name
    if not isinstance(name, str):
        raise TypeError(f"device must be a part name such as 'xc7z020', not {name!r}")
    key = name.strip().lower()
    for d in DEVICES.values():
        if key in (d.name, d.part.lower()) or key in d.boards:
            return d
    known = ", ".join(f"'{d.name}' ({d.part}; {', '.join(d.boards)})" for d in DEVICES.values())
    raise ValueError(f"device must be one of {known}, not {name!r}")
