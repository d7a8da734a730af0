"""What the dataflow hardware builds: one check used by ``generate``, ``compile``,
``estimate`` and ``inspect`` alike, so none of them accepts a model another refuses.

The IR is general; the hardware supports, per spatial axis:

- convolutions: kernel 1..7, stride 1 or 2, padding 0 or ``kernel // 2`` for an odd kernel
  ("same"), groups 1 or depthwise with ``out_channels == in_channels``;
- max and average pools: kernel 1..7, stride 1..kernel (windows without gaps); a max pool's
  padding as the IR allows it (at most ``kernel // 2``);
- dense layers, global pools, requantizers, flattens and residual adds anywhere the IR
  allows them, on values of any width (activations too wide for a multiplier port are
  multiplied on the other port, or in LUTs).
"""

from .errors import UnsupportedLayerError
from .ops import op_views

__all__ = ["KERNEL_RANGE", "CONV_STRIDES", "hardware_problems", "check_hardware_support"]

KERNEL_RANGE = (1, 7)
CONV_STRIDES = (1, 2)


def _fmt(sizes):
    return "x".join(str(int(s)) for s in sizes)


def _kernel_problems(view, what):
    lo, hi = KERNEL_RANGE
    kernel = _axes(view, view.geometry.kernel)
    if any(not lo <= k <= hi for k in kernel):
        return [f"layer '{view.name}': {what}kernel {_fmt(kernel)} is not supported by the "
                f"hardware; kernels must be {lo}..{hi} per axis"]
    return []


def _axes(view, pair):
    """A ``(y, x)`` pair as the node's own axes (one for a 1-D map)."""
    return pair if len(view.in_shape) == 3 else pair[1:]


def _conv_problems(view):
    problems = _kernel_problems(view, "")
    g = view.geometry
    stride, padding, kernel = _axes(view, g.stride), _axes(view, g.padding), _axes(view, g.kernel)
    if any(s not in CONV_STRIDES for s in stride):
        problems.append(f"layer '{view.name}': stride {_fmt(stride)} is not supported by the "
                        f"hardware; strides must be {' or '.join(map(str, CONV_STRIDES))}")
    if any(p != 0 and (k % 2 == 0 or p != k // 2) for k, p in zip(kernel, padding)):
        problems.append(f"layer '{view.name}': padding {_fmt(padding)} with kernel "
                        f"{_fmt(kernel)} is not supported by the hardware; padding must be 0, "
                        f"or kernel // 2 for an odd kernel ('same')")
    if view.depthwise and view.out_channels != view.in_count:
        problems.append(f"layer '{view.name}': a depthwise convolution with "
                        f"{view.out_channels} filters on {view.in_count} channels is not "
                        f"supported by the hardware; out_channels must equal in_channels")
    return problems


def _pool_problems(view):
    problems = _kernel_problems(view, "pool ")
    g = view.geometry
    stride, kernel = _axes(view, g.stride), _axes(view, g.kernel)
    if any(s > k for k, s in zip(kernel, stride)):
        problems.append(f"layer '{view.name}': pool stride {_fmt(stride)} with kernel "
                        f"{_fmt(kernel)} is not supported by the hardware; the stride must not "
                        f"exceed the kernel")
    return problems


_RULES = {"conv": _conv_problems, "depthwise": _conv_problems, "maxpool": _pool_problems,
          "avgpool": _pool_problems}


def hardware_problems(graph):
    """What the hardware cannot build in a valid ``graph``, one message per problem (an empty
    list when everything is supported). Raises :class:`~quant.GraphError` for an invalid
    graph."""
    graph.validate()
    views = op_views(graph)
    problems = [p for view in views.values() for p in _RULES.get(view.kind, lambda v: [])(view)]
    if not any(view.has_weights for view in views.values()):
        problems.append("the model has no dense or convolution layer; there is nothing to "
                        "accelerate")
    return problems


def check_hardware_support(graph):
    """Raise one :class:`UnsupportedLayerError` listing everything the hardware cannot
    build (see :func:`hardware_problems`)."""
    problems = hardware_problems(graph)
    if problems:
        raise UnsupportedLayerError(problems)
