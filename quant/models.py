"""Ready-made quantization-aware models (PyTorch; import ``quant.models`` explicitly)."""

from collections import OrderedDict


from torch import nn

from .nn import (QuantConv1d, QuantConv2d, QuantInput, QuantLinear, QuantSequential,
                 Requantizer, Residual)
from .numerics import is_int

__all__ = ["mnist_mlp", "mnist_cnn", "resnet_mnist", "peaks_cnn"]


def mnist_mlp(hidden=(128, 64), a_bits=5, low_bits=4, high_bits=8, *, power_of_two=False):
    """The MNIST multilayer perceptron: ``784 -> hidden... -> 10`` with Requantizers between.

    Layers, by name: ``input`` (QuantInput, raw uint8 pixels), then ``fc1, act1, fc2, act2,
    ...`` (QuantLinear, Requantizer with ``a_bits``), and ``fc<n>`` with 10 outputs, whose raw
    accumulator is the class score (argmax). That head has one shared weight scale, so the
    argmax of its integer accumulators is the argmax of its real outputs.

    Every filter starts at ``low_bits``; FILM-QNN assignment (``quant.precision``) later moves
    some of them to ``high_bits``, which the model records as ``model.high_bits`` (and
    ``model.low_bits``) for that step.

    Parameters
    ----------
    hidden : sequence of int
        Width of each hidden layer (may be empty: a single 784 -> 10 layer).
    a_bits : int
        Activation width of every Requantizer.
    low_bits, high_bits : int
        The two FILM-QNN weight widths.
    power_of_two : bool
        Power-of-two scales everywhere: input scale 1/256 (the raw pixel is still the integer),
        power-of-two weight and Requantizer scales. The exported Requantizers are then pure
        shifts and the fake-quant model equals the integer graph bit for bit.

    Returns
    -------
    QuantSequential
    """
    try:
        hidden = tuple(hidden)
    except TypeError:
        hidden = None
    if hidden is None or any(not is_int(h) or h < 1
                             for h in hidden):
        raise ValueError(f"hidden must be a sequence of positive integers, not {hidden!r}")
    if high_bits <= low_bits:
        raise ValueError(f"high_bits must be greater than low_bits ({low_bits}), not {high_bits}")
    layers = OrderedDict()
    layers["input"] = QuantInput(8, signed=False, scale=1 / 256 if power_of_two else 1 / 255)
    widths = (784, *hidden)
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=1):
        layers[f"fc{i}"] = QuantLinear(n_in, n_out, weight_bits=low_bits,
                                       power_of_two=power_of_two)
        layers[f"act{i}"] = Requantizer(a_bits, power_of_two=power_of_two)
    layers[f"fc{len(widths)}"] = QuantLinear(widths[-1], 10, weight_bits=low_bits,
                                             shared_scale=True, power_of_two=power_of_two)
    model = QuantSequential(layers)
    model.low_bits = int(low_bits)
    model.high_bits = int(high_bits)
    return model


def _check_widths(name, values, count):
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if (values is None or len(values) != count
            or any(not is_int(v) or v < 1
                   for v in values)):
        raise ValueError(f"{name} must be {count} positive integers, not {values!r}")
    return tuple(int(v) for v in values)


def _check_bit_pair(low_bits, high_bits):
    if high_bits <= low_bits:
        raise ValueError(f"high_bits must be greater than low_bits ({low_bits}), not {high_bits}")


def _finish(layers, low_bits, high_bits):
    model = QuantSequential(layers)
    model.low_bits = int(low_bits)
    model.high_bits = int(high_bits)
    return model


