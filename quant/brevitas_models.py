"""Brevitas networks for the MNIST digits, trained briefly and exported to QONNX.

What a Brevitas user would write, so that the QONNX import (:mod:`quant.qonnx`) is tried on
real exports: an MLP and a small CNN with a residual add. ``scaling="power_of_two"`` uses
Brevitas's fixed-point quantizers (power-of-two scales, per-channel weight scales) and
``Int32Bias``, for which the integer model equals the QONNX model exactly;
``scaling="float"`` keeps Brevitas's defaults (learned float scales, per-tensor weight
scales, float biases).

Needs ``brevitas`` (``pip install '.[onnx]' torch==2.13.0``); inputs are pixels / 255.
"""

import numpy as np
import torch
from torch import nn

__all__ = ["mlp", "cnn", "train", "predict", "export", "as_model_inputs"]


def _quantizers(scaling):
    from brevitas.quant.fixed_point import (Int8ActPerTensorFixedPoint,
                                            Int8WeightPerChannelFixedPoint,
                                            Uint8ActPerTensorFixedPoint)
    from brevitas.quant.scaled_int import (Int8ActPerTensorFloat, Int8WeightPerTensorFloat,
                                           Int32Bias, Uint8ActPerTensorFloat)
    if scaling == "power_of_two":
        return dict(weight=Int8WeightPerChannelFixedPoint, bias=Int32Bias,
                    unsigned=Uint8ActPerTensorFixedPoint, signed=Int8ActPerTensorFixedPoint)
    if scaling == "float":
        return dict(weight=Int8WeightPerTensorFloat, bias=None,
                    unsigned=Uint8ActPerTensorFloat, signed=Int8ActPerTensorFloat)
    raise ValueError(f"scaling must be 'power_of_two' or 'float', not {scaling!r}")


class _MLP(nn.Module):
    def __init__(self, sizes, w_bits, a_bits, scaling):
        import brevitas.nn as qnn
        super().__init__()
        q = _quantizers(scaling)
        self.inp = qnn.QuantIdentity(act_quant=q["unsigned"], bit_width=8,
                                     return_quant_tensor=True)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(qnn.QuantLinear(fan_in, fan_out, bias=True, weight_quant=q["weight"],
                                          weight_bit_width=w_bits, bias_quant=q["bias"],
                                          return_quant_tensor=False))
            if i < len(sizes) - 2:
                layers.append(qnn.QuantReLU(act_quant=q["unsigned"], bit_width=a_bits,
                                            return_quant_tensor=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(self.inp(x.flatten(1)))


class _CNN(nn.Module):
    """conv 5x5 -> pool 2 -> residual block (3x3 conv, both operands on one shared
    quantizer) -> pool 3 -> conv 3x3 -> global average (16 pixels) -> dense."""

    def __init__(self, channels, w_bits, a_bits, scaling):
        import brevitas.nn as qnn
        super().__init__()
        q = _quantizers(scaling)
        c1, c2 = channels

        def conv(c_in, c_out, k, padding=0):
            return qnn.QuantConv2d(c_in, c_out, k, padding=padding, bias=True,
                                   weight_quant=q["weight"], weight_bit_width=w_bits,
                                   bias_quant=q["bias"], return_quant_tensor=False)

        def relu():
            return qnn.QuantReLU(act_quant=q["unsigned"], bit_width=a_bits,
                                 return_quant_tensor=True)

        self.inp = qnn.QuantIdentity(act_quant=q["unsigned"], bit_width=8,
                                     return_quant_tensor=True)
        self.conv1, self.relu1 = conv(1, c1, 5), relu()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2, self.relu2 = conv(c1, c1, 3, padding=1), relu()
        self.join = qnn.QuantIdentity(act_quant=q["signed"], bit_width=8,
                                      return_quant_tensor=True)
        self.relu3 = relu()
        self.pool2 = nn.MaxPool2d(3)
        self.conv3, self.relu4 = conv(c1, c2, 3, padding=1), relu()
        self.gap = nn.AvgPool2d(4)
        self.gap_quant = qnn.QuantIdentity(act_quant=q["unsigned"], bit_width=8,
                                           return_quant_tensor=True)
        self.fc = qnn.QuantLinear(c2, 10, bias=True, weight_quant=q["weight"],
                                  weight_bit_width=w_bits, bias_quant=q["bias"])

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(self.inp(x))))
        body = self.relu2(self.conv2(x))
        x = self.relu3(self.join(x) + self.join(body))
        x = self.relu4(self.conv3(self.pool2(x)))
        x = self.gap_quant(self.gap(x))
        return self.fc(x.flatten(1))


def mlp(sizes=(784, 64, 32, 10), w_bits=4, a_bits=5, scaling="power_of_two"):
    """A Brevitas MLP: 8-bit input quantizer, QuantLinear and QuantReLU layers."""
    return _MLP(sizes, w_bits, a_bits, scaling)


def cnn(channels=(8, 16), w_bits=4, a_bits=5, scaling="power_of_two"):
    """A small Brevitas CNN with a residual add (see :class:`_CNN`) for 1x28x28 digits."""
    return _CNN(channels, w_bits, a_bits, scaling)


def as_model_inputs(pixels, image=False):
    """uint8 MNIST pixels ``(N, 784)`` as model inputs: floats ``pixels / 255`` (shaped
    ``(N, 1, 28, 28)`` for a CNN)."""
    x = np.asarray(pixels, dtype=np.float32) / 255.0
    return x.reshape(-1, 1, 28, 28) if image else x.reshape(len(x), -1)


def train(model, x, y, epochs=2, seed=0, lr=2e-3, batch_size=64):
    """Adam on cross-entropy over ``epochs`` passes of ``(x, y)`` (float inputs, labels)."""
    torch.manual_seed(seed)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def predict(model, x, batch_size=500):
    """The model's float outputs (logits) for float inputs ``x``."""
    model.eval()
    x = torch.as_tensor(x)
    return np.concatenate([np.asarray(model(x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


def export(model, path, example):
    """Export ``model`` to a QONNX file with Brevitas (one example input fixes the shape)."""
    import warnings
    from brevitas.export import export_qonnx
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.as_tensor(example[:1]), str(path))
    return path
