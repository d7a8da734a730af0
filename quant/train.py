"""Training and evaluation helpers for quantization-aware models, and the recipes: the MNIST
MLP (:func:`train_mnist_mlp`), the MNIST CNN and ResNet (:func:`train_mnist_cnn`,
:func:`train_resnet_mnist`, both through :func:`train_film_qnn`) and the peak detector
(:func:`train_peaks`).

Inputs may be given as integers (raw uint8 pixels, int8 signal samples): they are multiplied by
the model's input scale (its ``QuantInput`` scale, 1/255 by default), so the ``QuantInput``
recovers exactly the raw integer. Float inputs are used as given.

Measured on one core of this machine kind (1,000 test digits / signals, seed 0): MNIST CNN
golden accuracy 0.978 (float 0.980) in 35-80 s; ResNet 0.980 (float 0.979) in 45-80 s; peak
detector golden F1 0.983 against 0.970 for the tuned centroid detector and 0.932 for tuned
``find_peaks``, in 40-130 s (the spread is the load of the machine); with 3-bit weights 0.986,
with ternary weights 0.979 (``benchmarks/peaks_quality.json``).
"""

import copy
import numbers
import sys
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import golden, peaks
from .datasets import mnist
from .export import export
from .models import mnist_cnn, mnist_mlp, peaks_cnn, resnet_mnist
from .numerics import is_int
from .peaks import SIGNAL_LENGTH, decode, detection_scores, tune_threshold
from .nn import (FILTER_LAYERS, Add, QuantConv1d, QuantConv2d, QuantInput, QuantLinear,
                 Requantizer, Residual, fold_batchnorms)
from .precision import apply_precision

__all__ = ["model_input_scale", "train", "accuracy", "golden_accuracy", "float_twin",
           "load_float_weights", "train_mnist_mlp", "random_shift", "auto_granularity",
           "train_film_qnn", "mnist_images", "train_mnist_cnn", "train_resnet_mnist",
           "peak_scores", "train_peaks", "PEAK_THRESHOLDS",
           "PEAK_QAT"]

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
          input_scale=None, desc="train", scale_lr_factor=10.0, loss=None, augment=None):
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
    loss : callable, optional
        ``loss(scores, labels)``; by default ``nn.CrossEntropyLoss()``, which also takes
        per-position scores ``(N, classes, L)`` with labels ``(N, L)``.
    augment : callable, optional
        ``augment(x_batch, generator)`` returns a transformed batch (e.g. random shifts),
        applied to every training batch; seeded by the same generator as the shuffling.
    """
    if not is_int(epochs) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, not {epochs!r}")
    if not is_int(batch_size) or batch_size < 1:
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
    loss_fn = nn.CrossEntropyLoss() if loss is None else loss
    history = []
    model.train()
    with tqdm(total=epochs * steps, desc=desc, file=sys.stderr, disable=not progress,
              leave=False) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                batch = x[idx] if augment is None else augment(x[idx], generator)
                value = loss_fn(model(batch), y[idx])
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                schedule.step()
                total += float(value.detach()) * len(idx)
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


_COPIED = (nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d,
           nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity)


def _twin(module, name):
    if isinstance(module, QuantLinear):
        twin = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    elif isinstance(module, (QuantConv2d, QuantConv1d)):
        kind = nn.Conv2d if isinstance(module, QuantConv2d) else nn.Conv1d
        twin = kind(module.in_channels, module.out_channels, module.kernel_size,
                    stride=module.stride, padding=module.padding, groups=module.groups,
                    bias=module.bias is not None)
    elif isinstance(module, Requantizer):
        return nn.Identity() if module.signed else nn.ReLU()
    elif isinstance(module, QuantInput):
        return nn.Identity()
    elif isinstance(module, Residual):
        shortcut = None if module.shortcut is None else _twin(module.shortcut,
                                                              f"{name}.shortcut")
        return Residual(_twin(module.body, f"{name}.body"), shortcut, add=Add())
    elif isinstance(module, nn.Sequential):
        twin = nn.Sequential()
        for child_name, child in module.named_children():
            twin.add_module(child_name, _twin(child, f"{name}.{child_name}" if name
                                              else child_name))
        return twin
    elif isinstance(module, _COPIED):
        return copy.deepcopy(module)
    else:
        raise TypeError(f"module '{name}' ({type(module).__name__}) has no float twin; "
                        f"expected QuantInput, QuantLinear, QuantConv2d, QuantConv1d, "
                        f"Requantizer, Residual, a pool, BatchNorm, Flatten or Sequential")
    with torch.no_grad():
        twin.weight.copy_(module.weight)
        if module.bias is not None:
            twin.bias.copy_(module.bias)
    return twin


def float_twin(model):
    """A float ``nn.Sequential`` of the same shape as a quantized one, with its weights.

    ``QuantInput`` becomes ``nn.Identity`` (feed it the same scaled inputs), ``QuantLinear``
    an ``nn.Linear`` and ``QuantConv2d`` / ``QuantConv1d`` an ``nn.Conv2d`` / ``nn.Conv1d``
    holding its float shadow weights, an unsigned ``Requantizer`` an ``nn.ReLU`` (a signed one
    ``nn.Identity``), a ``Residual`` a ``Residual`` of twins joined by a float
    :class:`~quant.nn.Add`; pools, batch normalization, ``Flatten`` and ``Identity`` are copied.
    Module names are kept, so :func:`load_float_weights` can copy trained weights back.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, not {type(model).__name__}")
    return _twin(model, "").to(_dtype(model))


