"""FILM-QNN intra-layer mixed precision: which filters of a layer get the high bit width.

FILM-QNN (Sun et al., FPGA 2022) keeps most filters of a layer at 4 bits and gives a few
(about 5%) 8 bits. The hardware computes each precision group with its own lanes, so the number
of high-precision filters must be a multiple of a hardware granularity (the number of output
folds, ``out_features / pe``, when every fold must hold the same number of 8-bit filters).

The selection is NumPy only and works on any filter shape: a dense layer's rows, a
convolution's output filters ``(in_channels // groups, *kernel)`` (each filter flattened).
:func:`apply_precision` sets it on a ``quant.nn.QuantLinear``, ``QuantConv2d`` or
``QuantConv1d``.
"""

import numbers

import numpy as np

from . import numerics

__all__ = ["quantization_error", "high_precision_count", "assign_precision", "apply_precision"]

WEIGHT_BITS_RANGE = (2, 8)


def _round_half_up(x):
    return np.floor(x + 0.5)


def quantization_error(weight, bits, *, shared_scale=False, relative=True):
    """Error of each filter quantized to ``bits``: ``||w_c - Q(w_c)||^2``, divided by
    ``||w_c||^2`` when ``relative``.

    ``Q`` is narrow-range symmetric quantization with a max-abs scale: per filter
    (``max|w_c| / (2^(bits-1) - 1)``, nothing is clipped), or one scale for the whole layer when
    ``shared_scale``. An all-zero filter has error 0.
    """
    w = np.asarray(weight, dtype=np.float64)
    _, hi = numerics.weight_range(bits)
    peak = np.abs(w).max(axis=1)
    scale = np.full_like(peak, peak.max()) if shared_scale else peak.copy()
    scale = np.where(scale > 0, scale / hi, 1.0)
    q = np.clip(_round_half_up(w / scale[:, None]), -hi, hi) * scale[:, None]
    energy = (w ** 2).sum(axis=1)
    err = ((w - q) ** 2).sum(axis=1)
    if not relative:
        return err
    return np.divide(err, energy, out=np.zeros_like(err), where=energy > 0)


def _check_fraction(high_fraction):
    if (isinstance(high_fraction, bool) or not isinstance(high_fraction, numbers.Real)
            or not 0 <= high_fraction <= 1):
        raise ValueError(f"high_fraction must be in [0, 1], not {high_fraction!r}")
    return float(high_fraction)


def _check_granularity(granularity):
    if (not numerics.is_int(granularity)
            or granularity < 1):
        raise ValueError(f"granularity must be a positive integer, not {granularity!r}")
    return int(granularity)


def high_precision_count(out_features, high_fraction, granularity=1):
    """Number of high-precision filters: ``high_fraction * out_features`` rounded to a
    multiple of ``granularity``.

    The count is rounded to the nearest multiple (halves round up), and is at least one
    multiple when ``high_fraction > 0`` and ``granularity <= out_features``: asking for some
    high-precision filters never silently yields none. It never exceeds the largest multiple of
    ``granularity`` that fits in ``out_features``. ``high_fraction = 0`` always gives 0.

    Examples: 128 filters, 5%, granularity 1 -> 6; granularity 4 -> 8; granularity 8 -> 8;
    10 filters, 5%, granularity 1 -> 1 (0.5 rounds up); granularity 16 -> 0 (no multiple fits).
    """
    if (not numerics.is_int(out_features)
            or out_features < 1):
        raise ValueError(f"out_features must be a positive integer, not {out_features!r}")
    high_fraction = _check_fraction(high_fraction)
    granularity = _check_granularity(granularity)
    most = out_features // granularity
    # Rounding to 9 decimals first keeps float error from moving a tie: 0.29 * 50 is
    # 14.499999999999998 in binary, but 14.5 (-> 15) as written.
    wanted = round(high_fraction * out_features / granularity, 9)
    multiples = min(int(_round_half_up(wanted)), most)
    if high_fraction > 0 and most >= 1:
        multiples = max(multiples, 1)
    return multiples * granularity


