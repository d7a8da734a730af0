"""Host driver for the layer-sequential engine on a PYNQ board (PYNQ-Z2, ZCU102).

The overlay is what :func:`boards.build` writes for ``arch="engine"`` on a Zynq board: the
engine (cell ``accel``) reads its program, weights and input from PS DDR through a
high-performance port and writes every layer's output back there; its AXI4-Lite registers
(``design.json``'s ``registers``, :mod:`hwgen.engine.control`) take the image's address and
the start, and report status, layers and cycles.

The DRAM image is ``program.bin`` (descriptors, parameters, weights, room for every tensor;
every address in it an offset from its start). Per frame the driver writes the input tensor
into the image, points ``PROGRAM`` at the image's physical address, starts the engine, waits
for ``STATUS`` done and reads the output tensor. An engine of several AXI4 ports
(``design["engine"]["ports"]``) reads the image as planes, one per port
(:class:`~hwgen.engine.layout.ImagePlanes`): the driver allocates the planes in one buffer,
points ``PLANE`` at the distance between them and reads and writes tensors through them.
Tensors are packed as
:class:`~hwgen.engine.layout.TensorLayout` stores them, the code the compiler and the
simulator use (the build puts ``layout.py``, NumPy only, beside this file); ``pynq`` is
imported when an :class:`EngineOverlay` is opened.

On the board::

    from hwgen_engine import EngineOverlay
    engine = EngineOverlay("hwgen.bit")    # design.json and program.bin beside the bitstream
    y = engine.run(x)                      # x: (N, *input shape) integers
    print(engine.counters())
"""

import json
import time
from pathlib import Path

import numpy as np

try:  # on the board: the copy of hwgen/engine/layout.py the build put beside this file
    from layout import PLANE_ALIGN, ImagePlanes, TensorLayout
except ImportError:  # in the project
    from hwgen.engine.layout import PLANE_ALIGN, ImagePlanes, TensorLayout

__all__ = ["load_design", "image_planes", "tensor_layout", "write_input", "read_tensor",
           "read_output", "EngineOverlay", "EngineError"]

#: Alignment of the image's base (the ``PROGRAM`` register's rule) with one port; with
#: several, ``PLANE_ALIGN``.
IMAGE_ALIGN = 64


class EngineError(RuntimeError):
    """The engine reported an error, or did not finish in time."""


def load_design(design):
    """The design description: a dict, or the path of ``design.json``."""
    if isinstance(design, dict):
        return design
    return json.loads(Path(design).read_text())


def tensor_layout(design, value):
    """``(address in the image, TensorLayout)`` of graph value ``value`` (``"input"``, the
    output's name, or any layer's)."""
    entry = load_design(design)["tensors"][value]
    return int(entry["address"]), TensorLayout.from_metadata(entry)


def image_planes(design):
    """How the design's engine lays its DRAM image out in the buffer (one plane per port)."""
    design = load_design(design)
    engine = design["engine"]
    return ImagePlanes(int(engine.get("ports", 1)), int(engine["data_bits"]) // 8,
                       int(design["image_bytes"]))


def write_input(buffer, design, x):
    """Pack input ``x`` into the image in ``buffer`` (a writable byte buffer: a bytearray or a
    uint8 array, the image in planes) where the program reads it."""
    address, layout = tensor_layout(design, "input")
    image_planes(design).write(_bytes_view(buffer), address, layout.pack(x))


def read_tensor(buffer, design, value):
    """The tensor of graph value ``value`` as it lies in the image in ``buffer``."""
    address, layout = tensor_layout(design, value)
    return layout.unpack(image_planes(design).read(_bytes_view(buffer), address,
                                                   layout.nbytes))


def read_output(buffer, design):
    """The program's output tensor as it lies in the image in ``buffer``."""
    return read_tensor(buffer, design, load_design(design)["output"])


def _bytes_view(buffer):
    return np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, bytearray) else \
        np.asarray(buffer).reshape(-1)


