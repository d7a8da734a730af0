"""Host driver for an accelerator overlay on a PYNQ board (PYNQ-Z2, ZCU102).

The overlay is what :func:`boards.build` writes for a Zynq board: an AXI DMA (cell ``dma``)
streams frames from DDR into the accelerator (cell ``accel``) and its results back, and the
accelerator's AXI4-Lite registers count frames and cycles. ``design.json`` (written beside
the bitstream) says how frames are packed.

Packing is the hardware contract of :mod:`sim.stream` (element 0 in the low bits of a beat,
two's complement, C order), reused here through :func:`sim.stream.pack_frames` and
:func:`sim.stream.unpack_frames`; each beat occupies ``tdata_bits / 8`` bytes of memory,
little endian, as the DMA moves them. The packing functions need only NumPy; ``pynq`` is
imported when an :class:`Overlay` is opened.

On the board::

    import numpy as np
    from hwgen_pynq import Overlay
    accel = Overlay("hwgen.bit")           # design.json is read from beside the bitstream
    y = accel.run(x)                       # x: (N, *input shape) integers
    print(accel.counters())
"""

import json
from pathlib import Path

import numpy as np

try:
    from sim.stream import pack_frames, unpack_frames
except ImportError as e:  # pragma: no cover - only without the bundled copy
    raise ImportError("the driver needs sim/stream.py from the project (bundled beside it in "
                      "the build's driver/ folder)") from e

__all__ = ["load_design", "input_nbytes", "output_nbytes", "pack_input", "unpack_output",
           "Overlay"]

#: Bytes one DMA transfer can move (the DMA's length register is 26 bits wide).
DEFAULT_DMA_MAX_BYTES = (1 << 26) - 1


def load_design(design):
    """The design description: a dict, or the path of ``design.json``."""
    if isinstance(design, dict):
        return design
    return json.loads(Path(design).read_text())


def _stream(design, which):
    spec = load_design(design)[which]
    return spec, spec["tdata_bits"] // 8


def _beats(words, nbytes):
    """Payload words -> bytes, ``nbytes`` per beat, little endian."""
    out = np.zeros((len(words), nbytes), dtype=np.uint8)
    for i, word in enumerate(words):
        out[i] = np.frombuffer(int(word).to_bytes(nbytes, "little"), dtype=np.uint8)
    return out.reshape(-1)


def input_nbytes(frames, design):
    """Bytes of ``frames`` input frames in memory."""
    spec, nbytes = _stream(design, "input")
    return int(frames) * spec["beats_per_frame"] * nbytes


def output_nbytes(frames, design):
    """Bytes of ``frames`` output frames in memory."""
    spec, nbytes = _stream(design, "output")
    return int(frames) * spec["beats_per_frame"] * nbytes


def pack_input(frames, design):
    """Pack ``(N, *input shape)`` integers into the bytes the DMA streams to the accelerator.

    Raises
    ------
    ValueError
        When the frames have the wrong shape or values outside the input range.
    """
    spec, nbytes = _stream(design, "input")
    frames = np.asarray(frames)
    shape = tuple(spec["shape"])
    if frames.shape[1:] != shape:
        raise ValueError(f"frames must have shape (N, {', '.join(map(str, shape))}), not "
                         f"{frames.shape}")
    if not np.issubdtype(frames.dtype, np.integer):
        raise ValueError(f"frames must be integers, not {frames.dtype}")
    bits, is_signed = spec["bits"], spec["signed"]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    if frames.size and (frames.min() < lo or frames.max() > hi):
        kind = "signed" if is_signed else "unsigned"
        raise ValueError(f"frames must lie in the {bits}-bit {kind} input range {lo}..{hi}")
    words = pack_frames(frames, bits=bits, elements_per_beat=spec["elements_per_beat"])
    return _beats(words, nbytes)


def unpack_output(data, design, frames=None):
    """Unpack the bytes the DMA wrote into ``(N, *output shape)`` int64 outputs.

    ``frames`` (optional) checks that exactly that many frames are present.
    """
    spec, nbytes = _stream(design, "output")
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    if len(data) % nbytes:
        raise ValueError(f"{len(data)} bytes are not a whole number of {nbytes}-byte beats")
    beat_mask = (1 << spec["beat_bits"]) - 1
    words = [int.from_bytes(data[i:i + nbytes].tobytes(), "little") & beat_mask
             for i in range(0, len(data), nbytes)]
    out = unpack_frames(words, bits=spec["bits"], elements_per_beat=spec["elements_per_beat"],
                        signed=spec["signed"], shape=spec["shape"])
    if frames is not None and len(out) != frames:
        raise ValueError(f"expected {frames} output frames, got {len(out)}")
    return out


