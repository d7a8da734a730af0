"""Training and evaluation helpers for quantization-aware models, and the MNIST MLP recipe.

Inputs may be given as integers (raw uint8 pixels): they are multiplied by the model's input
scale (its ``QuantInput`` scale, 1/255 by default), so the ``QuantInput`` recovers exactly the
raw pixel as its integer. Float inputs are used as given.
"""

import numbers
import sys
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import golden
from .datasets import mnist
from .export import export
from .models import mnist_mlp
from .nn import QuantInput, QuantLinear, Requantizer
from .precision import apply_precision

__all__ = ["model_input_scale", "train", "accuracy", "golden_accuracy", "float_twin",
           "load_float_weights", "train_mnist_mlp"]

DEFAULT_INPUT_SCALE = 1 / 255


def model_input_scale(model):
    """The scale of the model's ``QuantInput``, or ``None`` when it has none."""
    for module in model.modules():
        if isinstance(module, QuantInput):
            return float(module.scale)
    return None


def _dtype(model):
    for p in model.parameters():
        return p.dtype
    return torch.get_default_dtype()


def _as_input(model, x, input_scale):
    """A float tensor for ``model`` from integer pixels (scaled) or float values (as given)."""
    x = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
    dtype = _dtype(model)
    if x.is_floating_point():
        return x.to(dtype)
    if input_scale is None:
        input_scale = model_input_scale(model) or DEFAULT_INPUT_SCALE
    return x.to(dtype) * torch.tensor(input_scale, dtype=dtype)


def _as_labels(y):
    return (y if torch.is_tensor(y) else torch.as_tensor(np.asarray(y))).long()


def train(model, x, y, *, epochs=10, lr=1e-3, batch_size=64, seed=0, progress=True,
          input_scale=None, desc="train", scale_lr_factor=10.0):
    """Train ``model`` on ``(x, y)`` with Adam and cross-entropy; returns the loss per epoch.

    The learning rate decays along a cosine to zero over the run, which lets the quantized
    weights settle on their grid at the end. Shuffling uses its own generator seeded with
    ``seed``. The progress bar (tqdm) goes to stderr. The model is left in eval mode.

    Parameters
    ----------
    model : nn.Module
        Maps a batch ``(N, *input_shape)`` to class scores ``(N, classes)``.
    x : array_like or Tensor
        Integer inputs (scaled by ``input_scale``) or float inputs (used as given).
    y : array_like or Tensor
        Integer class labels.
    input_scale : float, optional
        Scale for integer inputs; by default the model's ``QuantInput`` scale, else 1/255.
    scale_lr_factor : float
        Scales (parameters named ``log2_scale``) learn this many times faster than weights:
        at the weights' rate a log2 scale would move too little in a short QAT run to find
        its range.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, not {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, not {lr!r}")
    x, y = _as_input(model, x, input_scale), _as_labels(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, not {len(x)} and {len(y)}")
    generator = torch.Generator().manual_seed(seed)
    steps = (len(x) + batch_size - 1) // batch_size
    scales = [p for n, p in model.named_parameters() if n.endswith("log2_scale")]
    others = [p for n, p in model.named_parameters() if not n.endswith("log2_scale")]
    groups = [{"params": others}]
    if scales:
        groups.append({"params": scales, "lr": lr * scale_lr_factor})
    optimizer = torch.optim.Adam(groups, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs * steps))
    loss_fn = nn.CrossEntropyLoss()
    history = []
    model.train()
    with tqdm(total=epochs * steps, desc=desc, file=sys.stderr, disable=not progress,
              leave=False) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                loss = loss_fn(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(idx)
                bar.update()
            history.append(total / len(x))
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    model.eval()
    return history


def accuracy(model, x, y, *, input_scale=None, batch_size=1000):
    """Fraction of inputs whose largest score is the label (the model runs in eval mode)."""
    x, y = _as_input(model, x, input_scale), _as_labels(y)
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            scores = model(x[start:start + batch_size])
            correct += int((scores.argmax(dim=1) == y[start:start + batch_size]).sum())
    return correct / max(1, len(x))


def golden_accuracy(graph, x, y):
    """Accuracy of a QGraph on integer inputs: argmax of its output through the golden."""
    out = golden.run(graph, np.asarray(x))[graph.output]
    return float(np.mean(out.argmax(axis=1) == np.asarray(y)))


def float_twin(model):
    """A float ``nn.Sequential`` of the same shape as a quantized one, with its weights.

    ``QuantInput`` becomes ``nn.Identity`` (feed it the same scaled inputs), ``QuantLinear``
    an ``nn.Linear`` holding its float shadow weights, an unsigned ``Requantizer`` an
    ``nn.ReLU`` (a signed one ``nn.Identity``). Module names are kept, so
    :func:`load_float_weights` can copy trained weights back.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, not {type(model).__name__}")
    twin = nn.Sequential()
    for name, module in model.named_children():
        if isinstance(module, QuantLinear):
            linear = nn.Linear(module.in_features, module.out_features,
                               bias=module.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(module.weight)
                if module.bias is not None:
                    linear.bias.copy_(module.bias)
            twin.add_module(name, linear)
        elif isinstance(module, Requantizer):
            twin.add_module(name, nn.Identity() if module.signed else nn.ReLU())
        elif isinstance(module, QuantInput):
            twin.add_module(name, nn.Identity())
        elif isinstance(module, nn.Sequential):
            twin.add_module(name, float_twin(module))
        else:
            raise TypeError(f"module '{name}' ({type(module).__name__}) has no float twin; "
                            f"expected QuantInput, QuantLinear, Requantizer or Sequential")
    return twin.to(_dtype(model))


def load_float_weights(model, twin):
    """Copy the weights of a :func:`float_twin` back into ``model``'s ``QuantLinear`` layers
    and re-derive their weight scales."""
    twins = dict(twin.named_modules())
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, QuantLinear):
                linear = twins[name]
                module.weight.copy_(linear.weight)
                if module.bias is not None:
                    module.bias.copy_(linear.bias)
                module.reset_scale()


