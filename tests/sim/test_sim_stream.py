"""Packing the elements of one beat and back, without a simulator."""

import numpy as np
import pytest

from quant.stream_format import StreamFormat
from sim.stream import pack_beat, unpack_beat

SEED = 20240611

# (bits, signed, elements per beat): 1-bit, odd widths, a beat wider than 64 bits, int64 limits.
LAYOUTS = [(1, False, 1), (1, True, 4), (6, True, 3), (8, False, 4), (5, True, 7),
           (16, True, 9), (13, False, 11), (63, False, 2), (64, True, 2)]


def _edge_values(bits, is_signed, n, rng):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    edges = [lo, hi, 0, lo + 1 if lo + 1 <= hi else lo, hi - 1 if hi - 1 >= lo else hi]
    if is_signed:
        edges.append(-1)
    if bits < 64:
        randoms = rng.integers(lo, hi, size=n, endpoint=True)
    else:
        randoms = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=n)
    values = np.concatenate([np.array(edges, dtype=np.int64), randoms])
    return values[:n] if len(values) >= n else np.resize(values, n)


@pytest.mark.parametrize("bits,is_signed,n", LAYOUTS,
                         ids=[f"{'s' if s else 'u'}{b}x{n}" for b, s, n in LAYOUTS])
def test_beat_round_trip(bits, is_signed, n):
    rng = np.random.default_rng(SEED)
    for trial in range(20):
        values = _edge_values(bits, is_signed, n, rng)
        rng.shuffle(values)
        word = pack_beat(values, bits)
        assert 0 <= word < 1 << (n * bits)
        back = unpack_beat(word, bits, n, is_signed)
        assert back.dtype == np.int64
        assert np.array_equal(back, values), \
            f"trial {trial}: {values.tolist()} -> {word:#x} -> {back.tolist()} (seed {SEED})"


def test_element_zero_is_in_the_low_bits():
    assert pack_beat([1, 0, 0], 6) == 1
    assert pack_beat([0, 1, 0], 6) == 1 << 6
    assert pack_beat([1, -1, -32], 6) == 1 | (0b111111 << 6) | (0b100000 << 12)
    assert unpack_beat(0b100000_111111_000001, 6, 3, signed=True).tolist() == [1, -1, -32]
    assert unpack_beat(0b100000_111111_000001, 6, 3, signed=False).tolist() == [1, 63, 32]


def test_unsigned_and_signed_views_share_bits():
    # -1 and 255 are the same 8-bit pattern; pack accepts both.
    assert pack_beat([-1], 8) == pack_beat([255], 8) == 0xFF
    assert unpack_beat(0x80, 8, 1, signed=True).tolist() == [-128]
    assert unpack_beat(0x80, 8, 1, signed=False).tolist() == [128]


@pytest.mark.parametrize("bits,is_signed,n", LAYOUTS,
                         ids=[f"{'s' if s else 'u'}{b}x{n}" for b, s, n in LAYOUTS])
def test_stream_format_words_are_beats(bits, is_signed, n):
    """A frame's words are its beats as :func:`pack_beat` packs them, in stream order."""
    rng = np.random.default_rng(SEED + bits)
    beats_per_frame = 3
    frames = np.stack([_edge_values(bits, is_signed, n * beats_per_frame, rng)
                       for _ in range(5)]).reshape(5, beats_per_frame, n)
    fmt = StreamFormat((beats_per_frame, n), bits, is_signed, n, order="C")
    words = fmt.pack(frames)
    assert words == [pack_beat(beat, bits) for beat in frames.reshape(-1, n)]
    assert np.array_equal(np.stack([unpack_beat(w, bits, n, is_signed) for w in words]),
                          frames.reshape(-1, n)), f"seed {SEED + bits}"


@pytest.mark.parametrize("call,message", [
    (lambda: pack_beat([32], 5), r"element 0 = 32 does not fit in 5 bits; elements must lie "
                                 r"in -16\.\.31"),
    (lambda: pack_beat([0, -17], 5), r"element 1 = -17 does not fit in 5 bits"),
    (lambda: pack_beat([0], 0), r"bits must be in 1\.\.64 for signed elements"),
    (lambda: unpack_beat(1 << 12, 6, 2, True), r"word must lie in 0\.\.2\^12-1"),
    (lambda: unpack_beat(0, 64, 1, False), r"bits must be in 1\.\.63 for unsigned"),
    (lambda: unpack_beat(0, 8, 0, False), r"n must be at least 1, not 0"),
])
def test_packing_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bits_must_be_an_integer():
    with pytest.raises(TypeError, match="bits must be an integer, not 4.0"):
        pack_beat([1], 4.0)
