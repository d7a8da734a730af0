"""Vivado projects for the Zynq boards: a block design around the AXI accelerator top.

:func:`block_design_tcl` writes a batch script that creates the project for the board's part,
places the processing system (``processing_system7`` on Zynq-7000, ``zynq_ultra_ps_e`` on
Zynq UltraScale+), an AXI DMA and the accelerator (the Verilog of
:class:`boards.axi.AXIAccelerator` as a module reference), connects the accelerator's
AXI4-Lite port and the DMA's control port to the processor's general-purpose master port, the
DMA's memory ports to a high-performance slave port and the streams through the DMA, and then
implements the design, checks timing and writes the bitstream, the hardware handoff (``.hwh``,
read by PYNQ) and the hardware platform (``.xsa``, read by Vitis and PetaLinux).

Every file the script reads is named relative to the script's folder, so the build tree can
move to another machine: ``bash build.sh`` there runs ``vivado -mode batch -source build.tcl``.
"""

from typing import NamedTuple

from hwgen.engine.ports import port_names

from .errors import BoardError

__all__ = ["PL_CLOCK_MHZ", "DMA_STREAM_WIDTHS", "BITSTREAM", "REGISTER_WINDOW",
           "block_design_tcl", "engine_block_design_tcl", "build_script", "ddr_window",
           "led_xdc", "dma_stream_bits", "port_bits", "HP_PORTS"]

#: Clock of the programmable logic made by the processing system (FCLK0 / PL0).
PL_CLOCK_MHZ = 100
#: Stream widths the AXI DMA supports.
DMA_STREAM_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
#: Base name of the bitstream, hardware handoff and platform files the script writes.
BITSTREAM = "hwgen"
#: Bytes of the register window the engine's block design maps (4 KiB, the smallest
#: block-design segment).
REGISTER_WINDOW = 0x1000

# Processing-system settings of the PYNQ-Z2 (TUL board files, PYNQ-Z2 reference design),
# applied when the board files are not installed: 50 MHz PS clock, DDR3 (MT41J256M16 RE-125,
# 16-bit bus, 525 MHz), UART0 on MIO 14/15, SD0, USB0, Ethernet and QSPI as on the board.
_PYNQ_Z2_PS7 = {
    "PCW_CRYSTAL_PERIPHERAL_FREQMHZ": "50",
    "PCW_APU_PERIPHERAL_FREQMHZ": "650",
    "PCW_PRESET_BANK0_VOLTAGE": "LVCMOS 3.3V",
    "PCW_PRESET_BANK1_VOLTAGE": "LVCMOS 1.8V",
    "PCW_UIPARAM_DDR_PARTNO": "MT41J256M16 RE-125",
    "PCW_UIPARAM_DDR_BUS_WIDTH": "16 Bit",
    "PCW_UIPARAM_DDR_FREQ_MHZ": "525",
    "PCW_UIPARAM_DDR_BOARD_DELAY0": "0.223",
    "PCW_UIPARAM_DDR_BOARD_DELAY1": "0.212",
    "PCW_UIPARAM_DDR_BOARD_DELAY2": "0.085",
    "PCW_UIPARAM_DDR_BOARD_DELAY3": "0.092",
    "PCW_UIPARAM_DDR_DQS_TO_CLK_DELAY_0": "0.040",
    "PCW_UIPARAM_DDR_DQS_TO_CLK_DELAY_1": "0.058",
    "PCW_UIPARAM_DDR_DQS_TO_CLK_DELAY_2": "-0.009",
    "PCW_UIPARAM_DDR_DQS_TO_CLK_DELAY_3": "-0.033",
    "PCW_QSPI_PERIPHERAL_ENABLE": "1",
    "PCW_QSPI_GRP_SINGLE_SS_ENABLE": "1",
    "PCW_QSPI_GRP_FBCLK_ENABLE": "1",
    "PCW_ENET0_PERIPHERAL_ENABLE": "1",
    "PCW_ENET0_ENET0_IO": "MIO 16 .. 27",
    "PCW_ENET0_GRP_MDIO_ENABLE": "1",
    "PCW_ENET0_RESET_ENABLE": "1",
    "PCW_ENET0_RESET_IO": "MIO 9",
    "PCW_SD0_PERIPHERAL_ENABLE": "1",
    "PCW_SD0_GRP_CD_ENABLE": "1",
    "PCW_SD0_GRP_CD_IO": "MIO 47",
    "PCW_UART0_PERIPHERAL_ENABLE": "1",
    "PCW_UART0_UART0_IO": "MIO 14 .. 15",
    "PCW_USB0_PERIPHERAL_ENABLE": "1",
    "PCW_USB0_RESET_ENABLE": "1",
    "PCW_USB0_RESET_IO": "MIO 46",
    "PCW_GPIO_MIO_GPIO_ENABLE": "1",
}