def load_float_weights(model, twin):
    """Copy the weights of a :func:`float_twin` back into ``model``'s weight layers (and its
    batch normalization statistics), and re-derive the weight scales."""
    twins = dict(twin.named_modules())
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, FILTER_LAYERS):
                source = twins[name]
                module.weight.copy_(source.weight)
                if module.bias is not None:
                    module.bias.copy_(source.bias)
                module.reset_scale()
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.load_state_dict(twins[name].state_dict())


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


def random_shift(max_shift):
    """An ``augment`` for :func:`train`: shift each image by up to ``max_shift`` pixels in
    each direction (zeros enter at the edges), a different shift per image."""
    max_shift = int(max_shift)

    def augment(x, generator):
        if max_shift == 0:
            return x
        n = len(x)
        shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
        pad = torch.nn.functional.pad(x, (max_shift,) * 4)
        h, w = x.shape[-2:]
        out = torch.empty_like(x)
        for i in range(n):
            dy, dx = (int(v) for v in shifts[i])
            out[i] = pad[i, ..., max_shift + dy:max_shift + dy + h,
                         max_shift + dx:max_shift + dx + w]
        return out

    return augment


def auto_granularity(filters, high_fraction=0.05, multiple=4):
    """Granularity of a layer's high-precision count: ``multiple`` where the wanted count
    ``high_fraction * filters`` is at least half of it (so a multiple of ``multiple`` stays
    within a factor of about two of the fraction), else 1."""
    return multiple if high_fraction * filters >= multiple / 2 else 1


def _granularities(layers, granularity, high_fraction):
    if granularity is None:
        values = [auto_granularity(m.num_filters, high_fraction) for m in layers[:-1]] + [1]
    elif isinstance(granularity, numbers.Integral):
        values = [int(granularity)] * (len(layers) - 1) + [1]
    else:
        values = list(granularity)
    if len(values) != len(layers):
        raise ValueError(f"granularity must be None, an int or have one entry per weight layer "
                         f"({len(layers)}), not {len(values)} entries")
    return values


