"""quant.peaks: synthetic signals, the output encoding, matching and scores, classic detectors."""

import numpy as np
import pytest

from quant import peaks


@pytest.fixture(scope="module")
def signals():
    return peaks.generate(300, seed=5)


def test_generate_is_seeded_and_well_formed(signals):
    x, true = signals
    assert x.shape == (300, 256) and x.dtype == np.int8
    again, true_again = peaks.generate(300, seed=5)
    assert np.array_equal(x, again)
    assert all(np.array_equal(a, b) for a, b in zip(true, true_again))
    other, _ = peaks.generate(300, seed=6)
    assert not np.array_equal(x, other)
    counts = [len(p) for p in true]
    assert min(counts) == 0 and max(counts) == 5
    for p in true:
        assert np.all((p >= 4) & (p <= 251))
        assert np.all(np.diff(p) >= 6)
    assert x.min() < -10 and x.max() > 60      # drift below zero, peaks well above


def test_peaks_stand_out_from_the_baseline(signals):
    x, true = signals
    heights = [x[i, int(round(c))] - np.median(x[i]) for i, p in enumerate(true) for c in p]
    assert np.median(heights) > 20             # a median peak is ~0.5 (32 steps) high


def test_dataset_uses_disjoint_seeds():
    x_train, p_train, x_test, p_test = peaks.dataset(50, 20)
    assert x_train.shape == (50, 256) and x_test.shape == (20, 256)
    assert np.array_equal(x_train, peaks.generate(50, seed=0)[0])
    assert np.array_equal(x_test, peaks.generate(20, seed=1)[0])


def test_encode_then_decode_recovers_the_nearest_samples(signals):
    _, true = signals
    labels = peaks.encode(true)
    assert labels.shape == (300, 128)
    assert int((labels > 0).sum()) == sum(len(p) for p in true)
    scores = np.eye(3)[labels].transpose(0, 2, 1)    # perfect one-hot scores
    found = peaks.decode(scores, threshold=0.5)
    for f, t in zip(found, true):
        assert np.array_equal(f, np.floor(t + 0.5))
    result = peaks.detection_scores(found, true)
    assert result["f1"] == 1.0 and result["localization_error"] <= 0.5


def test_encode_places_each_peak_in_its_cell():
    labels = peaks.encode([np.array([0.2, 5.5, 10.49, 15.0, 255.0])], length=256)
    # nearest samples 0, 6, 10, 15, 255 -> (cell, sample in cell) (0, 0), (3, 0), (5, 0),
    # (7, 1), (127, 1); the label is 1 + the sample in the cell
    assert labels[0, :8].tolist() == [1, 0, 0, 1, 0, 1, 0, 2]
    assert labels[0, 127] == 2 and int((labels > 0).sum()) == 5


def test_decode_suppresses_non_maxima_and_applies_the_threshold():
    scores = np.zeros((1, 3, 12))
    margins = [0, 3, 5, 4, 0, 0, 2, 2, 0, 0, 0.5, 0]
    scores[0, 1] = margins
    scores[0, 2, 3] = 9                     # cell 3 prefers its second sample, margin 9
    # cells: 3 (margin 9) beats 1 and 2 within radius 2; 6 and 7 tie: the first wins;
    # cell 10 is below the threshold of 1.
    found = peaks.decode(scores, threshold=1.0, radius=2)[0]
    assert found.tolist() == [7.0, 12.0]
    assert peaks.decode(scores, threshold=1.0, radius=0)[0].tolist() == \
        [2.0, 4.0, 7.0, 12.0, 14.0]
    # integer scores with a scale: the margin is compared in real units
    assert peaks.decode(scores * 100, threshold=1.0, radius=2, scale=0.01)[0].tolist() == \
        [7.0, 12.0]


def test_match_is_greedy_closest_first():
    assert peaks.match([10.0, 13.0], [12.0]).tolist() == [1.0]
    assert peaks.match([10.0], [13.0, 7.0]).tolist() == [3.0]         # tolerance inclusive
    assert peaks.match([10.0], [13.5]).tolist() == []
    assert peaks.match([], [1.0]).tolist() == []