class EngineOverlay:
    """The engine overlay on a PYNQ board, with the DRAM image in a buffer of PS DDR.

    Parameters
    ----------
    bitfile : path
        The bitstream; its ``.hwh`` must sit beside it with the same name.
    design : dict or path, optional
        The design description; by default ``design.json`` beside the bitstream.
    image : bytes or path, optional
        The DRAM image; by default the design's ``image`` (``program.bin``) beside it.
    cell : str
        Block-design cell name of the engine.
    timeout : float
        Seconds a frame may take before :class:`EngineError`.
    pynq : module, optional
        The ``pynq`` package (imported when not given).
    """

    def __init__(self, bitfile, design=None, image=None, *, cell="accel", timeout=10.0,
                 pynq=None):
        if pynq is None:
            import pynq
        self._pynq = pynq
        bitfile = Path(bitfile)
        self.design = load_design(design if design is not None
                                  else bitfile.with_name("design.json"))
        if image is None:
            image = bitfile.with_name(self.design.get("image", "program.bin"))
        image = bytes(image) if isinstance(image, (bytes, bytearray)) else \
            Path(image).read_bytes()
        if len(image) != self.design["image_bytes"]:
            raise ValueError(f"the image holds {len(image)} bytes; design.json says "
                             f"{self.design['image_bytes']}")
        self.timeout = float(timeout)
        self.overlay = pynq.Overlay(str(bitfile))
        self.regs = getattr(self.overlay, cell)
        found = self.read("ID")
        if found != self.design["magic"]:
            raise RuntimeError(f"cell '{cell}' is not an hwgen engine: ID register is "
                               f"{found:#010x}, expected {self.design['magic']:#010x}")
        found = self.read("CONFIG")
        if found != self.design["config_word"]:
            raise RuntimeError(f"the bitstream's engine has CONFIG {found:#010x}; the program "
                               f"was compiled for {self.design['config_word']:#010x} (tm, tn, "
                               f"bus bytes, ports): load the matching files")
        self.planes = image_planes(self.design)
        self.buffer = pynq.allocate(shape=(self.planes.nbytes,), dtype=np.uint8)
        address = int(self.buffer.physical_address)
        reach = 1 << int(self.design["engine"]["addr_bits"])
        align = IMAGE_ALIGN if self.planes.ports == 1 else PLANE_ALIGN
        if address % align or address + self.planes.nbytes > reach:
            self.buffer.freebuffer()
            raise RuntimeError(f"the image buffer at {address:#x} ({self.planes.nbytes} bytes) "
                               f"is not {align}-byte aligned inside the engine's "
                               f"{reach:#x}-byte address space")
        self.buffer[:] = np.frombuffer(self.planes.planes(image), dtype=np.uint8)
        self.buffer.flush()

    def read(self, name):
        """Read the register ``name`` (see ``design["registers"]``)."""
        return int(self.regs.read(self.design["registers"][name]))

    def write(self, name, value):
        self.regs.write(self.design["registers"][name], int(value))

    def counters(self):
        """``STATUS``, ``LAYERS``, ``CYCLES`` (64 bits: the last run's) and ``ERROR``."""
        return {"STATUS": self.read("STATUS"), "LAYERS": self.read("LAYERS"),
                "CYCLES": self.read("CYCLES_LO") | (self.read("CYCLES_HI") << 32),
                "ERROR": self.read("ERROR")}

    def run_frame(self, x):
        """Run the program on one input; return the output tensor."""
        write_input(self.buffer, self.design, x)
        self.buffer.flush()
        address = int(self.buffer.physical_address)
        self.write("PROGRAM_LO", address & 0xFFFF_FFFF)
        self.write("PROGRAM_HI", address >> 32)
        if self.planes.ports > 1:
            self.write("PLANE", self.planes.plane_bytes)
        self.write("CTRL", 1)
        bits = self.design["status_bits"]
        done, busy, error = 1 << bits["done"], 1 << bits["busy"], 1 << bits["error"]
        deadline = time.monotonic() + self.timeout
        # A start sets busy and clears done in the cycle it is written; done then marks this
        # run's end.
        while True:
            status = self.read("STATUS")
            if status & done and not status & busy:
                break
            if time.monotonic() > deadline:
                raise EngineError(f"the engine did not finish within {self.timeout:g} s "
                                  f"(STATUS {status:#05b}, {self.read('LAYERS')} layers done)")
        if status & error:
            code = self.read("ERROR")
            meaning = self.design.get("errors", {}).get(str(code), "unknown")
            raise EngineError(f"the engine stopped with an error: ERROR {code} ({meaning}) "
                              f"after {self.read('LAYERS')} layers")
        layers = self.read("LAYERS")
        if layers != len(self.design["layers"]):
            raise EngineError(f"the engine ran {layers} layers; the program has "
                              f"{len(self.design['layers'])}")
        self.buffer.invalidate()
        return read_output(self.buffer, self.design)

    def run(self, frames):
        """Run the program on each of ``(N, *input shape)`` frames; return the outputs
        ``(N, *output shape)``."""
        frames = np.asarray(frames)
        shape = tuple(self.design["tensors"]["input"]["shape"])
        if frames.ndim < 1 or frames.shape[1:] != shape:
            raise ValueError(f"frames must have shape (N, {', '.join(map(str, shape))}), not "
                             f"{frames.shape}")
        out_shape = tuple(self.design["tensors"][self.design["output"]]["shape"])
        outputs = [self.run_frame(x) for x in frames]
        return np.stack(outputs) if outputs else np.zeros((0, *out_shape), dtype=np.int64)

    def close(self):
        """Free the image buffer."""
        self.buffer.freebuffer()