def train_film_qnn(model, data, input_shape, *, epochs, float_epochs, seed=0,
                   high_fraction=0.05, granularity=None, lr=2e-3, qat_lr=1e-3, batch_size=64,
                   progress=True, augment=None):
    """The FILM-QNN recipe for any classification model built from :mod:`quant.nn` layers.

    1. Train the :func:`float_twin` (ReLU, float weights, batch normalization in training
       mode) for ``float_epochs``; its test accuracy is ``"float"``.
    2. Copy its weights back, fold every batch normalization into the weight layer before it
       (:func:`quant.nn.fold_batchnorms`), and assign FILM-QNN precisions per weight layer
       (:func:`quant.precision.apply_precision`, ``model.low_bits`` / ``model.high_bits``).
    3. Fine-tune quantization-aware for ``epochs``, export, run the golden executor.

    Parameters
    ----------
    model : QuantSequential
        Built by :mod:`quant.models` (``low_bits`` and ``high_bits`` attributes).
    data : tuple
        ``(x_train, y_train, x_test, y_test)``; integer inputs of shape ``input_shape``.
    granularity : None, int or sequence of int
        Per weight layer, the high-precision count is a multiple of this. ``None``: multiples
        of 4 where 5% of a layer is at least 2 filters (:func:`auto_granularity`), else 1; an
        int: that value for every layer but the head (1); a sequence: one per weight layer.

    Returns
    -------
    model, accuracies
        The trained model (eval mode, no batch normalization left) and ``{"float",
        "fake_quant", "golden", "seconds"}``.
    """
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = data
    low_bits, high_bits = model.low_bits, model.high_bits
    scale = model_input_scale(model)
    _granularities([m for m in model.modules() if isinstance(m, FILTER_LAYERS)], granularity,
                   high_fraction)  # check before the long part

    twin = float_twin(model)
    train(twin, x_train, y_train, epochs=float_epochs, lr=lr, batch_size=batch_size, seed=seed,
          progress=progress, input_scale=scale, desc="float", augment=augment)
    acc_float = accuracy(twin, x_test, y_test, input_scale=scale)

    load_float_weights(model, twin)
    fold_batchnorms(model)
    layers = [m for m in model.modules() if isinstance(m, FILTER_LAYERS)]
    for layer, g in zip(layers, _granularities(layers, granularity, high_fraction)):
        apply_precision(layer, high_fraction, low_bits, high_bits, g)
    train(model, x_train, y_train, epochs=epochs, lr=qat_lr, batch_size=batch_size,
          seed=seed + 1, progress=progress, desc="QAT", augment=augment)
    acc_fake = accuracy(model, x_test, y_test)
    acc_golden = golden_accuracy(export(model, input_shape), x_test, y_test)
    return model, {"float": acc_float, "fake_quant": acc_fake, "golden": acc_golden,
                   "seconds": time.perf_counter() - started}


