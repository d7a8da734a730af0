"""Peak detection in 1-D signals: synthetic data, the network's output encoding, scores, and
classic detectors to compare with (the case study of Pistellato et al., Sensors 2023).

Data (NumPy only, seeded): each signal has ``length`` samples holding 0..``max_peaks`` peaks
(Gaussian or Lorentzian, random position, width and height) on a drifting baseline (offset,
slope and a slow sine) with Gaussian noise. Signals are quantized to signed 8-bit integers of
step :data:`INPUT_SCALE` (clipped at -128..127), which is what the network and the classic
detectors all see.

Output encoding of the network: the signal is cut into cells of :data:`CELL` samples
(``length // CELL`` cells); for each cell the network gives ``1 + CELL`` scores: "no peak", and
"peak at sample ``k`` of this cell" for each ``k``. :func:`encode` makes the labels
(``(N, cells)`` integers), :func:`decode` turns scores back into positions: a cell holds a peak
where ``max(peak scores) - no-peak score`` exceeds a threshold and is the largest within
``radius`` cells (non-maximum suppression); its position is the sample with the largest peak
score. The scores may be the golden executor's raw integer accumulators of a head with one
shared scale, so decoding needs no floats beyond the threshold.

Scoring (:func:`detection_scores`): a detection matches a true peak within ``tolerance``
samples (greedy, closest pairs first, each used once); F1 = 2 TP / (2 TP + FP + FN), and the
localization error is the mean absolute distance of the matched pairs.

Classic baselines (:class:`FindPeaksDetector` with ``scipy.signal.find_peaks``,
:class:`CentroidDetector` with a smoothed argmax and a centroid) tune their parameters on the
training signals; they import SciPy when used.
"""

import itertools

import numpy as np

from .numerics import is_int

__all__ = ["SIGNAL_LENGTH", "INPUT_SCALE", "CELL", "TOLERANCE", "generate", "dataset",
           "encode", "decode", "match", "detection_scores", "tune_threshold",
           "FindPeaksDetector", "CentroidDetector"]

#: Samples per signal.
SIGNAL_LENGTH = 256
#: Real value of one step of the signed 8-bit signal (so the integers span -2.0 .. 1.98).
INPUT_SCALE = 1 / 64
#: Samples per output cell of the network.
CELL = 2
#: A detection within this many samples of a true peak is a hit.
TOLERANCE = 3.0


def _check_count(name, value, minimum=1):
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def generate(n, *, length=SIGNAL_LENGTH, max_peaks=5, min_separation=6, seed=0):
    """``n`` synthetic signals and their true peak positions.

    Per signal: the number of peaks is uniform in ``0..max_peaks``; positions are uniform in
    ``[4, length - 5]`` with at least ``min_separation`` samples between peaks; widths
    (Gaussian sigma, or Lorentzian half width) are uniform in 1.5..5 samples; heights in
    0.2..1.0; 30% of the peaks are Lorentzian. The baseline is ``offset + slope * t + a *
    sin(2 pi f t + phase)`` with ``t`` in [0, 1], offset in -0.4..0.2, slope in -0.5..0.5,
    ``a`` in 0..0.3, ``f`` in 0.3..1.5 cycles; the noise is Gaussian with a standard
    deviation in 0.02..0.07 per signal.

    Returns
    -------
    x : numpy.ndarray
        int8 samples, shape ``(n, length)``: ``clip(round(signal / INPUT_SCALE), -128, 127)``.
    peaks : list of numpy.ndarray
        The true centres (float64 sample positions, sorted) of each signal.
    """
    n = _check_count("n", n, 0)
    length = _check_count("length", length, 16)
    max_peaks = _check_count("max_peaks", max_peaks, 0)
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    x = np.empty((n, length), dtype=np.int8)
    peaks = []
    for i in range(n):
        count = int(rng.integers(0, max_peaks + 1))
        centres = []
        for _ in range(100 * count):
            if len(centres) == count:
                break
            c = rng.uniform(4, length - 5)
            if all(abs(c - other) >= min_separation for other in centres):
                centres.append(c)
        centres = np.sort(np.array(centres))
        signal = np.zeros(length)
        for c in centres:
            width = rng.uniform(1.5, 5.0)
            height = rng.uniform(0.2, 1.0)
            if rng.uniform() < 0.3:
                signal += height / (1 + ((t - c) / width) ** 2)
            else:
                signal += height * np.exp(-0.5 * ((t - c) / width) ** 2)
        u = t / (length - 1)
        signal += (rng.uniform(-0.4, 0.2) + rng.uniform(-0.5, 0.5) * u
                   + rng.uniform(0, 0.3) * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * u
                                                  + rng.uniform(0, 2 * np.pi)))
        signal += rng.normal(0, rng.uniform(0.02, 0.07), length)
        x[i] = np.clip(np.floor(signal / INPUT_SCALE + 0.5), -128, 127)
        peaks.append(centres)
    return x, peaks


