"""Stand-in designs for the sim tests and engines' Verilog, converted once per session."""

import numpy as np
import pytest
from amaranth import Shape

from .designs import AddConstant, Stuck, write_design


@pytest.fixture(scope="session")
def make_design(tmp_path_factory):
    """``make_design(frame_shape, elements, in_element, out_element=None, **kwargs)``.

    Builds an :class:`AddConstant` (or :class:`Stuck` with ``stuck=True``) whose frames have
    ``frame_shape`` at the input; ``out_frame_shape`` (default: the same) only changes the
    metadata, as for a flatten. Returns ``(component, metadata)``; identical requests share
    one conversion.
    """
    cache = {}
    root = tmp_path_factory.mktemp("designs")

    def make(frame_shape, elements, in_element, out_element=None, *, out_frame_shape=None,
             addend=0, depth=2, interval=1, fault=None, stuck=False):
        out_element = in_element if out_element is None else out_element
        out_frame_shape = frame_shape if out_frame_shape is None else out_frame_shape
        key = (tuple(frame_shape), elements, repr(Shape.cast(in_element)),
               repr(Shape.cast(out_element)), tuple(out_frame_shape), addend, depth, interval,
               fault, stuck)
        if key not in cache:
            if stuck:
                component = Stuck(elements=elements, shape=in_element)
            else:
                component = AddConstant(elements=elements, in_shape=in_element,
                                        out_shape=out_element, addend=addend, depth=depth,
                                        interval=interval, fault=fault)
            beats = int(np.prod(frame_shape)) // elements
            meta = write_design(component, root / f"design{len(cache)}", in_shape=frame_shape,
                                out_shape=out_frame_shape, elements_per_beat=elements,
                                in_element=in_element, out_element=out_element,
                                cycles_per_frame=beats * interval, latency=depth)
            cache[key] = (component, meta)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def engine_verilog(tmp_path_factory):
    """``engine_verilog(config)``: the ``top.v`` of the engine built as ``config``, generated
    when first asked for (the Verilog does not depend on the network), in a folder of its own
    that the engine's runs share with their builds."""
    from hwgen.engine.core import Engine
    from hwgen.verilog import to_verilog

    root, made = tmp_path_factory.mktemp("engines"), {}

    def verilog(config):
        if config not in made:
            path = root / f"engine{len(made)}" / "top.v"
            path.parent.mkdir()
            path.write_text(to_verilog(Engine(config)))
            made[config] = path
        return made[config]
    return verilog
