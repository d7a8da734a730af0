"""The FPGAs a design is estimated for: capacities, multiplier family and clock range.

Add a part by adding a :class:`Device` to :data:`DEVICES`; everything else reads the table.
"""

from dataclasses import asdict, dataclass

__all__ = ["Device", "DEVICES", "FAMILIES", "device", "find_device"]

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
        Boards of :mod:`boards.registry` that carry the part.
    aliases : tuple of str
        Other device names of the same die and capacities (temperature grades, SERDES
        variants), lower case.
    dram_gbs : float or None
        DRAM bandwidth the fabric reaches on the boards that carry the part (about 75% of
        their processor DDR's peak), GB/s; None where the boards differ or have no
        processor DDR.
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
    aliases: tuple = ()
    dram_gbs: float = None

    def capacity(self):
        """``{"lut", "ff", "dsp", "bram18", "lutram"}``: what the part holds, for utilization."""
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram18": self.bram18,
                "lutram": self.lutram}

    def check_clock(self, clock_mhz):
        """``clock_mhz`` as a float, or :class:`ValueError` when the part cannot run it."""
        lo, hi = self.clock_mhz
        if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)):
            raise TypeError(f"clock_mhz must be a number, not {clock_mhz!r}")
        if not lo <= clock_mhz <= hi:  # NaN fails this too
            raise ValueError(f"clock_mhz must be within {lo:g}..{hi:g} MHz on {self.name}, "
                             f"not {clock_mhz:g}")
        return float(clock_mhz)

    def as_dict(self):
        return asdict(self)