class _HpPort(NamedTuple):
    """A high-performance slave port of a processing system: its interface, its clock pin,
    the DDR segment it reaches, and the settings that enable it and set its width."""
    slave: str
    clock: str
    segment: str
    enable: str
    width: str


_PROCESSORS = {
    "ps7": {
        "ip": "processing_system7",
        "automation": "xilinx.com:bd_rule:processing_system7",
        "automation_config": '{make_external "FIXED_IO, DDR" apply_board_preset "1" '
                             'Master "Disable" Slave "Disable"}',
        "config": {"PCW_USE_M_AXI_GP0": "1", "PCW_USE_S_AXI_HP0": "1",
                   "PCW_S_AXI_HP0_DATA_WIDTH": "64", "PCW_EN_CLK0_PORT": "1",
                   "PCW_EN_RST0_PORT": "1", "PCW_FPGA_FCLK0_ENABLE": "1",
                   "PCW_FPGA0_PERIPHERAL_FREQMHZ": str(PL_CLOCK_MHZ)},
        "clock": "FCLK_CLK0", "reset": "FCLK_RESET0_N",
        "clock_inputs": ["M_AXI_GP0_ACLK", "S_AXI_HP0_ACLK"],
        "master": "M_AXI_GP0", "slave": "S_AXI_HP0",
        "external": [("DDR", "xilinx.com:interface:ddrx_rtl:1.0"),
                     ("FIXED_IO", "xilinx.com:display_processing_system7:fixedio_rtl:1.0")],
        "dma_addr_bits": 32,
        # The engine's block design: where its registers sit in the processor's map, the
        # DDR window a high-performance port opens, the ports' data widths and each port.
        "register_base": 0x43C0_0000,
        "ddr_window": 1 << 30,
        "hp_widths": (32, 64),
        "hp_port": lambda k: _HpPort(f"S_AXI_HP{k}", f"S_AXI_HP{k}_ACLK",
                                     f"S_AXI_HP{k}/HP{k}_DDR_LOWOCM", f"PCW_USE_S_AXI_HP{k}",
                                     f"PCW_S_AXI_HP{k}_DATA_WIDTH"),
    },
    "psu": {
        "ip": "zynq_ultra_ps_e",
        "automation": "xilinx.com:bd_rule:zynq_ultra_ps_e",
        "automation_config": '{apply_board_preset "1"}',
        "config": {"PSU__USE__M_AXI_GP0": "1", "PSU__USE__M_AXI_GP1": "0",
                   "PSU__USE__M_AXI_GP2": "0", "PSU__USE__S_AXI_GP2": "1",
                   "PSU__FPGA_PL0_ENABLE": "1",
                   "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ": str(PL_CLOCK_MHZ)},
        "clock": "pl_clk0", "reset": "pl_resetn0",
        "clock_inputs": ["maxihpm0_fpd_aclk", "saxihp0_fpd_aclk"],
        "master": "M_AXI_HPM0_FPD", "slave": "S_AXI_HP0_FPD",
        "external": [],
        "dma_addr_bits": 64,
        "register_base": 0xA000_0000,
        "ddr_window": 1 << 31,
        "hp_widths": (32, 64, 128),
        "hp_port": lambda k: _HpPort(f"S_AXI_HP{k}_FPD", f"saxihp{k}_fpd_aclk",
                                     f"SAXIGP{k + 2}/HP{k}_DDR_LOW", f"PSU__USE__S_AXI_GP{k + 2}",
                                     f"PSU__SAXIGP{k + 2}__DATA_WIDTH"),
    },
}

