"""The band geometry in hardware (LayerGeometry's serial products, Bands' stepping) against its
integer definition, band by band, on random layer shapes."""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hwgen.engine.bands import SETUP_CYCLES, Bands, LayerGeometry, band_rows

ADDR_BITS, WORD_SHIFT = 32, 3


def random_layer(rng):
    """Descriptor fields of a random layer whose bands are ``ceil(out_height / band_rows)``."""
    kernel = int(rng.integers(1, 6))
    pad = int(rng.integers(0, kernel))          # smaller than the kernel
    stride = int(rng.integers(1, 4))
    out_height = int(rng.integers(1, 41))
    band = int(rng.integers(1, out_height + 1))
    return {"out_height": out_height, "band_rows": band, "bands": -(-out_height // band),
            "stride_h": stride, "pad_h": pad, "kernel_h": kernel,
            "in_height": max(1, (out_height - 1) * stride + kernel - 2 * pad),
            "in_width": int(rng.integers(1, 300)), "in_groups": int(rng.integers(1, 70)),
            "out_width": int(rng.integers(1, 300)), "out_groups": int(rng.integers(1, 70)),
            "stride_w": int(rng.integers(1, 4)), "pad_w": int(rng.integers(0, 3)),
            "in_row_words": int(rng.integers(1, 3000)),
            "in2_row_words": int(rng.integers(1, 3000)),
            "out_row_words": int(rng.integers(1, 3000)),
            "ksteps": int(rng.integers(1, 5000)), "kstep_words": int(rng.integers(1, 9))}


def expected(f, band):
    """What :class:`Bands` holds for ``band``, from :func:`band_rows` and plain products."""
    oy0, rows, r0, r1 = band_rows(SimpleNamespace(**f), band)
    top = oy0 * f["stride_h"] - f["pad_h"]
    mask = (1 << ADDR_BITS) - 1
    row_groups = f["in_width"] * f["in_groups"]
    return {"band": band, "rows": rows, "top": top, "r0": r0, "r1": r1,
            "in_offset": (r0 * (f["in_row_words"] << WORD_SHIFT)) & mask,
            "in2_offset": (r0 * (f["in2_row_words"] << WORD_SHIFT)) & mask,
            "pad_offset": (top - r0) * row_groups,
            "out_offset": (oy0 * (f["out_row_words"] << WORD_SHIFT)) & mask,
            "out_total": rows * f["out_width"] * f["out_groups"]}


@pytest.mark.parametrize("seed", range(6))
def test_bands_follow_band_rows(seed):
    rng = np.random.default_rng(seed)
    layers = [random_layer(rng) for _ in range(4)]
    m = Module()
    m.submodules.geometry = geometry = LayerGeometry(addr_bits=ADDR_BITS, word_shift=WORD_SHIFT)
    m.submodules.bands = bands = Bands(addr_bits=ADDR_BITS)
    m.d.comb += [bands.desc.eq(geometry.desc), bands.geometry.eq(geometry.geometry),
                 bands.start.eq(geometry.start)]
    checked = []

    async def bench(ctx):
        for f in layers:
            for name, value in f.items():
                ctx.set(getattr(geometry.desc, name), value)
            ctx.set(geometry.prepare, 1)
            await ctx.tick()
            ctx.set(geometry.prepare, 0)
            for _ in range(SETUP_CYCLES - 1):
                assert ctx.get(geometry.busy) and not ctx.get(geometry.start)
                await ctx.tick()
            assert ctx.get(geometry.start)
            g = geometry.geometry
            assert ctx.get(g.row_groups) == f["in_width"] * f["in_groups"]
            assert ctx.get(g.sh_groups) == f["stride_h"] * f["in_width"] * f["in_groups"]
            assert ctx.get(g.kstep_total) == f["ksteps"] * f["kstep_words"]
            await ctx.tick()
            for band in range(f["bands"]):
                # Advances come back to back or after a few idle cycles; the outputs hold
                # in between.
                for _ in range(int(rng.choice([0, 0, 1, 3]))):
                    await ctx.tick()
                    got = {name: ctx.get(getattr(bands, name)) for name in expected(f, 0)}
                    assert got == expected(f, band), (f, band)
                got = {name: ctx.get(getattr(bands, name)) for name in expected(f, 0)}
                assert got == expected(f, band), (f, band)
                checked.append(band)
                ctx.set(bands.advance, 1)
                await ctx.tick()
                ctx.set(bands.advance, 0)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) == sum(f["bands"] for f in layers)
