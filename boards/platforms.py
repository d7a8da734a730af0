"""Amaranth platforms for the boards that amaranth-boards does not define: PYNQ-Z2 and ZCU102.

Only the programmable-logic pins the board flows use are listed: the PL clock, user LEDs,
push buttons and switches. The processing system's pins (DDR, MIO) are configured by the
Vivado block design, not here.
"""

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform
from amaranth_boards.resources import ButtonResources, LEDResources, RGBLEDResource, \
    SwitchResources

__all__ = ["PynqZ2Platform", "ZCU102Platform"]


class PynqZ2Platform(XilinxPlatform):
    """TUL PYNQ-Z2 (Zynq-7020, xc7z020clg400-1).

    Pins from the PYNQ-Z2 master XDC (the board shares its PL pinout for these resources with
    the Digilent Arty Z7-20): 125 MHz oscillator on H16 (IO_L13P_T2_MRCC_35, "sysclk"); LEDs
    LD0..LD3 on R14 P14 N16 M14; buttons BTN0..BTN3 on D19 D20 L20 L19 (active high); slide
    switches SW0, SW1 on M20 M19; RGB LEDs LD4 (N15 G17 L15) and LD5 (M15 L14 G14). All banks
    are 3.3 V (LVCMOS33).
    """

    device = "xc7z020"
    package = "clg400"
    speed = "1"
    default_clk = "clk125"
    resources = [
        Resource("clk125", 0, Pins("H16", dir="i"), Clock(125e6),
                 Attrs(IOSTANDARD="LVCMOS33")),
        *LEDResources(pins="R14 P14 N16 M14", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        *ButtonResources(pins="D19 D20 L20 L19", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        *SwitchResources(pins="M20 M19", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        RGBLEDResource(0, r="N15", g="G17", b="L15", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        RGBLEDResource(1, r="M15", g="L14", b="G14", attrs=Attrs(IOSTANDARD="LVCMOS33")),
    ]
    connectors = []


class ZCU102Platform(XilinxPlatform):
    """AMD/Xilinx ZCU102 evaluation board (Zynq UltraScale+ ZU9EG, xczu9eg-ffvb1156-2-e).

    Pins from the ZCU102 user guide (UG1182) tables, as used in the board's reference XDC.
    The PL clock is CLK_125: the 125 MHz LVDS output of the Si5341B clock generator (U69) on
    G21 (P) / F21 (N), bank 47 (LVDS_25). The other PL clocks are not used here: USER_SI570
    (programmable, 300 MHz at power-up, on AL8/AL7) needs I2C set-up to be trusted and
    CLK_74_25 is a video clock. GPIO LEDs DS38..DS45 (GPIO_LED_0..7) on AG14 AF13 AE13 AJ14
    AJ15 AH13 AH14 AL12; push buttons GPIO_SW_N/E/S/W/C on AG15 AE14 AE15 AF15 AG13 (active
    high); DIP switch SW13 on AN14 AP14 AM14 AN13 AN12 AP12 AL13 AK13. All in 3.3 V HD banks.
    """

    device = "xczu9eg"
    package = "ffvb1156"
    speed = "2-e"
    default_clk = "clk125"
    resources = [
        Resource("clk125", 0, DiffPairs("G21", "F21", dir="i"), Clock(125e6),
                 Attrs(IOSTANDARD="LVDS_25")),
        *LEDResources(pins="AG14 AF13 AE13 AJ14 AJ15 AH13 AH14 AL12",
                      attrs=Attrs(IOSTANDARD="LVCMOS33")),
        *ButtonResources(pins="AG15 AE14 AE15 AF15 AG13", attrs=Attrs(IOSTANDARD="LVCMOS33")),
        *SwitchResources(pins="AN14 AP14 AM14 AN13 AN12 AP12 AL13 AK13",
                         attrs=Attrs(IOSTANDARD="LVCMOS33")),
    ]
    connectors = []