def dataset(train_size=4000, test_size=1000, seed=0):
    """Training and test signals from two disjoint seeds (``seed`` and ``seed + 1``):
    ``(x_train, peaks_train, x_test, peaks_test)``, ``x`` int8 of shape ``(N, 256)``."""
    x_train, p_train = generate(train_size, seed=2 * seed)
    x_test, p_test = generate(test_size, seed=2 * seed + 1)
    return x_train, p_train, x_test, p_test


def encode(peaks, length=SIGNAL_LENGTH, cell=CELL):
    """Labels ``(N, length // cell)``: 0 where a cell has no peak, ``1 + k`` where a peak's
    nearest sample is sample ``k`` of the cell. Peaks must be more than a cell apart."""
    cells = length // cell
    labels = np.zeros((len(peaks), cells), dtype=np.int64)
    for i, centres in enumerate(peaks):
        for c in centres:
            sample = min(max(int(np.floor(c + 0.5)), 0), cells * cell - 1)
            labels[i, sample // cell] = 1 + sample % cell
    return labels


def decode(scores, threshold=0.0, radius=2, scale=1.0):
    """Peak positions from per-cell scores ``(N, 1 + cell, cells)``.

    A cell's margin is ``(max(scores[1:]) - scores[0]) * scale``; cells whose margin exceeds
    ``threshold`` and is the largest within ``radius`` cells on either side (ties: the first)
    hold a peak, at sample ``cell_index * cell + argmax(scores[1:])``. Returns one float64
    array of positions per signal.
    """
    scores = np.asarray(scores)
    if scores.ndim != 3 or scores.shape[1] < 2:
        raise ValueError(f"scores must have shape (N, 1 + cell, cells), not {scores.shape}")
    cell = scores.shape[1] - 1
    peak = scores[:, 1:].astype(np.float64)
    margin = (peak.max(axis=1) - scores[:, 0]) * scale
    offset = peak.argmax(axis=1)
    n, cells = margin.shape
    padded = np.pad(margin, ((0, 0), (radius, radius)), constant_values=-np.inf)
    windows = np.stack([padded[:, k:k + cells] for k in range(2 * radius + 1)], axis=-1)
    # The first maximum of the window must be the centre (ties go to the earlier cell).
    is_max = windows.argmax(axis=-1) == radius
    keep = is_max & (margin > threshold)
    return [np.flatnonzero(keep[i]) * cell + offset[i, keep[i]].astype(np.float64)
            for i in range(n)]


def match(predicted, true, tolerance=TOLERANCE):
    """Greedy matching of predicted and true positions of one signal: closest pairs first
    (ties: lower predicted index, then lower true index), each position used once, distance
    at most ``tolerance``. Returns the matched distances."""
    return _greedy([np.asarray(predicted, float)], [np.asarray(true, float)], tolerance)


def _flat(positions, gap):
    lengths = [len(a) for a in positions]
    flat = np.concatenate([np.asarray(a, float).ravel() for a in positions] + [np.zeros(0)])
    return flat + np.repeat(np.arange(len(positions)), lengths) * gap


def _greedy(predicted, true, tolerance):
    """:func:`match` over many signals at once (signals are laid end to end, far apart)."""
    raw_p = np.concatenate([np.asarray(a, float).ravel() for a in predicted] + [np.zeros(0)])
    raw_t = np.concatenate([np.asarray(a, float).ravel() for a in true] + [np.zeros(0)])
    if not raw_p.size or not raw_t.size:
        return np.zeros(0)
    span = max(np.abs(raw_p).max(), np.abs(raw_t).max()) + 1
    gap = 2 * span + 4 * tolerance + 1
    p, t = _flat(predicted, gap), _flat(true, gap)
    order_t = np.argsort(t, kind="stable")
    ts = t[order_t]
    lo = np.searchsorted(ts, p - tolerance, side="left")
    counts = np.searchsorted(ts, p + tolerance, side="right") - lo
    pi = np.repeat(np.arange(p.size), counts)
    within = np.arange(pi.size) - np.repeat(np.cumsum(counts) - counts, counts)
    tj = order_t[np.repeat(lo, counts) + within]
    d = np.abs(p[pi] - t[tj])
    order = np.lexsort((tj, pi, d))
    pi, tj, d = pi[order], tj[order], d[order]
    if np.unique(pi).size == pi.size and np.unique(tj).size == tj.size:
        return d  # no position is wanted twice: every pair matches
    used_p, used_t, out = set(), set(), []
    for i, j, dist in zip(pi.tolist(), tj.tolist(), d.tolist()):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            out.append(dist)
    return np.array(out)


def detection_scores(predicted, true, tolerance=TOLERANCE):
    """Detection quality over many signals.

    Returns ``{"f1", "precision", "recall", "localization_error", "tp", "fp", "fn"}``; the
    localization error is the mean absolute distance (samples) of matched pairs.
    """
    if len(predicted) != len(true):
        raise ValueError(f"predicted and true must have one entry per signal, not "
                         f"{len(predicted)} and {len(true)}")
    distances = _greedy(predicted, true, tolerance)
    tp = int(distances.size)
    fp = sum(len(p) for p in predicted) - tp
    fn = sum(len(t) for t in true) - tp
    return {"f1": 2 * tp / max(1, 2 * tp + fp + fn), "precision": tp / max(1, tp + fp),
            "recall": tp / max(1, tp + fn),
            "localization_error": float(distances.mean()) if tp else float("nan"),
            "tp": tp, "fp": fp, "fn": fn}


def tune_threshold(scores, true, thresholds, *, radius=2, scale=1.0, tolerance=TOLERANCE):
    """The threshold of :func:`decode` with the best F1 on ``(scores, true)`` (the first of
    equals), and that F1."""
    best = (None, -1.0)
    for threshold in thresholds:
        f1 = detection_scores(decode(scores, threshold, radius, scale), true, tolerance)["f1"]
        if f1 > best[1]:
            best = (float(threshold), f1)
    return best


def _real(x):
    return np.asarray(x, dtype=np.float64) * INPUT_SCALE


class FindPeaksDetector:
    """``scipy.signal.find_peaks`` on a Gaussian-smoothed signal, tuned on training signals.

    :meth:`fit` searches the smoothing ``sigma``, the minimum ``prominence`` and the minimum
    ``width`` (samples at half prominence) for the best training F1, over :attr:`GRID`;
    :meth:`detect` applies them. (Each peak's prominence and width do not depend on the
    thresholds, so the search runs ``find_peaks`` once per ``sigma`` and masks.)
    """

    GRID = {"sigma": [0.0, 1.0, 2.0, 3.0],
            "prominence": [0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.17, 0.2, 0.25, 0.3],
            "width": [0.0, 1.0, 2.0, 3.0, 4.0]}

    def __init__(self, **params):
        self.params = params or None
        self.train_f1 = None

    @staticmethod
    def _candidates(x, sigma):
        from scipy.ndimage import gaussian_filter1d
        from scipy.signal import find_peaks

        out = []
        for row in _real(np.atleast_2d(x)):
            s = gaussian_filter1d(row, sigma) if sigma > 0 else row
            idx, props = find_peaks(s, prominence=0, width=0)
            out.append((idx.astype(np.float64), props["prominences"], props["widths"]))
        return out

    @staticmethod
    def _select(candidates, prominence, width):
        return [idx[(prom >= prominence) & (w >= width)] for idx, prom, w in candidates]

    def fit(self, x, peaks, tolerance=TOLERANCE):
        """Tune on training signals ``x`` (int8) with true ``peaks``; returns ``self``."""
        best, best_f1 = None, -1.0
        for sigma in self.GRID["sigma"]:
            candidates = self._candidates(x, sigma)
            for prominence, width in itertools.product(self.GRID["prominence"],
                                                       self.GRID["width"]):
                f1 = detection_scores(self._select(candidates, prominence, width), peaks,
                                      tolerance)["f1"]
                if f1 > best_f1:
                    best, best_f1 = {"sigma": sigma, "prominence": prominence,
                                     "width": width}, f1
        self.params, self.train_f1 = best, best_f1
        return self

    def detect(self, x):
        """Peak positions (samples) of each int8 signal in ``x``."""
        if self.params is None:
            raise ValueError("FindPeaksDetector has no parameters; call fit() first")
        p = self.params
        return self._select(self._candidates(x, p["sigma"]), p["prominence"], p["width"])


class CentroidDetector:
    """Smoothed argmax with a centroid, tuned on training signals.

    Smooth (Gaussian ``sigma``), subtract the baseline (a morphological opening: running
    minimum then running maximum over ``window`` samples), keep the samples that are the
    largest within ``radius`` samples on either side and exceed ``threshold``, and place each
    at the centroid of the positive baseline-free signal within ``half_width`` samples.
    :meth:`fit` searches :attr:`GRID` for the best training F1.
    """

    GRID = {"sigma": [1.0, 2.0, 3.0],
            "window": [21, 31, 61],
            "radius": [2, 3, 5],
            "half_width": [1, 2, 4],
            "threshold": [0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.25]}

    def __init__(self, **params):
        self.params = params or None
        self.train_f1 = None

    @staticmethod
    def _baseline_free(x, sigma, window):
        from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d

        s = gaussian_filter1d(_real(np.atleast_2d(x)), sigma, axis=1)
        base = maximum_filter1d(minimum_filter1d(s, window, axis=1, mode="nearest"), window,
                                axis=1, mode="nearest")
        return s - base

    @staticmethod
    def _candidates(d, radius, half_width):
        """The local maxima of every signal: ``(row, centroid, height)`` flat arrays."""
        from scipy.ndimage import maximum_filter1d

        local = maximum_filter1d(d, 2 * radius + 1, axis=1, mode="constant", cval=-np.inf)
        rows, idx = np.nonzero(d == local)
        offsets = np.arange(-half_width, half_width + 1)
        window = idx[:, None] + offsets
        inside = (window >= 0) & (window < d.shape[1])
        window = np.clip(window, 0, d.shape[1] - 1)
        weight = np.where(inside, np.clip(d[rows[:, None], window], 0, None), 0.0)
        total = weight.sum(axis=1)
        centroid = np.where(total > 0, (weight * window).sum(axis=1) / np.where(total > 0, total,
                                                                               1.0), idx)
        return rows, centroid, d[rows, idx]

    @staticmethod
    def _select(candidates, threshold, n):
        rows, centroid, height = candidates
        keep = height > threshold
        counts = np.bincount(rows[keep], minlength=n)
        return np.split(centroid[keep], np.cumsum(counts)[:-1])

    def fit(self, x, peaks, tolerance=TOLERANCE):
        """Tune on training signals ``x`` (int8) with true ``peaks``; returns ``self``."""
        g = self.GRID
        best, best_f1 = None, -1.0
        for sigma, window in itertools.product(g["sigma"], g["window"]):
            d = self._baseline_free(x, sigma, window)
            for radius, half_width in itertools.product(g["radius"], g["half_width"]):
                candidates = self._candidates(d, radius, half_width)
                for threshold in g["threshold"]:
                    found = self._select(candidates, threshold, len(d))
                    f1 = detection_scores(found, peaks, tolerance)["f1"]
                    if f1 > best_f1:
                        best, best_f1 = {"sigma": sigma, "window": window, "radius": radius,
                                         "half_width": half_width, "threshold": threshold}, f1
        self.params, self.train_f1 = best, best_f1
        return self

    def detect(self, x):
        """Peak positions (samples) of each int8 signal in ``x``."""
        if self.params is None:
            raise ValueError("CentroidDetector has no parameters; call fit() first")
        p = self.params
        d = self._baseline_free(x, p["sigma"], p["window"])
        return self._select(self._candidates(d, p["radius"], p["half_width"]), p["threshold"],
                            len(d))