#: Board files (Vivado board parts) that carry each board's processing-system preset.
_BOARD_PARTS = {"pynq_z2": "tul.com.tw:pynq-z2:part0:*", "zcu102": "xilinx.com:zcu102:part0:*"}
_FALLBACK_PS = {"pynq_z2": _PYNQ_Z2_PS7}


def dma_stream_bits(beat_bits, what):
    """The AXI DMA stream width for a beat: the next supported power of two."""
    for width in DMA_STREAM_WIDTHS:
        if width >= beat_bits:
            return width
    raise BoardError(f"the {what} beat is {beat_bits} bits wide, more than the "
                     f"{DMA_STREAM_WIDTHS[-1]} bits an AXI DMA stream carries; choose a folding "
                     f"with fewer elements per beat at the {what}")


def _tcl_dict(config):
    return " ".join(f"CONFIG.{key} {{{value}}}" for key, value in config.items())


def led_xdc(platform, count, port="led"):
    """XDC lines for ``count`` status LEDs of ``platform`` on ports ``led[0..count-1]``."""
    instance = platform()
    lines = []
    for i in range(count):
        resource = instance.lookup("led", i)
        pins = resource.ios[0]
        pin = pins.names[0] if hasattr(pins, "names") else pins.p.names[0]
        attrs = {key: value for key, value in resource.attrs.items()
                 if isinstance(value, str)}
        attrs = {"PACKAGE_PIN": pin, **attrs}
        props = " ".join(f"{key} {value}" for key, value in attrs.items())
        lines.append(f"set_property -dict {{{props}}} [get_ports {{{port}[{i}]}}]")
    lines.append(f"set_false_path -to [get_ports {{{port}[*]}}]")
    return "\n".join(lines) + "\n"


def _ps_config(board, clock_mhz, extra=None):
    """The processing system's settings: its ports and the fabric clock."""
    clock_key = {"ps7": "PCW_FPGA0_PERIPHERAL_FREQMHZ",
                 "psu": "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"}[board.processor]
    return _PROCESSORS[board.processor]["config"] | (extra or {}) | \
        {clock_key: f"{clock_mhz:g}"}


