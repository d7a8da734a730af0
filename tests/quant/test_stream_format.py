"""The stream format: element order, beats and packing into words, against loop references."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import quant.stream_format
from quant import numerics
from quant.stream_format import StreamFormat

SEED = 20240611


def ref_stream(x, fmt):
    """Stream order by loops: pixel by pixel in raster order, the channels of a pixel
    together (HWC), or C order."""
    frames = []
    for frame in np.asarray(x).reshape(-1, *fmt.shape):
        if fmt.order == "C":
            frames.append(frame.reshape(-1).tolist())
            continue
        feature_map = frame.reshape(fmt.map_shape)
        channels, spatial = fmt.map_shape[0], fmt.map_shape[1:]
        frames.append([int(feature_map[(c, *pixel)]) for pixel in np.ndindex(*spatial)
                       for c in range(channels)])
    return frames


def ref_pack(x, fmt):
    """Payload words by loops: element 0 of a beat in the low bits, two's complement."""
    words = []
    for stream in ref_stream(x, fmt):
        for start in range(0, len(stream), fmt.elements_per_beat):
            word = 0
            for i, value in enumerate(stream[start:start + fmt.elements_per_beat]):
                word |= (int(value) % (1 << fmt.bits)) << (i * fmt.bits)
            words.append(word)
    return words


def random_frames(fmt, n, rng):
    lo, hi = fmt.range
    x = rng.integers(lo, hi, size=(n, *fmt.shape), endpoint=True, dtype=np.int64)
    edges = [lo, hi, 0, -1 if fmt.signed else 1]
    x.reshape(-1)[:len(edges)] = edges  # the ends of the range first
    return x


# (id, shape, bits, signed, elements per beat, map_shape): vectors, 1-D and 2-D maps, maps with
# C == H == W, flattened maps, 1-bit and 64-bit elements, beats wider than 64 bits.
CASES = [
    ("vector_u8x4", (24,), 8, False, 4, None),
    ("vector_s13x5_65bit_beat", (10,), 13, True, 5, None),
    ("signal_map_s5x2", (3, 8), 5, True, 2, None),
    ("image_u8x3", (3, 5, 4), 8, False, 3, None),
    ("image_u4x12", (3, 5, 4), 4, False, 12, None),
    ("image_c_eq_h_eq_w", (3, 3, 3), 6, False, 3, None),
    ("image_5x5x5_one_per_beat", (5, 5, 5), 8, False, 1, None),
    ("flattened_image", (24,), 5, False, 4, (4, 3, 2)),
    ("flattened_signal", (12,), 3, True, 3, (3, 4)),
    ("one_bit", (2, 3, 3), 1, False, 2, None),
    ("one_bit_signed", (6,), 1, True, 6, None),
    ("s64x2_128bit_beat", (2, 2), 64, True, 2, None),
    ("u63x3_189bit_beat", (3, 3), 63, False, 3, None),
    ("u7x9_63bit_beat", (9, 2), 7, False, 9, None),
    ("u8x8_64bit_beat", (8, 2), 8, False, 8, None),
]


@pytest.fixture(params=CASES, ids=[case[0] for case in CASES])
def fmt(request):
    _, shape, bits, is_signed, k, map_shape = request.param
    return StreamFormat.for_tensor(shape, bits, is_signed, k, map_shape=map_shape)


def test_round_trip_against_loops(fmt):
    rng = np.random.default_rng(SEED)
    x = random_frames(fmt, 5, rng)
    stream = fmt.to_stream(x)
    assert stream.dtype == np.int64 and stream.shape == (5, fmt.frame_elements)
    assert stream.tolist() == ref_stream(x, fmt), f"seed {SEED}"
    np.testing.assert_array_equal(fmt.from_stream(stream), x)
    words = fmt.pack(x)
    assert len(words) == 5 * fmt.beats_per_frame
    assert all(type(w) is int and 0 <= w < 1 << fmt.beat_bits for w in words)
    assert words == ref_pack(x, fmt), f"seed {SEED}"
    back = fmt.unpack(words)
    assert back.dtype == np.int64 and back.shape == x.shape
    np.testing.assert_array_equal(back, x, err_msg=f"seed {SEED}")
    np.testing.assert_array_equal(fmt.unpack(np.array(words, dtype=object)), x)


def test_one_frame_without_batch_axis(fmt):
    x = random_frames(fmt, 1, np.random.default_rng(SEED))
    assert fmt.pack(x[0]) == fmt.pack(x)
    assert fmt.to_stream(x[0]).shape == (1, fmt.frame_elements)
    np.testing.assert_array_equal(fmt.from_stream(fmt.to_stream(x)[0]), x)


