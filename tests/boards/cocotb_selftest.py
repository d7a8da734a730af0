"""cocotb test of the self-test design (module ``selftest``): run it from reset to its verdict.

Started by tests/boards/test_selftest.py with the configuration in the JSON file named by
``BOARDS_SELFTEST_CONFIG``: ``{"max_cycles": 5000, "results": "results.json"}``. The test
records the flags it saw; test_selftest.py judges them.
"""

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

CONFIG_ENV = "BOARDS_SELFTEST_CONFIG"
FLAGS = ("done", "passed", "failed", "mismatches", "timed_out")


def _flags(dut):
    return {name: int(getattr(dut, name).value) for name in FLAGS}


@cocotb.test()
async def run_to_verdict(dut):
    """Reset, then clock until done or timed out (or the cycle budget ends); record flags."""
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    dut.rst.value = 1
    Clock(dut.clk, 10, unit="ns").start()
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    first_failed = done_at = None
    cycle = 0
    while cycle < config["max_cycles"]:
        await FallingEdge(dut.clk)
        cycle += 1
        flags = _flags(dut)
        if flags["failed"] and first_failed is None:
            first_failed = cycle
        if flags["done"] or flags["timed_out"]:
            done_at = cycle
            break
    # The verdict must hold: watch a while longer.
    await ClockCycles(dut.clk, 64)
    await FallingEdge(dut.clk)
    Path(config["results"]).write_text(json.dumps(
        {"run_to_verdict": {"cycles": cycle, "done_at": done_at, "first_failed": first_failed,
                            "held": _flags(dut)}}, indent=1))