def mnist_cnn(channels=(8, 16), a_bits=5, low_bits=4, high_bits=8, *, batchnorm=False,
              power_of_two=False):
    """A small MNIST CNN on ``(1, 28, 28)`` uint8 images (about 290k MACs per image).

    Layers, by name::

        input   QuantInput (raw uint8 pixels)
        conv1   QuantConv2d 1 -> c1, 3x3, padding 1     28x28
        act1    Requantizer (a_bits)
        pool1   MaxPool2d 2                            14x14
        conv2   QuantConv2d c1 -> c2, 3x3, padding 1    14x14
        act2    Requantizer (a_bits)
        pool2   MaxPool2d 2                            7x7
        flat    Flatten (channel-major)
        fc      QuantLinear c2 * 49 -> 10, shared scale (raw accumulators: argmax)

    Every filter starts at ``low_bits``; FILM-QNN assignment later moves some filters of each
    layer to ``high_bits`` (recorded as ``model.low_bits`` / ``model.high_bits``).

    Parameters
    ----------
    channels : (int, int)
        Filters of ``conv1`` and ``conv2``.
    a_bits, low_bits, high_bits, power_of_two
        As in :func:`mnist_mlp`.
    batchnorm : bool
        ``bn1`` / ``bn2`` (BatchNorm2d) after the convolutions, for the float training; fold
        them before quantization-aware fine-tuning (:func:`quant.nn.fold_batchnorms`).
        :func:`quant.train.train_mnist_cnn` uses them.
    """
    c1, c2 = _check_widths("channels", channels, 2)
    _check_bit_pair(low_bits, high_bits)
    q = {"weight_bits": low_bits, "power_of_two": power_of_two}
    layers = OrderedDict()
    layers["input"] = QuantInput(8, signed=False, scale=1 / 256 if power_of_two else 1 / 255)
    _conv_bn("conv1", layers, 1, c1, 3, 1, q, batchnorm)
    layers["act1"] = Requantizer(a_bits, power_of_two=power_of_two)
    layers["pool1"] = nn.MaxPool2d(2)
    _conv_bn("conv2", layers, c1, c2, 3, 1, q, batchnorm)
    layers["act2"] = Requantizer(a_bits, power_of_two=power_of_two)
    layers["pool2"] = nn.MaxPool2d(2)
    layers["flat"] = nn.Flatten()
    layers["fc"] = QuantLinear(c2 * 49, 10, shared_scale=True, **q)
    return _finish(layers, low_bits, high_bits)