def test_hwc_is_the_order_of_the_hardwares_dense_columns():
    """The stream of a map is the order in which a dense layer after a flatten reads it."""
    for shape in [(3, 5, 4), (3, 3, 3), (4, 7), (1, 2, 2)]:
        fmt = StreamFormat.for_tensor(shape, 8, False, 1)
        x = np.arange(int(np.prod(shape))).reshape(shape)
        assert fmt.order == "HWC"
        assert fmt.to_stream(x)[0].tolist() == \
            x.reshape(-1)[numerics.interleaved_order(shape)].tolist()


def test_stream_order_by_hand():
    # Channels of a pixel together, pixels in raster order; element 0 in the low bits.
    x = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]], [[9, 10], [11, 12]]])  # (3, 2, 2)
    fmt = StreamFormat.for_tensor((3, 2, 2), 4, False, 3)
    assert fmt.stream_shape == (2, 2, 3)
    assert fmt.to_stream(x).tolist() == [[1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12]]
    assert fmt.pack(x) == [1 | 5 << 4 | 9 << 8, 2 | 6 << 4 | 10 << 8, 3 | 7 << 4 | 11 << 8,
                           4 | 8 << 4 | 12 << 8]
    # The same tensor streamed as it is.
    as_is = StreamFormat((3, 2, 2), 4, False, 3, order="C")
    assert as_is.to_stream(x).tolist() == [list(range(1, 13))]
    # A flattened map streams in the map's order; its tensor is the C-order flattening.
    flat = StreamFormat.for_tensor((12,), 4, False, 3, map_shape=(3, 2, 2))
    assert flat.order == "HWC"
    assert flat.to_stream(x.reshape(-1)).tolist() == fmt.to_stream(x).tolist()
    np.testing.assert_array_equal(flat.unpack(fmt.pack(x)), x.reshape(1, 12))


def test_signed_elements_are_twos_complement():
    fmt = StreamFormat((3,), 6, True, 3)
    assert fmt.pack([1, -1, -32]) == [1 | 0b111111 << 6 | 0b100000 << 12]
    assert fmt.unpack([0b100000_111111_000001]).tolist() == [[1, -1, -32]]
    unsigned = StreamFormat((3,), 6, False, 3)
    assert unsigned.unpack([0b100000_111111_000001]).tolist() == [[1, 63, 32]]


def test_int64_limits_and_other_integer_types():
    fmt = StreamFormat((2,), 64, True, 2)
    x = np.array([[np.iinfo(np.int64).min, np.iinfo(np.int64).max]])
    assert fmt.pack(x) == [(1 << 63) | ((1 << 63) - 1) << 64]
    np.testing.assert_array_equal(fmt.unpack(fmt.pack(x)), x)
    small = StreamFormat((4,), 8, False, 2)
    for dtype in (np.uint8, np.int16, np.uint64):
        assert small.pack(np.array([0, 255, 7, 1], dtype=dtype)) == [255 << 8, 7 | 1 << 8]
    np.testing.assert_array_equal(small.unpack(np.array([255 << 8, 7 | 1 << 8], np.uint64)),
                                  [[0, 255, 7, 1]])


def test_for_tensor_chooses_the_order():
    assert StreamFormat.for_tensor((10,), 4, False, 2).order == "C"
    assert StreamFormat.for_tensor((10,), 4, False, 2).map_shape is None
    assert StreamFormat.for_tensor((2, 5), 4, False, 2).order == "HWC"
    assert StreamFormat.for_tensor((2, 5), 4, False, 2).map_shape == (2, 5)
    assert StreamFormat.for_tensor([2, 5], 4, False, 2, map_shape=[2, 5]).shape == (2, 5)
    assert StreamFormat.for_tensor((10,), 4, False, 2, map_shape=(2, 5)).order == "HWC"


def test_sizes():
    fmt = StreamFormat.for_tensor((3, 5, 4), 13, True, 6)
    assert (fmt.frame_elements, fmt.beats_per_frame, fmt.beat_bits) == (60, 10, 78)
    assert fmt.range == (-4096, 4095)
    assert StreamFormat((2,), 3, False, 1).range == (0, 7)


def test_metadata_round_trip():
    for fmt in [StreamFormat.for_tensor((3, 5, 4), 8, False, 3),
                StreamFormat.for_tensor((24,), 5, True, 4),
                StreamFormat.for_tensor((24,), 5, False, 4, map_shape=(4, 3, 2))]:
        entry = json.loads(json.dumps(fmt.to_metadata()))
        assert StreamFormat.from_metadata(entry) == fmt
    assert StreamFormat.for_tensor((3, 5, 4), 8, False, 3).to_metadata() == {
        "shape": [3, 5, 4], "order": "HWC", "elements_per_beat": 3, "beats_per_frame": 20,
        "bits": 8, "signed": False}
    assert StreamFormat.for_tensor((24,), 5, False, 4, map_shape=(4, 3, 2)).to_metadata()[
        "map_shape"] == [4, 3, 2]