def train_mnist_mlp(epochs=10, seed=0, high_fraction=0.05, granularity=1, progress=True, *,
                    float_epochs=20, hidden=(128, 64), a_bits=5, low_bits=4, high_bits=8,
                    power_of_two=False, lr=2e-3, qat_lr=1e-3, batch_size=64, split_seed=0,
                    num_threads=1):
    """Train the FILM-QNN MNIST MLP: float training, precision assignment, then QAT.

    1. Train a float twin (``nn.Linear`` + ``nn.ReLU``, same shape and initial weights) for
       ``float_epochs``; its test accuracy is the reported ``"float"`` accuracy: a float model
       of the same architecture, trained on the same data from the same initial weights.
    2. Copy its weights into the quantized model and assign FILM-QNN precisions per layer
       (:func:`quant.precision.apply_precision`): ``high_fraction`` of the filters get
       ``high_bits``, the rest ``low_bits``.
    3. Fine-tune quantization-aware for ``epochs`` (weights, biases, weight and Requantizer
       scales). The quantized model thus sees ``float_epochs + epochs`` epochs in all.

    Parameters
    ----------
    epochs, float_epochs : int
        QAT epochs and float epochs before them.
    seed : int
        Seeds the initial weights and the shuffling (the data split has its own
        ``split_seed``, see :func:`quant.datasets.mnist`).
    high_fraction, low_bits, high_bits : float, int, int
        FILM-QNN precision: the fraction of each layer's filters at ``high_bits``.
    granularity : int or sequence of int
        The high-precision count of a layer is a multiple of this. An int applies to the hidden
        layers, and the 10-filter head uses 1 (with the default 5% that is one 8-bit filter:
        0.5 rounds up, and a non-zero fraction always gives at least one multiple). A sequence
        gives one value per ``QuantLinear``, head included.
    progress : bool
        Show tqdm progress bars on stderr.
    hidden, a_bits : tuple of int, int
        Hidden widths and activation bits (see :func:`quant.models.mnist_mlp`).
    power_of_two : bool
        Power-of-two scales everywhere (see :func:`quant.models.mnist_mlp`): shift-only
        Requantizers, and the golden equals the fake-quant model bit for bit.
    lr, qat_lr, batch_size : float, float, int
        Adam learning rates of the float and QAT phases (cosine decay), and the batch size.
    num_threads : int or None
        torch threads during the run (restored afterwards); ``None`` leaves them alone. The
        matrices are small, so one thread is about as fast as two, and it does not suffer the
        many-fold slowdown of spinning threads when other processes share the cores.

    Returns
    -------
    model : QuantSequential
        The trained quantized model (eval mode); export it with ``quant.export.export(model,
        (784,))``.
    accuracies : dict
        Test accuracies (1,000 digits): ``"float"`` (the float twin), ``"fake_quant"`` (the
        quantized model in PyTorch), ``"golden"`` (the exported QGraph through the golden
        executor, argmax of the raw accumulators), plus ``"seconds"`` for the whole run.
    """
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _train_mnist_mlp(epochs, seed, high_fraction, granularity, progress, float_epochs,
                                hidden, a_bits, low_bits, high_bits, power_of_two, lr, qat_lr,
                                batch_size, split_seed)
    finally:
        torch.set_num_threads(threads)


def _train_mnist_mlp(epochs, seed, high_fraction, granularity, progress, float_epochs, hidden,
                     a_bits, low_bits, high_bits, power_of_two, lr, qat_lr, batch_size,
                     split_seed):
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = mnist(split_seed)
    torch.manual_seed(seed)
    model = mnist_mlp(hidden, a_bits, low_bits, high_bits, power_of_two=power_of_two)
    linears = [m for m in model.modules() if isinstance(m, QuantLinear)]
    if isinstance(granularity, numbers.Integral):
        granularity = [granularity] * (len(linears) - 1) + [1]
    granularity = list(granularity)
    if len(granularity) != len(linears):
        raise ValueError(f"granularity must be an int or have one entry per QuantLinear "
                         f"({len(linears)}), not {len(granularity)} entries")
    scale = model_input_scale(model)

    twin = float_twin(model)
    train(twin, x_train, y_train, epochs=float_epochs, lr=lr, batch_size=batch_size, seed=seed,
          progress=progress, input_scale=scale, desc="float")
    acc_float = accuracy(twin, x_test, y_test, input_scale=scale)

    load_float_weights(model, twin)
    for layer, g in zip(linears, granularity):
        apply_precision(layer, high_fraction, low_bits, high_bits, g)
    train(model, x_train, y_train, epochs=epochs, lr=qat_lr, batch_size=batch_size,
          seed=seed + 1, progress=progress, desc="QAT")
    acc_fake = accuracy(model, x_test, y_test)
    acc_golden = golden_accuracy(export(model, (784,)), x_test, y_test)
    return model, {"float": acc_float, "fake_quant": acc_fake, "golden": acc_golden,
                   "seconds": time.perf_counter() - started}