def _with_threads(num_threads, function, *args, **kwargs):
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return function(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


def mnist_images(split_seed=0):
    """:func:`quant.datasets.mnist` with the images shaped ``(N, 1, 28, 28)``."""
    x_train, y_train, x_test, y_test = mnist(split_seed)
    return x_train.reshape(-1, 1, 28, 28), y_train, x_test.reshape(-1, 1, 28, 28), y_test


def train_mnist_cnn(epochs=10, seed=0, high_fraction=0.05, granularity=None, progress=True, *,
                    float_epochs=20, channels=(8, 16), a_bits=5, low_bits=4, high_bits=8,
                    power_of_two=False, lr=5e-3, qat_lr=1e-3, batch_size=64, split_seed=0,
                    shift=1, num_threads=1):
    """Train :func:`quant.models.mnist_cnn` with the FILM-QNN recipe (:func:`train_film_qnn`).

    Images are ``(N, 1, 28, 28)`` uint8 (:func:`mnist_images`); every training batch is
    shifted by up to ``shift`` pixels (:func:`random_shift`). Other arguments as for
    :func:`train_mnist_mlp`. Returns ``(model, accuracies)``; export with
    ``quant.export.export(model, (1, 28, 28))``.
    """
    def build():
        return mnist_cnn(channels, a_bits, low_bits, high_bits, batchnorm=True,
                         power_of_two=power_of_two)
    return _train_on_images(build, epochs, seed, high_fraction, granularity, progress,
                            float_epochs, lr, qat_lr, batch_size, split_seed, shift, num_threads)


def train_resnet_mnist(epochs=10, seed=0, high_fraction=0.05, granularity=None, progress=True,
                       *, float_epochs=20, channels=(8, 16), a_bits=5, low_bits=4, high_bits=8,
                       head="flatten", power_of_two=False, lr=5e-3, qat_lr=1e-3, batch_size=64,
                       split_seed=0, shift=1, num_threads=1):
    """Train :func:`quant.models.resnet_mnist` with the FILM-QNN recipe (batch normalization
    in the float phase, folded before QAT). Arguments as for :func:`train_mnist_cnn`."""
    def build():
        return resnet_mnist(channels, a_bits, low_bits, high_bits, head=head,
                            power_of_two=power_of_two)
    return _train_on_images(build, epochs, seed, high_fraction, granularity, progress,
                            float_epochs, lr, qat_lr, batch_size, split_seed, shift, num_threads)


def _train_on_images(build, epochs, seed, high_fraction, granularity, progress, float_epochs,
                     lr, qat_lr, batch_size, split_seed, shift, num_threads):
    """:func:`train_film_qnn` on the MNIST images for the model ``build()`` makes."""
    def run():
        torch.manual_seed(seed)
        return train_film_qnn(build(), mnist_images(split_seed), (1, 28, 28), epochs=epochs,
                              float_epochs=float_epochs, seed=seed, high_fraction=high_fraction,
                              granularity=granularity, lr=lr, qat_lr=qat_lr,
                              batch_size=batch_size, progress=progress,
                              augment=random_shift(shift) if shift else None)
    return _with_threads(num_threads, run)


def peak_scores(model, x, *, input_scale=None, batch_size=1000):
    """The model's per-cell scores ``(N, 3, cells)`` (float64) for int8 signals ``x``
    (``(N, 256)``), scaled by ``input_scale`` (default: the model's QuantInput scale)."""
    x = _as_input(model, np.asarray(x)[:, None, :], input_scale)
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(x[i:i + batch_size]).double().numpy()
                               for i in range(0, len(x), batch_size)])


def _peak_f1(train_scores, train_peaks, test_scores, test_peaks, scale=1.0):
    """Tune the decoding threshold on training scores, then score the test set."""
    threshold, _ = tune_threshold(train_scores, train_peaks, PEAK_THRESHOLDS, scale=scale)
    result = detection_scores(decode(test_scores, threshold, scale=scale), test_peaks)
    result["threshold"] = threshold
    return result


#: Decoding thresholds searched on the training signals (margin of the peak score over the
#: no-peak score, in real units of the head's output).
PEAK_THRESHOLDS = tuple(np.round(np.arange(-2.0, 4.01, 0.25), 2))

#: The quantization-aware fine-tuning of :func:`train_peaks` per weight width: epochs and
#: learning rate. One recipe serves 2, 3 and 4 bits. It was chosen on validation signals of
#: another seed than the test signals, among 10 to 80 epochs at 1e-3 to 1e-2 (13 recipes at
#: 2 bits, 4 at 3, 3 at 4): the best F1 at every width (0.981, 0.985, 0.985). Ternary weights
#: gain the most from the long run: 0.961 with 20 epochs at 2e-3.
PEAK_QAT = {bits: {"epochs": 60, "lr": 5e-3} for bits in (2, 3, 4)}