def _project_head(board, *, rtl_files, xdc_files, ps_config, jobs, contents, memory_user,
                  clock_mhz):
    """The script up to the configured processing system: project, sources, block design."""
    ps = _PROCESSORS[board.processor]
    board_part = _BOARD_PARTS.get(board.name, "")
    fallback = _FALLBACK_PS.get(board.name, {})
    external = "\n".join(
        f"    create_bd_intf_port -mode Master -vlnv {vlnv} {name}\n"
        f"    connect_bd_intf_net [get_bd_intf_ports {name}] [get_bd_intf_pins ps/{name}]"
        for name, vlnv in ps["external"]) or "    # (no external processor ports)"
    constraints = ("add_files -fileset constrs_1 -norecurse [lmap f $xdc_files "
                   "{file join $origin $f}]\n") if xdc_files else ""
    return f"""\
# Vivado batch script: {board.description or board.name} ({board.part}), processing system,
# {contents} in a block design, implemented to a bitstream.
# Run from any folder:  vivado -mode batch -source build.tcl   (build.sh does this)
# Writes {BITSTREAM}.bit, {BITSTREAM}.hwh (PYNQ) and {BITSTREAM}.xsa beside this script,
# reports in reports/, the project in vivado/.

set origin [file normalize [file dirname [info script]]]
set part {board.part}
set board_part_pattern "{board_part}"
set project hwgen
set bd system
set jobs [expr {{[info exists ::env(HWGEN_JOBS)] ? $::env(HWGEN_JOBS) : {jobs}}}]
set rtl_files [list {" ".join(rtl_files)}]
set xdc_files [list {" ".join(xdc_files)}]

proc latest_ip {{name}} {{
    set defs [lsort -dictionary [get_ipdefs -all -filter "VLNV =~ xilinx.com:ip:${{name}}:*"]]
    if {{[llength $defs] == 0}} {{
        error "IP xilinx.com:ip:$name is not part of this Vivado installation"
    }}
    return [lindex $defs end]
}}

create_project -force $project [file join $origin vivado] -part $part
set preset 0
if {{$board_part_pattern ne ""}} {{
    set found [get_board_parts -quiet -latest_file_version $board_part_pattern]
    if {{[llength $found] > 0}} {{
        set_property board_part [lindex $found end] [current_project]
        set preset 1
    }} else {{
        puts "INFO: no board files $board_part_pattern; this script configures the processor"
    }}
}}
add_files -norecurse [lmap f $rtl_files {{file join $origin $f}}]
{constraints}update_compile_order -fileset sources_1

create_bd_design $bd

# Processing system: its general-purpose master drives the registers, a high-performance
# slave port takes {memory_user} memory traffic, and it makes the {clock_mhz:g} MHz fabric clock.
set ps [create_bd_cell -type ip -vlnv [latest_ip {ps["ip"]}] ps]
if {{$preset}} {{
    apply_bd_automation -rule {ps["automation"]} -config {ps["automation_config"]} $ps
}} else {{
    set_property -dict [list {_tcl_dict(fallback)}] $ps
{external}
}}
set_property -dict [list {_tcl_dict(ps_config)}] $ps
"""


def _implementation_tail(clock_mhz):
    """The script from the finished block design on: validate, implement, check timing, write
    the bitstream, the hardware handoff and the platform."""
    return f"""\
validate_bd_design
save_bd_design

set wrapper [make_wrapper -files [get_files $bd.bd] -top]
add_files -norecurse $wrapper
set_property top ${{bd}}_wrapper [current_fileset]
update_compile_order -fileset sources_1

launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] ne "100%"}} {{
    error "implementation did not finish; see [get_property DIRECTORY [get_runs impl_1]]"
}}

open_run impl_1
file mkdir [file join $origin reports]
report_timing_summary -file [file join $origin reports timing.rpt]
report_utilization -file [file join $origin reports utilization.rpt]
report_utilization -hierarchical -file [file join $origin reports utilization_hierarchical.rpt]
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
if {{$wns ne "" && $wns < 0}} {{
    error "timing not met at {clock_mhz:g} MHz: worst slack $wns ns; see reports/timing.rpt"
}}

set run_dir [get_property DIRECTORY [get_runs impl_1]]
file copy -force [file join $run_dir ${{bd}}_wrapper.bit] [file join $origin {BITSTREAM}.bit]
set hwh [glob -nocomplain \\
    [file join $origin vivado $project.gen sources_1 bd $bd hw_handoff $bd.hwh] \\
    [file join $origin vivado $project.srcs sources_1 bd $bd hw_handoff $bd.hwh]]
if {{[llength $hwh] == 0}} {{
    error "Vivado wrote no hardware handoff file ($bd.hwh)"
}}
file copy -force [lindex $hwh 0] [file join $origin {BITSTREAM}.hwh]
write_hw_platform -fixed -include_bit -force -file [file join $origin {BITSTREAM}.xsa]
puts "hwgen: wrote [file join $origin {BITSTREAM}.bit], {BITSTREAM}.hwh and {BITSTREAM}.xsa"
"""


def _processor(board):
    if board.processor not in _PROCESSORS:
        raise BoardError(f"board {board.name!r} has no processing system for a block design; "
                         f"build its self-test instead")
    return _PROCESSORS[board.processor]


def ddr_window(board):
    """Bytes of PS DDR, from address 0, that the high-performance port of ``board``'s
    processing system opens to a fabric master (the engine's addresses must reach them all:
    the driver's buffers lie anywhere in it)."""
    return _processor(board)["ddr_window"]


