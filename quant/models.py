"""Ready-made quantization-aware models (PyTorch; import ``quant.models`` explicitly)."""

from collections import OrderedDict
import numbers

from .nn import QuantInput, QuantLinear, QuantSequential, Requantizer

__all__ = ["mnist_mlp"]


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
    if hidden is None or any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
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