def test_metadata_without_order_is_c_order():
    """Designs described before the order was recorded stream their tensors as they are."""
    entry = {"shape": [4, 3], "elements_per_beat": 3, "beats_per_frame": 4, "bits": 6,
             "signed": True, "beat_bits": 18, "tdata_bits": 24}
    fmt = StreamFormat.from_metadata(entry)
    assert fmt == StreamFormat((4, 3), 6, True, 3, order="C")
    assert fmt.to_stream(np.arange(12).reshape(4, 3)).tolist() == [list(range(12))]


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(shape=(0, 3)), ValueError,
     r"shape must have at least one axis, every axis at least 1, not \(0, 3\)"),
    (dict(shape=()), ValueError, r"shape must have at least one axis"),
    (dict(shape=(2.0, 3)), TypeError, r"shape must be a sequence of integers, not \(2\.0, 3\)"),
    (dict(shape="23"), TypeError, r"shape must be a sequence of integers, not '23'"),
    (dict(bits=0), ValueError,
     r"bits must be in 1\.\.63 for unsigned elements \(they are returned as int64\), not 0"),
    (dict(bits=64), ValueError, r"bits must be in 1\.\.63 for unsigned elements"),
    (dict(bits=65, signed=True), ValueError, r"bits must be in 1\.\.64 for signed elements"),
    (dict(bits=4.0), TypeError, r"bits must be an integer, not 4\.0"),
    (dict(bits=True), TypeError, r"bits must be an integer, not True"),
    (dict(signed=1), TypeError, r"signed must be a bool, not 1"),
    (dict(elements_per_beat=4), ValueError,
     r"elements_per_beat must divide the 6 elements of shape \(2, 3\), not 4"),
    (dict(elements_per_beat=0), ValueError, r"elements_per_beat must divide the 6 elements"),
    (dict(elements_per_beat=2.0), TypeError, r"elements_per_beat must be an integer, not 2\.0"),
    (dict(order="CHW"), ValueError, r"order must be \"HWC\" or \"C\", not 'CHW'"),
    (dict(order="C", map_shape=(2, 3)), ValueError,
     r"map_shape must be None for order \"C\" \(a tensor streamed as it is\), not \(2, 3\)"),
    (dict(shape=(6,), order="HWC"), ValueError,
     r"map_shape must have a channel axis and at least one spatial axis for order \"HWC\", "
     r"not \(6,\)"),
    (dict(shape=(6,), order="HWC", map_shape=(6,)), ValueError,
     r"map_shape must have a channel axis"),
    (dict(shape=(6,), order="HWC", map_shape=(2, 2)), ValueError,
     r"map_shape \(2, 2\) must hold the 6 elements of shape \(6,\), not 4"),
    (dict(shape=(6,), order="HWC", map_shape=(2, -3)), ValueError,
     r"map_shape must have at least one axis, every axis at least 1, not \(2, -3\)"),
])
def test_invalid_fields(kwargs, error, message):
    fields = dict(shape=(2, 3), bits=4, signed=False, elements_per_beat=3, order="HWC")
    with pytest.raises(error, match=message):
        StreamFormat(**(fields | kwargs))


def test_fields_are_normalized_and_frozen():
    fmt = StreamFormat([np.int64(2), 3], np.int64(4), np.bool_(True), np.int64(3), "HWC")
    assert fmt.shape == (2, 3) and fmt.map_shape == (2, 3)
    assert type(fmt.bits) is int and type(fmt.signed) is bool
    assert type(fmt.elements_per_beat) is int
    with pytest.raises(AttributeError):
        fmt.bits = 5