#: High-performance slave ports of a Zynq's processing system (HP0 to HP3).
HP_PORTS = 4


def port_bits(board):
    """The widest data width of a high-performance port the engine's block design puts
    between ``board``'s engine and its PS DDR: a word of each port a cycle each way is all
    the DDR traffic the engine can have (an engine of one port wider than this is narrowed
    to it)."""
    return max(_processor(board)["hp_widths"])


def engine_block_design_tcl(board, *, rtl_files, module, data_bits, ports=1,
                            clock_mhz=PL_CLOCK_MHZ, jobs=4):
    """The Vivado batch script for the layer-sequential engine on ``board`` (a
    :class:`boards.registry.Board` with a processor).

    The engine's AXI4 master (``m_axi``) reaches the PS DDR through a SmartConnect on the
    high-performance slave port (``S_AXI_HP0`` on Zynq-7000, ``S_AXI_HP0_FPD`` on Zynq
    UltraScale+), set to the engine's bus width where the port has it; an engine of several
    ports (``m_axi0`` ..., :mod:`hwgen.engine.ports`) has one SmartConnect and one
    high-performance port each (HP0, HP1, ...). Its AXI4-Lite slave (``s_axi``) hangs off the
    general-purpose master (``M_AXI_GP0``, ``M_AXI_HPM0_FPD``) through another SmartConnect.
    One fabric clock and one reset from the processing system. The address map is explicit:
    the registers at the processor's ``register_base`` (a :data:`REGISTER_WINDOW` window),
    each port's DDR segment in that port's space; nothing else is mapped.

    Parameters
    ----------
    rtl_files : list of str
        Paths relative to the script's folder.
    module : str
        The engine's wrapper module (:func:`boards.engine.engine_verilog`).
    data_bits : int
        The engine's AXI4 data width, all ports together.
    ports : int
        The engine's AXI4 ports (at most :data:`HP_PORTS`).
    clock_mhz : float
        Fabric clock the processing system makes.
    jobs : int
        Parallel implementation jobs (the environment variable ``HWGEN_JOBS`` overrides).
    """
    ps = _processor(board)
    if not 1 <= ports <= HP_PORTS:
        raise BoardError(f"the engine has {ports} AXI4 ports; board {board.name}'s processing "
                         f"system has {HP_PORTS} high-performance ports")
    widths = ps["hp_widths"]
    hp_bits = max(w for w in widths if w <= max(data_bits // ports, widths[0]))
    masters = port_names(ports)
    hp = [ps["hp_port"](k) for k in range(ports)]
    extra = {}
    for port in hp:
        extra |= {port.enable: "1", port.width: str(hp_bits)}
    ps_config = _ps_config(board, clock_mhz, extra)
    clock_pins = " ".join(f"ps/{pin}" for pin in [ps["clock_inputs"][0]] +
                          [port.clock for port in hp])
    xbars = [f"mem_xbar{k if ports > 1 else ''}" for k in range(ports)]
    head = _project_head(board, rtl_files=rtl_files, xdc_files=[], ps_config=ps_config,
                         jobs=jobs, contents=f"the hwgen layer-sequential engine ({module})",
                         memory_user="the engine's", clock_mhz=clock_mhz)
    memory = []
    for master, xbar, (slave, _, segment, _, _) in zip(masters, xbars, hp):
        memory.append(f"""set {xbar} [create_bd_cell -type ip -vlnv [latest_ip smartconnect] {xbar}]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] ${xbar}
connect_bd_intf_net [get_bd_intf_pins accel/{master}] [get_bd_intf_pins {xbar}/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins {xbar}/M00_AXI] [get_bd_intf_pins ps/{slave}]""")
    addresses = []
    for master, (_, _, segment, _, _) in zip(masters, hp):
        addresses.append(f"""set ddr [get_bd_addr_segs ps/{segment}]
if {{[llength $ddr] != 1}} {{
    error "no DDR segment ps/{segment} on the processing system"
}}
assign_bd_address -target_address_space [get_bd_addr_spaces accel/{master}] $ddr""")
    fabric = " ".join(["rst/slowest_sync_clk accel/aclk ctrl_xbar/aclk",
                       *(f"{x}/aclk" for x in xbars)])
    resets = " ".join(["accel/aresetn ctrl_xbar/aresetn", *(f"{x}/aresetn" for x in xbars)])
    lanes = f" as {ports} lanes of {data_bits // ports} bits" if ports > 1 else ""
    return head + f"""
set rst [create_bd_cell -type ip -vlnv [latest_ip proc_sys_reset] rst]
set accel [create_bd_cell -type module -reference {module} accel]
set ctrl_xbar [create_bd_cell -type ip -vlnv [latest_ip smartconnect] ctrl_xbar]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] $ctrl_xbar

# Registers: processor's general-purpose master -> ctrl_xbar -> engine (AXI4-Lite).
connect_bd_intf_net [get_bd_intf_pins ps/{ps["master"]}] [get_bd_intf_pins ctrl_xbar/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins ctrl_xbar/M00_AXI] [get_bd_intf_pins accel/s_axi]
# Memory: engine's AXI4 master ({data_bits}-bit{lanes}) -> SmartConnect ->
# high-performance port ({hp_bits}-bit) -> PS DDR, one of each per port.
""" + "\n".join(memory) + f"""

# One clock and one reset for everything in the fabric.
connect_bd_net -net pl_clk [get_bd_pins ps/{ps["clock"]}] [get_bd_pins {{{clock_pins}}}] \\
    [get_bd_pins {{{fabric}}}]
connect_bd_net -net pl_resetn [get_bd_pins ps/{ps["reset"]}] [get_bd_pins rst/ext_reset_in]
connect_bd_net -net peripheral_aresetn [get_bd_pins rst/peripheral_aresetn] \\
    [get_bd_pins {{{resets}}}]

# Address map: the registers in the processor's space, the PS DDR in each port's.
set regs [get_bd_addr_segs accel/s_axi/*]
if {{[llength $regs] != 1}} {{
    error "expected one register segment on accel/s_axi, found: $regs"
}}
assign_bd_address -target_address_space [get_bd_addr_spaces ps/Data] $regs \\
    -offset {ps["register_base"]:#010x} -range {REGISTER_WINDOW:#x}
""" + "\n".join(addresses) + "\n" + _implementation_tail(clock_mhz)


def block_design_tcl(board, *, rtl_files, xdc_files, module, in_stream_bits, out_stream_bits,
                     clock_mhz=PL_CLOCK_MHZ, jobs=4):
    """The Vivado batch script for ``board`` (a :class:`boards.registry.Board` with a
    processor).

    Parameters
    ----------
    rtl_files, xdc_files : list of str
        Paths relative to the script's folder.
    module : str
        The accelerator's Verilog module (the module reference).
    in_stream_bits, out_stream_bits : int
        TDATA widths of the accelerator's input and output streams (DMA stream widths).
    clock_mhz : float
        Fabric clock the processing system makes.
    jobs : int
        Parallel implementation jobs (the environment variable ``HWGEN_JOBS`` overrides).
    """
    ps = _processor(board)
    ps_config = _ps_config(board, clock_mhz)
    clock_pins = " ".join(f"ps/{pin}" for pin in ps["clock_inputs"])
    for bits, what in ((in_stream_bits, "input"), (out_stream_bits, "output")):
        if bits not in DMA_STREAM_WIDTHS:
            raise BoardError(f"{what} stream width {bits} is not one the AXI DMA supports "
                             f"({', '.join(map(str, DMA_STREAM_WIDTHS))})")
    dma = {
        "c_include_sg": "0", "c_sg_include_stscntrl_strm": "0", "c_sg_length_width": "26",
        "c_addr_width": str(ps["dma_addr_bits"]),
        "c_m_axi_mm2s_data_width": str(max(32, in_stream_bits)),
        "c_m_axis_mm2s_tdata_width": str(in_stream_bits),
        "c_m_axi_s2mm_data_width": str(max(32, out_stream_bits)),
        "c_s_axis_s2mm_tdata_width": str(out_stream_bits),
        "c_mm2s_burst_size": "16", "c_s2mm_burst_size": "16",
    }
    head = _project_head(board, rtl_files=rtl_files, xdc_files=xdc_files, ps_config=ps_config,
                         jobs=jobs, contents=f"AXI DMA and the hwgen accelerator ({module})",
                         memory_user="the DMA's", clock_mhz=clock_mhz)
    return head + f"""
set rst [create_bd_cell -type ip -vlnv [latest_ip proc_sys_reset] rst]
set accel [create_bd_cell -type module -reference {module} accel]
set dma [create_bd_cell -type ip -vlnv [latest_ip axi_dma] dma]
set_property -dict [list {_tcl_dict(dma)}] $dma
set ctrl_xbar [create_bd_cell -type ip -vlnv [latest_ip smartconnect] ctrl_xbar]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{2}}] $ctrl_xbar
set mem_xbar [create_bd_cell -type ip -vlnv [latest_ip smartconnect] mem_xbar]
set_property -dict [list CONFIG.NUM_SI {{2}} CONFIG.NUM_MI {{1}}] $mem_xbar

# Registers: processor -> ctrl_xbar -> accelerator and DMA control.
connect_bd_intf_net [get_bd_intf_pins ps/{ps["master"]}] [get_bd_intf_pins ctrl_xbar/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins ctrl_xbar/M00_AXI] [get_bd_intf_pins accel/s_axi]
connect_bd_intf_net [get_bd_intf_pins ctrl_xbar/M01_AXI] [get_bd_intf_pins dma/S_AXI_LITE]
# Memory: DMA read and write masters -> mem_xbar -> processor's high-performance port.
connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_MM2S] [get_bd_intf_pins mem_xbar/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_S2MM] [get_bd_intf_pins mem_xbar/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins mem_xbar/M00_AXI] [get_bd_intf_pins ps/{ps["slave"]}]
# Streams: DMA MM2S -> accelerator -> DMA S2MM.
connect_bd_intf_net [get_bd_intf_pins dma/M_AXIS_MM2S] [get_bd_intf_pins accel/s_axis]
connect_bd_intf_net [get_bd_intf_pins accel/m_axis] [get_bd_intf_pins dma/S_AXIS_S2MM]

# One clock and one reset for everything in the fabric.
connect_bd_net -net pl_clk [get_bd_pins ps/{ps["clock"]}] [get_bd_pins {{{clock_pins}}}] \\
    [get_bd_pins {{rst/slowest_sync_clk accel/aclk dma/s_axi_lite_aclk dma/m_axi_mm2s_aclk \\
                  dma/m_axi_s2mm_aclk ctrl_xbar/aclk mem_xbar/aclk}}]
connect_bd_net -net pl_resetn [get_bd_pins ps/{ps["reset"]}] [get_bd_pins rst/ext_reset_in]
connect_bd_net -net peripheral_aresetn [get_bd_pins rst/peripheral_aresetn] \\
    [get_bd_pins {{accel/aresetn dma/axi_resetn ctrl_xbar/aresetn mem_xbar/aresetn}}]

# Status LEDs (heartbeat, frames in flight, error flag, a frame done).
create_bd_port -dir O -from 3 -to 0 led
connect_bd_net [get_bd_pins accel/status] [get_bd_ports led]

assign_bd_address
""" + _implementation_tail(clock_mhz)


def build_script(tcl="build.tcl"):
    """``build.sh``: runs Vivado in batch mode on ``tcl`` from the script's own folder."""
    return f"""\
#!/bin/sh
# Builds the bitstream: needs Vivado on PATH (source <Vivado>/settings64.sh first).
set -e
cd "$(dirname "$0")"
command -v vivado >/dev/null 2>&1 || {{ echo "vivado is not on PATH" >&2; exit 3; }}
exec vivado -mode batch -notrace -log vivado.log -journal vivado.jou -source {tcl}
"""