def train_peaks(epochs=None, seed=0, progress=True, *, float_epochs=20, channels=(6, 12, 8),
                a_bits=4, weight_bits=4, power_of_two=False, lr=5e-3, qat_lr=None,
                batch_size=64, peak_weight=2.0, train_size=4000, test_size=1000,
                baselines=True, baseline_signals=2000, num_threads=1):
    """Train :func:`quant.models.peaks_cnn` on :func:`quant.peaks.dataset` and compare it
    with the classic detectors on the same test signals.

    1. Train the float twin (batch normalization) with cross-entropy over the cells of each
       signal (labels :func:`quant.peaks.encode`; peak classes weighted ``peak_weight``).
    2. Fold the batch normalizations, fine-tune quantization-aware for ``epochs`` at
       ``qat_lr`` (by default those of :data:`PEAK_QAT` for ``weight_bits``), export to a
       QGraph.
    3. For the float twin, the fake-quant model and the golden executor (raw integer scores
       times the head's output scale), tune the decoding threshold on the training signals and
       score the test signals (:func:`quant.peaks.detection_scores`, tolerance 3 samples).
    4. With ``baselines``, tune :class:`~quant.peaks.FindPeaksDetector` and
       :class:`~quant.peaks.CentroidDetector` on the first ``baseline_signals`` training
       signals and score them on the test signals.

    Returns
    -------
    model : QuantSequential
        The trained model; export with ``quant.export.export(model, (1, 256))``.
    results : dict
        ``"float"``, ``"fake_quant"``, ``"golden"`` (and ``"find_peaks"``, ``"centroid"``):
        each ``{"f1", "precision", "recall", "localization_error", "tp", "fp", "fn"}`` plus
        the tuned ``"threshold"`` or ``"params"``; ``"seconds"`` for the whole run.
    """
    recipe = PEAK_QAT.get(weight_bits, PEAK_QAT[4])
    epochs = recipe["epochs"] if epochs is None else epochs
    qat_lr = recipe["lr"] if qat_lr is None else qat_lr
    return _with_threads(num_threads, _train_peaks, epochs, seed, progress, float_epochs,
                         channels, a_bits, weight_bits, power_of_two, lr, qat_lr, batch_size,
                         peak_weight, train_size, test_size, baselines, baseline_signals)


def _train_peaks(epochs, seed, progress, float_epochs, channels, a_bits, weight_bits,
                 power_of_two, lr, qat_lr, batch_size, peak_weight, train_size, test_size,
                 baselines, baseline_signals):
    started = time.perf_counter()
    x_train, p_train, x_test, p_test = peaks.dataset(train_size, test_size)
    y_train = peaks.encode(p_train)
    torch.manual_seed(seed)
    model = peaks_cnn(channels, a_bits, weight_bits, power_of_two=power_of_two)
    weight = torch.tensor([1.0, peak_weight, peak_weight], dtype=_dtype(model))
    loss = nn.CrossEntropyLoss(weight=weight)
    signals = x_train[:, None, :]

    twin = float_twin(model)
    train(twin, signals, y_train, epochs=float_epochs, lr=lr, batch_size=batch_size, seed=seed,
          progress=progress, input_scale=peaks.INPUT_SCALE, desc="float", loss=loss)
    results = {}
    results["float"] = _peak_f1(
        peak_scores(twin, x_train, input_scale=peaks.INPUT_SCALE), p_train,
        peak_scores(twin, x_test, input_scale=peaks.INPUT_SCALE), p_test)

    load_float_weights(model, twin)
    fold_batchnorms(model)
    train(model, signals, y_train, epochs=epochs, lr=qat_lr, batch_size=batch_size,
          seed=seed + 1, progress=progress, desc="QAT", loss=loss)
    results["fake_quant"] = _peak_f1(peak_scores(model, x_train), p_train,
                                     peak_scores(model, x_test), p_test)
    graph = export(model, (1, SIGNAL_LENGTH))
    out_scale = graph.metadata["output_scale"][0]
    golden_train = golden.run(graph, x_train[:, None, :])[graph.output]
    golden_test = golden.run(graph, x_test[:, None, :])[graph.output]
    results["golden"] = _peak_f1(golden_train, p_train, golden_test, p_test, scale=out_scale)
    if baselines:
        for key, detector in (("find_peaks", peaks.FindPeaksDetector()),
                              ("centroid", peaks.CentroidDetector())):
            detector.fit(x_train[:baseline_signals], p_train[:baseline_signals])
            results[key] = detection_scores(detector.detect(x_test), p_test)
            results[key]["params"] = detector.params
    results["seconds"] = time.perf_counter() - started
    return model, results
