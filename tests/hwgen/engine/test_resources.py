"""The engine's resource model: its exact parts by hand, its behaviour, its errors, and (synth
tier) one small engine against yosys under the benchmark's targets."""

import dataclasses

import pytest

from hwgen.engine import EngineConfig
from hwgen.engine.gearbox import granule
from hwgen.engine.resources import engine_parts, engine_resources, packer_luts, unpacker_luts
from hwgen.model import Resources

TINY = dict(tm=2, tn=2, lane_bits=(4, 8), data_bits=32, input_words=64, output_words=32,
            weight_words=16, channels=16)


def test_sum_of_parts_and_types():
    config = EngineConfig(**TINY)
    total = engine_resources(config, "xczu9eg")
    assert isinstance(total, Resources)
    assert total == sum(engine_parts(config, "xczu9eg").values(), Resources())
    assert all(getattr(total, k) > 0 for k in ("lut", "ff", "dsp"))


@pytest.mark.parametrize("family, part", [("xc7", "xc7z020"), ("xcup", "xczu9eg"),
                                          ("ecp5", "lfe5u-85f")])
@pytest.mark.parametrize("lanes, act", [((4, 8), 9), ((4, 4, 4, 4), 5), ((2, 4, 6, 8), 7)])
def test_mac_array_takes_config_dsp_count(family, part, lanes, act):
    config = EngineConfig(tm=len(lanes), tn=len(lanes), lane_bits=lanes, act_bits=act,
                          family=family)
    assert engine_parts(config, part)["mac_array"].dsp == config.dsp_count


def test_dsp_beyond_the_array_by_hand():
    """xcup: a vector lane's 8 x 17-bit product is one DSP48E2; a requantizer's 32 x 25-bit
    signed product is split 26 + 6 by 17 + 8 bits, four slices."""
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), family="xcup")
    parts = engine_parts(config, "xczu9eg")
    assert parts["vector_lanes"].dsp == 4
    assert parts["output_path"].dsp == 4 * 4


def test_ecp5_requantizer_pieces_by_hand():
    """ECP5: a requantizer's product is the sum of registered pieces' products, 17 x 17,
    17 x 7, 15 x 17 and 15 x 7 bits for a 32-bit sum, one MULT18X18D each (a 36-bit sum
    takes three value pieces: 6); a vector lane's 8 x 17-bit product is one. The stage adds
    per channel the products' 34 + 24 + 32 + 22 bits, the 32-bit sum and the 49-bit offset,
    and once the valid, shift (6), requantize and rounding flags, range (2 x 34) and the
    19-bit tag: 868 flip-flops more than on xcup."""
    config = EngineConfig(tm=4, tn=4, lane_bits=(4, 4, 4, 8), family="ecp5")
    parts = engine_parts(config, "lfe5u-85f")
    assert parts["output_path"].dsp == 4 * 4
    assert parts["vector_lanes"].dsp == 4
    wide = engine_parts(dataclasses.replace(config, acc_bits=36), "lfe5u-85f")
    assert wide["output_path"].dsp == 4 * 6
    xcup = engine_parts(dataclasses.replace(config, family="xcup"), "xczu9eg")
    assert parts["output_path"].ff - xcup["output_path"].ff == 868


def test_ports_by_hand():
    """Four 64-bit ports on a 256-bit bus: three 32-bit plane origins (the first is PROGRAM),
    three taken flags and a 4-bit write-response count a port, the sticky response code and
    PLANE, less the image base the sequencer no longer holds; no DSP (the origins are shifts
    and adds); one port costs nothing."""
    config = EngineConfig(**TINY | {"data_bits": 256, "addr_bits": 32})
    assert engine_parts(config, "xczu9eg")["ports"] == Resources()
    four = engine_parts(dataclasses.replace(config, ports=4), "xczu9eg")["ports"]
    assert (four.ff, four.dsp, four.bram18) == (3 * 32 + 4 * 3 + 4 * 4 + 2 + 32 - 32, 0, 0)
    two = engine_parts(dataclasses.replace(config, ports=2), "xczu9eg")["ports"]
    assert 0 < two.lut < four.lut


def test_tiny_buffers_by_hand():
    """2 x 2 lanes of 4 and 8 bits on xcup, buffers of two banks each:

    * input buffer, 34 bits x 128 words: one RAMB18E2 (512 x 36), twice for its two read
      ports: 2 RAMB18;
    * weight buffer, 24 bits x 32 words: LUT RAM, two RAM32M16 (14 bits each) of 8 LUTs;
    * output buffer, 64 bits x 64 words: LUT RAM, ten RAM64M8 (7 bits each) of 8 LUTs.
    """
    parts = engine_parts(EngineConfig(**TINY), "xczu9eg")["buffers"]
    assert (parts.bram18, parts.lutram) == (2, 2 * 8 + 10 * 8)