def assign_precision(weight, high_fraction=0.05, low_bits=4, high_bits=8, granularity=1, *,
                     shared_scale=False, criterion="relative"):
    """Per-filter bit widths for one layer: FILM-QNN's intra-layer mixed precision.

    The filters whose low-bit quantization hurts most get ``high_bits``; the rest get
    ``low_bits``. "Hurts most" is measured on the weights alone (no data needed), with a
    per-filter max-abs scale (:func:`quantization_error`), by one of two criteria:

    ``"relative"`` (default): ``||w_c - Q_low(w_c)||^2 / ||w_c||^2``, the filter's
        noise-to-signal ratio. It ignores the filter's magnitude and is largest for filters
        whose weights are spread unevenly (a few large weights set the scale and the bulk falls
        into the few bins around zero), the shape that 4 bits represent worst. It suits layers
        whose channels are rescaled independently afterwards.
    ``"absolute"``: ``||w_c - Q_low(w_c)||^2``, the noise power the filter adds to its output
        for inputs of unit power. A Requantizer has one output scale per layer, so every
        channel reaches the next layer in the same units; picking the largest absolute errors
        removes the most noise from the next layer's input.

    On the MNIST MLP neither is consistently better: after QAT they agree within 0.3 points,
    and before fine-tuning (2- to 4-bit low precision) each wins on some seeds.

    With ``shared_scale`` (one scale for the layer, as for an argmax head) the scale comes from
    the largest low-bit filter, so the filters are ranked by ``max|w_c|`` instead: moving the
    largest ones to high precision shrinks the step of all the others.

    Parameters
    ----------
    weight : array_like
        Float weights, shape ``(out_features, in_features)`` (or more axes, flattened per
        filter, e.g. convolution kernels).
    high_fraction : float
        Fraction of filters at ``high_bits``, in [0, 1]; the count is rounded to a multiple of
        ``granularity`` as in :func:`high_precision_count` (nearest multiple, at least one
        multiple when ``high_fraction > 0`` and ``granularity <= out_features``).
    low_bits, high_bits : int
        Widths in 2..8, ``high_bits > low_bits``.
    granularity : int
        The high-precision count is a multiple of this (see :func:`high_precision_count`).
    shared_scale : bool
        Rank for a layer with one shared weight scale (see above).
    criterion : {"relative", "absolute"}
        The error measure for per-filter scales (see above).

    Returns
    -------
    numpy.ndarray
        int64 bit width per filter, shape ``(out_features,)``. Ties keep the lower index.
    """
    if criterion not in ("relative", "absolute"):
        raise ValueError(f"criterion must be 'relative' or 'absolute', not {criterion!r}")
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim < 2 or w.shape[0] < 1 or w[0].size < 1:
        raise ValueError(f"weight must be an array of shape (out_features, in_features, ...), "
                         f"not shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weight must be finite, not containing NaN or inf")
    w = w.reshape(w.shape[0], -1)
    lo_b, hi_b = WEIGHT_BITS_RANGE
    for name, bits in (("low_bits", low_bits), ("high_bits", high_bits)):
        if not numerics.is_int(bits) \
                or not lo_b <= bits <= hi_b:
            raise ValueError(f"{name} must be an integer in {lo_b}..{hi_b}, not {bits!r}")
    if high_bits <= low_bits:
        raise ValueError(f"high_bits must be greater than low_bits ({low_bits}), not "
                         f"{high_bits}")
    count = high_precision_count(w.shape[0], high_fraction, granularity)
    if shared_scale:
        badness = np.abs(w).max(axis=1)
    else:
        badness = quantization_error(w, low_bits, relative=criterion == "relative")
    order = np.argsort(-badness, kind="stable")
    bits = np.full(w.shape[0], int(low_bits), dtype=np.int64)
    bits[order[:count]] = int(high_bits)
    return bits


def apply_precision(layer, high_fraction=0.05, low_bits=4, high_bits=8, granularity=1, *,
                    criterion="relative"):
    """Assign FILM-QNN precisions to a ``quant.nn.QuantLinear``, ``QuantConv2d`` or
    ``QuantConv1d`` from its current weights (one width per output filter).

    Arguments as for :func:`assign_precision`; the layer's ``shared_scale`` picks the ranking.
    Sets the layer's ``weight_bits`` and re-derives its scales (max-abs per filter), since a
    scale fitted to one width is wrong for another. Returns the bits.
    """
    if not (hasattr(layer, "set_weight_bits") and hasattr(layer, "weight")):
        raise TypeError(f"layer must be a quant.nn.QuantLinear, QuantConv2d or QuantConv1d, not "
                        f"{type(layer).__name__}")
    weight = layer.weight.detach().cpu().numpy()
    bits = assign_precision(weight, high_fraction, low_bits, high_bits, granularity,
                            shared_scale=getattr(layer, "shared_scale", False),
                            criterion=criterion)
    layer.set_weight_bits(bits)
    return bits