def reference_scores(predicted, true, tolerance):
    tp = fp = fn = 0
    distances = []
    for p, t in zip(predicted, true):
        pairs = sorted((abs(a - b), i, j) for i, a in enumerate(p) for j, b in enumerate(t))
        used_p, used_t = set(), set()
        for d, i, j in pairs:
            if d <= tolerance and i not in used_p and j not in used_t:
                used_p.add(i)
                used_t.add(j)
                distances.append(d)
        tp += len(used_p)
        fp += len(p) - len(used_p)
        fn += len(t) - len(used_t)
    return tp, fp, fn, distances


def test_detection_scores_match_a_per_signal_loop():
    rng = np.random.default_rng(0)
    true = [np.sort(rng.uniform(0, 50, rng.integers(0, 6))) for _ in range(200)]
    predicted = [np.sort(np.concatenate([t + rng.normal(0, 2, t.size),
                                         rng.uniform(0, 50, rng.integers(0, 3))]))
                 for t in true]
    got = peaks.detection_scores(predicted, true, tolerance=2.5)
    tp, fp, fn, distances = reference_scores(predicted, true, 2.5)
    assert (got["tp"], got["fp"], got["fn"]) == (tp, fp, fn)
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert got["localization_error"] == pytest.approx(np.mean(distances))


def test_detection_scores_of_nothing():
    result = peaks.detection_scores([np.zeros(0)], [np.zeros(0)])
    assert result["f1"] == 0.0 and np.isnan(result["localization_error"])
    with pytest.raises(ValueError, match=r"predicted and true must have one entry per signal, "
                                         r"not 2 and 1"):
        peaks.detection_scores([[], []], [[]])


def test_tune_threshold_picks_the_best_f1(signals):
    _, true = signals
    labels = peaks.encode(true)
    rng = np.random.default_rng(1)
    scores = np.eye(3)[labels].transpose(0, 2, 1) * 4 + rng.normal(0, 1, (300, 3, 128))
    threshold, f1 = peaks.tune_threshold(scores, true, [-4, 0, 2, 3, 6])
    assert threshold in (2.0, 3.0) and f1 > 0.9
    assert f1 == peaks.detection_scores(peaks.decode(scores, threshold), true)["f1"]


@pytest.mark.parametrize("detector", [
    peaks.FindPeaksDetector(sigma=1.0, prominence=0.15, width=1.0),
    peaks.CentroidDetector(sigma=1.0, window=31, radius=3, half_width=2, threshold=0.15),
], ids=["find_peaks", "centroid"])
def test_classic_detectors_find_clean_peaks(detector):
    t = np.arange(256)
    signal = (0.8 * np.exp(-0.5 * ((t - 60.3) / 3) ** 2) + 0.5 * np.exp(-0.5 * ((t - 170) / 4)
                                                                            ** 2) + 0.1)
    x = np.round(signal / peaks.INPUT_SCALE).astype(np.int8)[None]
    found = detector.detect(x)[0]
    assert len(found) == 2
    assert np.abs(found - [60.3, 170]).max() <= 1.0


@pytest.mark.parametrize("kind", [peaks.FindPeaksDetector, peaks.CentroidDetector])
def test_detectors_fit_on_training_signals(kind, signals):
    x, true = signals
    detector = kind().fit(x[:100], true[:100])
    assert set(detector.params) == set(kind.GRID)
    scored = peaks.detection_scores(detector.detect(x[:100]), true[:100])["f1"]
    assert detector.train_f1 == scored > 0.8


@pytest.mark.parametrize("kind", [peaks.FindPeaksDetector, peaks.CentroidDetector])
def test_detectors_need_parameters(kind):
    with pytest.raises(ValueError, match=rf"{kind.__name__} has no parameters; call fit\(\) "
                                         rf"first"):
        kind().detect(np.zeros((1, 256), np.int8))


@pytest.mark.parametrize("kwargs, message", [
    ({"n": -1}, r"n must be an integer >= 0, not -1"),
    ({"n": 2, "length": 8}, r"length must be an integer >= 16, not 8"),
    ({"n": 2, "max_peaks": 1.5}, r"max_peaks must be an integer >= 0, not 1.5"),
])
def test_generate_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        peaks.generate(**kwargs)


def test_decode_needs_cell_scores():
    with pytest.raises(ValueError, match=r"scores must have shape \(N, 1 \+ cell, cells\), not "
                                         r"\(3, 128\)"):
        peaks.decode(np.zeros((3, 128)))