def test_larger_buffers_by_hand():
    """1024/512/512 words: the input buffer is 34 x 2048, two RAMB36E2 (1024 x 36) per copy,
    two copies: 8 RAMB18; the weight buffer 24 x 1024, one RAMB36E2: 2; the output buffer
    64 x 1024, two RAMB36E2 (512 x 72): 4."""
    config = dataclasses.replace(EngineConfig(**TINY), input_words=1024, output_words=512,
                                 weight_words=512)
    parts = engine_parts(config, "xczu9eg")["buffers"]
    assert (parts.bram18, parts.lutram) == (8 + 2 + 4, 0)


@pytest.mark.parametrize("field", ["input_words", "output_words", "weight_words"])
def test_monotone_in_buffer_sizes(field):
    """Larger buffers never take fewer block RAMs, nor other DSPs (a memory may move from
    LUT RAM, with its read register in flip-flops, to block RAM, so those may drop)."""
    config = EngineConfig(tm=8, tn=8, family="xcup")
    costs = [engine_resources(dataclasses.replace(config, **{field: words}), "xczu9eg")
             for words in (16, 64, 256, 1024, 4096)]
    for smaller, larger in zip(costs, costs[1:]):
        assert larger.bram18 >= smaller.bram18 and larger.dsp == smaller.dsp, (smaller, larger)
    assert costs[-1].bram18 > costs[0].bram18


def test_grows_with_the_array():
    small = engine_resources(EngineConfig(tm=4, tn=4, family="xcup"), "xczu9eg")
    large = engine_resources(EngineConfig(tm=16, tn=16, family="xcup"), "xczu9eg")
    assert all(getattr(large, k) > getattr(small, k) for k in ("lut", "ff", "dsp"))


def test_bad_part():
    with pytest.raises(ValueError, match="device must be a part"):
        engine_resources(EngineConfig(**TINY), "xc9z999")


def test_part_of_another_family():
    with pytest.raises(ValueError, match="engine family 'xcup'.*part 'xc7z020'.*'xc7'"):
        engine_resources(EngineConfig(**TINY), "xc7z020")


@pytest.mark.synth
@pytest.mark.slow
def test_small_engine_against_yosys():
    """One small engine, synthesized whole (about 10 minutes of yosys): DSP and BRAM18 exact,
    LUT and FF within the benchmark's worst bound (30%)."""
    from hwgen.engine.core import Engine
    from hwgen.synth import synthesize

    config = EngineConfig(**TINY)
    model = engine_resources(config, "xczu9eg")
    result = synthesize(Engine(config), "xcup")
    bram18 = sum({"RAMB18E2": 1, "RAMB36E2": 2}.get(c, 0) * n
                 for c, n in result["cells"].items())
    assert model.dsp == result["DSP"]
    assert model.bram18 == bram18
    for kind, measured in (("lut", result["LUT"]), ("ff", result["FF"])):
        assert abs(getattr(model, kind) - measured) <= 0.30 * measured, (kind, model, measured)


def test_gearbox_granule_by_hand():
    """Every count of bits a gearbox holds is a sum of bus words and groups of ``lanes``
    elements: a multiple of the largest power of two dividing both."""
    assert [granule(d, lanes) for d, lanes in ((512, 64), (512, 56), (64, 3), (32, 64),
                                               (128, 12))] == [64, 8, 1, 32, 4]
    assert [granule(lanes) for lanes in (64, 56, 3, 12)] == [64, 8, 1, 4]


def test_packer_shifter_shrinks_with_its_granule():
    """64 lanes on a 512-bit bus shift by multiples of 64 bits: 6 stages for a 2,560-bit
    buffer, 14,528 multiplexers. 63 lanes (a granule of 1 bit) take 12 stages for a buffer
    32 bits narrower, 26,741 multiplexers."""
    config = EngineConfig(tm=64, tn=64, lane_bits=(4,) * 63 + (8,), data_bits=512,
                          family="xcup")
    odd = dataclasses.replace(config, tm=63, tn=63, lane_bits=(4,) * 62 + (8,))
    assert 1.8 * packer_luts(config) < packer_luts(odd)
    assert unpacker_luts(config) < unpacker_luts(odd)