class Overlay:
    """The accelerator overlay on a PYNQ board.

    Parameters
    ----------
    bitfile : path
        The bitstream; its ``.hwh`` must sit beside it with the same name.
    design : dict or path, optional
        The design description; by default ``design.json`` beside the bitstream.
    accel, dma : str
        Block-design cell names of the accelerator and of the AXI DMA.
    """

    def __init__(self, bitfile, design=None, *, accel="accel", dma="dma"):
        import pynq

        self._pynq = pynq
        bitfile = Path(bitfile)
        self.design = load_design(design if design is not None
                                  else bitfile.with_name("design.json"))
        self.overlay = pynq.Overlay(str(bitfile))
        self.regs = getattr(self.overlay, accel)
        self.dma = getattr(self.overlay, dma)
        self._max_bytes = int(self.design.get("dma_max_bytes", DEFAULT_DMA_MAX_BYTES))
        magic, found = self.design["magic"], self.read("ID")
        if found != magic:
            raise RuntimeError(f"cell '{accel}' is not an hwgen accelerator: ID register is "
                               f"{found:#010x}, expected {magic:#010x}")
        found = self.read("DESIGN_ID")
        if found != self.design["design_id"]:
            raise RuntimeError(f"the bitstream holds design {found:#010x}, but design.json "
                               f"describes {self.design['design_id']:#010x}; load the matching "
                               f"files")

    def read(self, name):
        """Read the register ``name`` (see ``design["registers"]``)."""
        return int(self.regs.read(self.design["registers"][name]))

    def write(self, name, value):
        self.regs.write(self.design["registers"][name], int(value))

    def counters(self):
        """Frame and cycle counters and error flags, by register name."""
        names = ("FRAMES", "IN_FRAMES", "LAST_CYCLES", "INTERVAL", "CYCLES", "ERRORS")
        return {name: self.read(name) for name in names}

    def clear(self):
        """Clear the frame counters, cycle statistics and error flags."""
        self.write("CONTROL", 1)

    def _chunk_frames(self):
        per_frame = max(input_nbytes(1, self.design), output_nbytes(1, self.design))
        frames = self._max_bytes // per_frame
        if frames < 1:
            raise ValueError(f"one frame ({per_frame} bytes) exceeds the DMA transfer limit "
                             f"of {self._max_bytes} bytes")
        return frames

    def run(self, frames):
        """Stream ``(N, *input shape)`` frames through the accelerator; return the outputs.

        Frames go in chunks that fit one DMA transfer; each chunk is one TLAST packet on both
        streams (``PACKET_FRAMES`` is set to the chunk's frame count).
        """
        frames = np.asarray(frames)
        outputs = []
        step = self._chunk_frames()
        for start in range(0, len(frames), step):
            chunk = frames[start:start + step]
            data = pack_input(chunk, self.design)
            src = self._pynq.allocate(shape=(len(data),), dtype=np.uint8)
            dst = self._pynq.allocate(shape=(output_nbytes(len(chunk), self.design),),
                                      dtype=np.uint8)
            try:
                src[:] = data
                src.flush()
                self.write("PACKET_FRAMES", len(chunk))
                self.dma.recvchannel.transfer(dst)
                self.dma.sendchannel.transfer(src)
                self.dma.sendchannel.wait()
                self.dma.recvchannel.wait()
                dst.invalidate()
                outputs.append(unpack_output(np.array(dst), self.design, len(chunk)))
            finally:
                src.freebuffer()
                dst.freebuffer()
        errors = self.read("ERRORS")
        if errors:
            raise RuntimeError(f"the accelerator flagged input framing errors {errors:#x} "
                               f"(bit 0: TLAST early, bit 1: TLAST missing)")
        if not outputs:
            spec = self.design["output"]
            return np.zeros((0, *spec["shape"]), dtype=np.int64)
        return np.concatenate(outputs)
