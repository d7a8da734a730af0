"""cocotb test for a PackedMultiplier's generated Verilog (run by test_packed.py).

The configuration (a JSON file named by ``PACKED_CONFIG``) holds the activations, ROM words and
port widths; the test drives one pair per cycle right after each rising edge, samples the
products at the falling edge and writes them to the configuration's ``outputs`` file, which
the calling test compares with NumPy.
"""

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

CONFIG_ENV = "PACKED_CONFIG"


def _lanes(value, lanes, bits):
    mask = (1 << bits) - 1
    out = []
    for i in range(lanes):
        v = (value >> (i * bits)) & mask
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


@cocotb.test()
async def packed_products(dut):
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    xs, words = config["x"], config["words"]
    latency, lanes, bits = config["latency"], config["lanes"], config["product_bits"]
    x_mask = (1 << config["act_bits"]) - 1

    # Inputs first, then the clock.
    dut.x.value = 0
    dut.word.value = 0
    dut.en.value = 1
    dut.rst.value = 1
    Clock(dut.clk, 10, unit="ns").start()
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    outputs = []
    for cycle in range(len(xs) + latency):
        await RisingEdge(dut.clk)
        if cycle < len(xs):
            dut.x.value = xs[cycle] & x_mask
            dut.word.value = words[cycle]
        await FallingEdge(dut.clk)
        # At this falling edge the registers hold what was driven `latency` cycles ago.
        if cycle >= latency:
            outputs.append(_lanes(int(dut.products.value.to_unsigned()), lanes, bits))
    Path(config["outputs"]).write_text(json.dumps(outputs))