#: Known parts, by short name: every part of the boards in :mod:`boards.registry` and a few
#: more of the same families. Capacities from the vendors' data sheets: Zynq-7000 DS190,
#: 7-series overview DS180 (Artix-7, Spartan-7, Kintex-7), UltraScale overview DS890,
#: Zynq UltraScale+ overview DS891, ECP5 family data sheet FPGA-DS-02012. LUT RAM is the
#: LUTs of the SLICEM slices (64 bits each; the data sheets' "distributed RAM" divided by 64)
#: on Xilinx, and on ECP5 the RAM-capable half of the LUT4s (16 bits each). Clock ranges: the
#: lowest MMCM/PLL output (4.69 MHz on 7-series, 6.25 MHz on UltraScale and UltraScale+,
#: 3.125 MHz on ECP5) and the global clock buffer's maximum at the listed speed grade (DS187,
#: DS181, DS189, DS182, DS892, DS925 switching characteristics; the ECP5 primary clock
#: network). A part's ``aliases`` are the device names of the same die in other temperature
#: grades or with SERDES, as Amaranth platforms spell them. DRAM bandwidth: ZCU102's PS DDR4
#: is 64 bits wide (17-21 GB/s; about 13 from the fabric), PYNQ-Z2's and Arty Z7-20's DDR3 16
#: bits at 1,050 MT/s (2.1 GB/s; about 1.6).
DEVICES = {d.name: d for d in (
    Device("xc7z010", "xc7z010clg400-1", "xc7", lut=17_600, ff=35_200, dsp=80,
           bram18=120, lutram=6_000, clock_mhz=(4.69, 464.0)),
    Device("xc7z020", "xc7z020clg400-1", "xc7", lut=53_200, ff=106_400, dsp=220,
           bram18=280, lutram=17_400, clock_mhz=(4.69, 464.0),
           boards=("pynq_z2", "arty_z7_20"), dram_gbs=1.6),
    Device("xc7a35t", "xc7a35ticsg324-1L", "xc7", lut=20_800, ff=41_600, dsp=90,
           bram18=100, lutram=6_400, clock_mhz=(4.69, 464.0), boards=("arty_a7_35",),
           aliases=("xc7a35ti",)),
    Device("xc7a100t", "xc7a100tcsg324-1", "xc7", lut=63_400, ff=126_800, dsp=240,
           bram18=270, lutram=19_000, clock_mhz=(4.69, 464.0),
           boards=("arty_a7_100", "nexys4ddr"), aliases=("xc7a100ti",)),
    Device("xc7a200t", "xc7a200tsbg484-1", "xc7", lut=133_800, ff=267_600, dsp=740,
           bram18=730, lutram=46_200, clock_mhz=(4.69, 464.0)),
    Device("xc7s25", "xc7s25csga324-1", "xc7", lut=14_600, ff=29_200, dsp=80,
           bram18=90, lutram=5_000, clock_mhz=(4.69, 464.0)),
    Device("xc7s50", "xc7s50csga324-1", "xc7", lut=32_600, ff=65_200, dsp=120,
           bram18=150, lutram=9_600, clock_mhz=(4.69, 464.0), boards=("arty_s7_50",)),
    Device("xc7k325t", "xc7k325tffg900-2", "xc7", lut=203_800, ff=407_600, dsp=840,
           bram18=890, lutram=64_000, clock_mhz=(4.69, 710.0), boards=("genesys2", "kc705")),
    Device("xcku040", "xcku040-ffva1156-2-e", "xcup", lut=242_400, ff=484_800, dsp=1_920,
           bram18=1_200, lutram=112_800, clock_mhz=(6.25, 725.0), boards=("kcu105",)),
    Device("xczu9eg", "xczu9eg-ffvb1156-2-e", "xcup", lut=274_080, ff=548_160, dsp=2_520,
           bram18=1_824, lutram=144_000, clock_mhz=(6.25, 725.0), boards=("zcu102",),
           dram_gbs=13.0),
    Device("lfe5u-12f", "LFE5U-12F-6BG381C", "ecp5", lut=12_096, ff=12_096, dsp=28,
           bram18=32, lutram=6_048, clock_mhz=(3.125, 370.0), boards=("ulx3s_12f",)),
    Device("lfe5u-25f", "LFE5U-25F-6BG381C", "ecp5", lut=24_288, ff=24_288, dsp=28,
           bram18=56, lutram=12_144, clock_mhz=(3.125, 370.0), boards=("ulx3s_25f",),
           aliases=("lfe5um-25f", "lfe5um5g-25f")),
    Device("lfe5u-45f", "LFE5U-45F-6BG381C", "ecp5", lut=43_848, ff=43_848, dsp=72,
           bram18=108, lutram=21_924, clock_mhz=(3.125, 370.0),
           boards=("ulx3s_45f", "versa_ecp5"), aliases=("lfe5um-45f", "lfe5um5g-45f")),
    Device("lfe5u-85f", "LFE5U-85F-6BG381C", "ecp5", lut=83_640, ff=83_640, dsp=156,
           bram18=208, lutram=41_820, clock_mhz=(3.125, 370.0), boards=("ulx3s_85f",),
           aliases=("lfe5um-85f", "lfe5um5g-85f")),
)}


def _board_key(name):
    return name.replace("-", "_")


def find_device(name):
    """The :class:`Device` whose short name, part number, alias or board is ``name`` (case
    and ``-``/``_`` in board names do not matter), or None."""
    key = name.strip().lower()
    for d in DEVICES.values():
        if (key in (d.name, d.part.lower(), *d.aliases)
                or _board_key(key) in map(_board_key, d.boards)):
            return d
    return None


def device(name):
    """The :class:`Device` called ``name``: a short name (``"xc7a35t"``), a part number
    (``"xc7z020clg400-1"``), another device name of the same die (``"lfe5um-45f"``) or a
    board of ``hwgen boards`` (``"pynq_z2"``, ``"pynq-z2"``).

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
    found = find_device(name)
    if found is None:
        raise ValueError(f"device must be a part ({', '.join(DEVICES)}), a part number or a "
                         f"board of `hwgen boards`, not {name!r}")
    return found
