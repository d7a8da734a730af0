"""What the engine computes, layer by layer, on a DRAM image: the program's own reference.

:func:`run_image` reads each descriptor from the image, its tensors and parameters exactly as
the hardware does (weights from their k-steps, each at its lane's width; biases, lanes and
multipliers from the parameter words), computes the layer, and writes its output tensor back.
It proves the compiler's image (layouts, weight k-steps, passes, crossbar tables) against the
golden without a simulator, and it is the engine's answer that the RTL must equal.
"""

import numpy as np

from quant import numerics

from .config import crossbar_sources
from .params import VECTOR_WEIGHT_BITS
from .layout import TensorLayout
from .params import decode_params
from .program import DEPTHWISE, MATMUL, POOL_MAX, POOL_SUM, ROUNDING, Descriptor
from .weights import kstep_widths, unpack_fields

__all__ = ["run_image", "descriptors"]


def descriptors(image, address=0):
    """The descriptors of the program at ``address``, to the one marked last."""
    out = []
    while True:
        d = Descriptor.decode(image[address:address + 64])
        out.append(d)
        if d.last or len(out) > 100_000:
            return out
        address += 64


def _params(image, address, d, config):
    """The :class:`~hwgen.engine.params.FoldParams` of the fold at ``address``."""
    return decode_params(config, image[address:address + d.fold_words * config.data_bytes])


def _tensor(image, address, height, width, groups, bits, signed, config):
    channels = groups * config.tn
    layout = TensorLayout((channels, height, width), bits, bool(signed), config.tn,
                          config.data_bits)
    return layout.unpack(image[address:address + layout.nbytes]), layout


def _padded(x, pad_h, pad_w, value):
    return np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w)), constant_values=value)


def _windows(x, d):
    """``(out_h, out_w, kh * kw, C)`` windows of a padded ``(C, H, W)`` map."""
    kh, kw, sh, sw = d.kernel_h, d.kernel_w, d.stride_h, d.stride_w
    cols = [x[:, ky:ky + sh * (d.out_height - 1) + 1:sh, kx:kx + sw * (d.out_width - 1) + 1:sw]
            for ky in range(kh) for kx in range(kw)]
    return np.moveaxis(np.stack(cols), 1, -1)                         # (K, oh, ow, C)


def _requantize(acc, mult, offset, d):
    if not d.requant:
        return acc
    rounding = {code: name for name, code in ROUNDING.items()}[d.rounding]
    return numerics.requantize(acc, mult, d.shift, d.out_bits, bool(d.out_signed), axis=0,
                               offset=offset, rounding=rounding)


def _pad_value(d):
    v = d.pad_value
    return v - (1 << 32) if v >> 31 else v


def _matmul(image, d, config):
    x, _ = _tensor(image, d.in_addr, d.in_height, d.in_width, d.in_groups, d.in_bits,
                   d.in_signed, config)
    x = _padded(x, d.pad_h, d.pad_w, 0)
    cols = _windows(x, d)                                              # (K, oh, ow, C)
    k, oh, ow, channels = cols.shape
    cols = np.moveaxis(cols, 0, 2).reshape(oh * ow, k * channels)       # (pixels, K*C)
    tm, tn = config.tm, config.tn
    out = np.zeros((d.folds * tm, oh * ow), np.int64)
    address = d.param_addr
    word_bytes = config.data_bytes
    # The loader reads as many passes as the fold before said (the descriptor, for the first);
    # the compute unit runs as many as the fold's own parameters say.
    read_passes = d.first_passes
    reach = crossbar_sources(config.lane_bits)
    for f in range(d.folds):
        params = _params(image, address, d, config)
        if not 1 <= params.passes <= d.passes or params.passes != read_passes:
            raise ValueError(f"fold {f} of the layer at parameter address {d.param_addr:#x} "
                             f"has {params.passes} passes, where the fold before (or "
                             f"first_passes) says {read_passes} and the layer at most "
                             f"{d.passes}")
        address += d.fold_words * word_bytes
        fold = np.zeros((tm, oh * ow), np.int64)
        rows = params.passes * d.ksteps
        steps = unpack_fields(image[address:address + rows * d.kstep_words * word_bytes],
                              kstep_widths(config), rows, d.kstep_words * word_bytes)
        address += rows * d.kstep_words * word_bytes
        weights = steps.reshape(params.passes, d.ksteps, tm, tn).transpose(0, 2, 1, 3)
        for q in range(params.passes):
            w = weights[q]                                               # (tm, K, tn)
            acc = np.asarray(params.bias[q])[:, None] + w.reshape(tm, -1) @ cols.T
            for position, (lane, valid) in enumerate(params.source[q]):
                if valid:       # a lane beyond the position's reach gives 0, as in the RTL
                    fold[position] = acc[lane] if lane in reach[position] else 0
        out[f * tm:(f + 1) * tm] = _requantize(fold, params.mult, params.offset, d)
        read_passes = params.next_passes
    return out.reshape(-1, oh, ow)


def _vector(image, d, config):
    tn = config.tn
    x, _ = _tensor(image, d.in_addr, d.in_height, d.in_width, d.in_groups, d.in_bits,
                   d.in_signed, config)
    pad = _pad_value(d) if d.op == POOL_MAX else 0
    windows = _windows(_padded(x, d.pad_h, d.pad_w, pad), d)            # (K, oh, ow, C)
    channels = x.shape[0]
    word_bytes = config.data_bytes
    address = d.param_addr
    bias, mult, offset, weight = [], [], [], []
    for g in range(d.folds):
        params = _params(image, address, d, config)
        address += d.fold_words * word_bytes
        bias += params.bias[0]
        mult += params.mult
        offset += params.offset
        weight.append(unpack_fields(image[address:address + d.ksteps * d.kstep_words
                                          * word_bytes], np.full(tn, VECTOR_WEIGHT_BITS),
                                    d.ksteps, d.kstep_words * word_bytes))
        address += d.ksteps * d.kstep_words * word_bytes
    if d.op == POOL_MAX:
        acc = windows.max(axis=0)
    elif d.op == POOL_SUM:
        acc = windows.sum(axis=0)
    elif d.op == DEPTHWISE:
        w = np.concatenate(weight, axis=1)                              # (K, C)
        acc = (windows * w[:, None, None, :]).sum(axis=0) + np.asarray(bias)[None, None, :]
    else:
        y, _ = _tensor(image, d.in2_addr, d.in_height, d.in_width, d.in_groups, d.in2_bits,
                       d.in2_signed, config)
        acc = windows[0] + np.moveaxis(y, 0, -1)
    acc = np.moveaxis(acc, -1, 0)                                        # (C, oh, ow)
    return _requantize(acc, np.asarray(mult)[:channels], np.asarray(offset)[:channels], d)


def run_image(image, config, address=0):
    """Run the program at ``address`` on ``image`` (a bytearray, changed in place); returns
    the image."""
    for d in descriptors(image, address):
        out = _matmul(image, d, config) if d.op == MATMUL else _vector(image, d, config)
        channels = d.out_groups * config.tm
        layout = TensorLayout((channels, d.out_height, d.out_width), d.out_bits,
                              bool(d.out_signed), config.tn, config.data_bits)
        data = layout.pack(out[:channels])
        image[d.out_addr:d.out_addr + len(data)] = data
    return image