def _conv_bn(name, layers, in_channels, out_channels, kernel, stride, q, batchnorm):
    layers[name] = QuantConv2d(in_channels, out_channels, kernel, stride=stride,
                               padding=kernel // 2, bias=True, **q)
    if batchnorm:
        layers[name.replace("conv", "bn")] = nn.BatchNorm2d(out_channels)


def resnet_mnist(channels=(8, 16), a_bits=5, low_bits=4, high_bits=8, *, add_bits=8,
                 head="flatten", batchnorm=True, power_of_two=False):
    """A small residual network for MNIST ``(1, 28, 28)`` images (about 423k MACs per image).

    Layers, by name::

        input       QuantInput (raw uint8 pixels)
        conv, bn    QuantConv2d 1 -> c1, 3x3, stride 2, padding 1; BatchNorm2d   14x14
        act         Requantizer (a_bits)
        block1      Residual: body conv1 (c1 -> c1, 3x3), bn1, act1, conv2 (c1 -> c1),
                    bn2; identity shortcut                                      14x14
        act1        Requantizer
        block2      Residual: body conv1 (c1 -> c2, 3x3, stride 2), bn1, act1, conv2
                    (c2 -> c2), bn2; shortcut conv (c1 -> c2, 1x1, stride 2), bn   7x7
        act2        Requantizer
        flat        Flatten (channel-major)
        fc          QuantLinear c2 * 49 -> 10, shared scale (raw accumulators: argmax)

    With ``head="gap"`` the head is ``pool`` (AdaptiveAvgPool2d(1): integer sums), ``act3``
    (Requantizer; the division by 49 is in its multiplier), ``flat`` and ``fc`` (c2 -> 10):
    fewer weights, but on 4,000 training digits about a point less accurate.

    The batch normalizations help the float training; fold them into the convolutions
    (:func:`quant.nn.fold_batchnorms`) before quantization-aware fine-tuning, or let the
    exporter fold them. Each residual join quantizes its branches to ``add_bits`` signed
    integers of one learned scale (:class:`quant.nn.QuantAdd`).
    """
    c1, c2 = _check_widths("channels", channels, 2)
    _check_bit_pair(low_bits, high_bits)
    if head not in ("flatten", "gap"):
        raise ValueError(f"head must be 'flatten' or 'gap', not {head!r}")
    q = {"weight_bits": low_bits, "power_of_two": power_of_two}

    def act():
        return Requantizer(a_bits, power_of_two=power_of_two)

    layers = OrderedDict()
    layers["input"] = QuantInput(8, signed=False, scale=1 / 256 if power_of_two else 1 / 255)
    _conv_bn("conv", layers, 1, c1, 3, 2, q, batchnorm)
    layers["act"] = act()
    for index, (c_in, c_out, stride) in enumerate(((c1, c1, 1), (c1, c2, 2)), start=1):
        body = OrderedDict()
        _conv_bn("conv1", body, c_in, c_out, 3, stride, q, batchnorm)
        body["act1"] = act()
        _conv_bn("conv2", body, c_out, c_out, 3, 1, q, batchnorm)
        shortcut = None
        if stride != 1 or c_in != c_out:
            short = OrderedDict()
            _conv_bn("conv", short, c_in, c_out, 1, stride, q, batchnorm)
            shortcut = QuantSequential(short)
        layers[f"block{index}"] = Residual(QuantSequential(body), shortcut, add_bits=add_bits,
                                           power_of_two=power_of_two)
        layers[f"act{index}"] = act()
    features = c2 * 49
    if head == "gap":
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
        layers["act3"] = act()
        features = c2
    layers["flat"] = nn.Flatten()
    layers["fc"] = QuantLinear(features, 10, shared_scale=True, **q)
    return _finish(layers, low_bits, high_bits)


def peaks_cnn(channels=(6, 12, 8), a_bits=4, weight_bits=4, *, batchnorm=True,
              power_of_two=False):
    """A 1-D convolutional QNN that locates peaks in signed 8-bit signals of 256 samples.

    Layers, by name (``(channels, length)`` after each)::

        input           QuantInput, signed 8-bit, scale 1/64 (quant.peaks.INPUT_SCALE)
        conv1, bn1      QuantConv1d 1 -> c1, k 7, padding 3          (c1, 256)
        act1            Requantizer (a_bits, unsigned)
        conv2, bn2      QuantConv1d c1 -> c2, k 5, stride 2, pad 2   (c2, 128)
        act2            Requantizer
        conv3, bn3      QuantConv1d c2 -> c3, k 5, padding 2         (c3, 128)
        act3            Requantizer
        head            QuantConv1d c3 -> 3, k 1, shared scale       (3, 128)

    The head scores each cell of 2 samples: "no peak", "peak at the cell's first sample",
    "peak at its second sample" (see :mod:`quant.peaks`); its raw accumulators are decoded
    directly. Receptive field: 19 samples. About 121k MACs per signal (default channels).

    Parameters
    ----------
    channels : (int, int, int)
        Filters of conv1, conv2 and conv3.
    a_bits : int
        Activation width of the Requantizers.
    weight_bits : int
        Weight width of every filter, 2..8 (the case study uses 2 to 4).
    batchnorm : bool
        Batch normalization after conv1..conv3 (for the float training; fold it before QAT).
    power_of_two : bool
        Power-of-two scales everywhere (input scale 1/64 already is one).
    """
    c1, c2, c3 = _check_widths("channels", channels, 3)
    q = {"weight_bits": weight_bits, "power_of_two": power_of_two}

    def conv(name, layers, c_in, c_out, kernel, stride):
        layers[name] = QuantConv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2,
                                   **q)
        if batchnorm:
            layers[name.replace("conv", "bn")] = nn.BatchNorm1d(c_out)

    layers = OrderedDict()
    layers["input"] = QuantInput(8, signed=True, scale=1 / 64)
    for index, (c_in, c_out, kernel, stride) in enumerate(
            ((1, c1, 7, 1), (c1, c2, 5, 2), (c2, c3, 5, 1)), start=1):
        conv(f"conv{index}", layers, c_in, c_out, kernel, stride)
        layers[f"act{index}"] = Requantizer(a_bits, power_of_two=power_of_two)
    layers["head"] = QuantConv1d(c3, 3, 1, shared_scale=True, **q)
    model = QuantSequential(layers)
    model.low_bits = model.high_bits = int(weight_bits)
    return model