@pytest.mark.parametrize("call,error,message", [
    (lambda f: f.pack(np.array([[0, 1, 2], [3, 4, 16]])), ValueError,
     r"frame 0, element \(1, 2\) must lie in the 4-bit unsigned range 0\.\.15, not 16"),
    (lambda f: f.pack(np.array([[[0, 1, 2], [3, 4, 5]], [[0, -1, 2], [3, 4, 5]]])), ValueError,
     r"frame 1, element \(0, 1\) must lie in the 4-bit unsigned range 0\.\.15, not -1"),
    (lambda f: f.pack(np.zeros((2, 6), int)), ValueError,
     r"x must have shape \(N, 2, 3\) or \(2, 3\), not \(2, 6\)"),
    (lambda f: f.pack(np.zeros((2, 3))), TypeError, r"x must hold integers, not float64"),
    (lambda f: f.to_stream(np.zeros((1, 3, 2), int)), ValueError,
     r"x must have shape \(N, 2, 3\) or \(2, 3\), not \(1, 3, 2\)"),
    (lambda f: f.to_stream(np.full((2, 3), 1 << 63, np.uint64)), ValueError,
     r"x must fit in int64, not hold 9223372036854775808"),
    (lambda f: f.from_stream(np.zeros((2, 5), int)), ValueError,
     r"flat must have shape \(N, 6\), not \(2, 5\)"),
    (lambda f: f.from_stream(np.zeros((2, 6))), TypeError, r"flat must hold integers"),
    (lambda f: f.unpack([0, 0, 0]), ValueError,
     r"words must be a whole number of frames of 2 beats, not 3 beats"),
    (lambda f: f.unpack([0, 1 << 12]), ValueError,
     r"word 1 must lie in 0\.\.2\^12-1 for 3 elements of 4 bits, not 0x1000"),
    (lambda f: f.unpack([-1, 0]), ValueError, r"word 0 must lie in 0\.\.2\^12-1"),
    (lambda f: f.unpack([0.0, 1.0]), TypeError, r"words must be integers, not float$"),
    (lambda f: f.unpack(np.array([0.0, 1.0])), TypeError,
     r"words must be integers, not float64"),
    (lambda f: f.unpack([0, 1 << 70]), ValueError, r"word 1 must lie in 0\.\.2\^12-1"),
])
def test_packing_errors(call, error, message):
    fmt = StreamFormat((2, 3), 4, False, 3, order="HWC")
    with pytest.raises(error, match=message):
        call(fmt)


def test_signed_range_is_checked():
    fmt = StreamFormat((3,), 5, True, 3)
    with pytest.raises(ValueError, match=r"frame 0, element \(1,\) must lie in the 5-bit "
                                         r"signed range -16\.\.15, not 16"):
        fmt.pack([0, 16, 0])
    with pytest.raises(ValueError, match=r"must lie in the 63-bit unsigned range "
                                         r"0\.\.9223372036854775807, not 9223372036854775808"):
        StreamFormat((1,), 63, False, 1).pack(np.array([1 << 63], dtype=np.uint64))


@pytest.mark.parametrize("entry,message", [
    ({"shape": [4]}, r"^output is missing elements_per_beat, beats_per_frame, bits, signed$"),
    ({"shape": [4, "3"], "elements_per_beat": 0, "beats_per_frame": 4, "bits": 65,
      "signed": "yes", "order": "CHW", "map_shape": [0]},
     r"^output\.shape must be a list of positive integers, not \[4, '3'\]\n"
     r"output\.elements_per_beat must be a positive integer, not 0\n"
     r"output\.signed must be true or false, not 'yes'\n"
     r"output\.bits must be an integer in 1\.\.63, not 65\n"
     r"output\.order must be \"HWC\" or \"C\", not 'CHW'\n"
     r"output\.map_shape must be a list of positive integers, not \[0\]$"),
    ({"shape": [4, 3], "elements_per_beat": 3, "beats_per_frame": 3, "bits": 6,
      "signed": True},
     r"^output: elements_per_beat 3 \* beats_per_frame 3 = 9 must equal the 12 elements of "
     r"shape \(4, 3\)$"),
    ({"shape": [12], "elements_per_beat": 3, "beats_per_frame": 4, "bits": 6,
      "signed": True, "order": "HWC", "map_shape": [2, 5]},
     r"^output: map_shape \(2, 5\) must hold the 12 elements of shape \(12,\), not 10$"),
    ({"shape": [12], "elements_per_beat": 3, "beats_per_frame": 4, "bits": 6,
      "signed": True, "order": "HWC"},
     r"^output: map_shape must have a channel axis and at least one spatial axis"),
])
def test_metadata_errors(entry, message):
    with pytest.raises(ValueError, match=message):
        StreamFormat.from_metadata(entry, name="output")


def test_metadata_must_be_a_mapping():
    with pytest.raises(TypeError, match=r"stream must be a dict, not \[1, 2\]"):
        StreamFormat.from_metadata([1, 2])


def test_large_frames():
    """A 224x224x3 image and 5,000 MNIST-sized digits round trip (the vectorized paths)."""
    rng = np.random.default_rng(SEED)
    for shape, k, n in [((3, 224, 224), 3, 2), ((1, 28, 28), 16, 5000)]:
        fmt = StreamFormat.for_tensor(shape, 8, False, k)
        x = rng.integers(0, 256, (n, *shape))
        words = fmt.pack(x)
        assert words[:2] == ref_pack(x[:1], fmt)[:2]
        np.testing.assert_array_equal(fmt.unpack(words), x)


def test_module_imports_nothing_from_the_project():
    """Board builds ship this one file beside the PYNQ driver: NumPy and the standard
    library only."""
    tree = ast.parse(Path(quant.stream_format.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module.split(".")[0])
    assert imported <= {"collections", "dataclasses", "numpy"}, imported
