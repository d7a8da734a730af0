"""Host driver for an accelerator overlay on a PYNQ board (PYNQ-Z2, ZCU102).

The overlay is what :func:`boards.build` writes for a Zynq board: an AXI DMA (cell ``dma``)
streams frames from DDR into the accelerator (cell ``accel``) and its results back, and the
accelerator's AXI4-Lite registers count frames and cycles. ``design.json`` (written beside
the bitstream) says how frames are packed.

Packing is the hardware contract of :class:`quant.stream_format.StreamFormat`, built from
``design.json``'s ``input`` and ``output`` entries: feature maps stream pixel by pixel (HWC),
element 0 of a beat in its low bits, two's complement. Each beat occupies ``tdata_bits / 8``
bytes of memory, little endian, as the DMA moves them. The build puts ``stream_format.py``
(that one module, NumPy only) beside this file; ``pynq`` is imported when an
:class:`Overlay` is opened.

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

try:  # on the board: the copy of quant/stream_format.py the build put beside this file
    from stream_format import StreamFormat
except ImportError:  # in the project
    from quant.stream_format import StreamFormat

__all__ = ["load_design", "stream_format", "input_nbytes", "output_nbytes", "pack_input",
           "unpack_output", "Overlay"]

#: Bytes one DMA transfer can move (the DMA's length register is 26 bits wide).
DEFAULT_DMA_MAX_BYTES = (1 << 26) - 1


def load_design(design):
    """The design description: a dict, or the path of ``design.json``."""
    if isinstance(design, dict):
        return design
    return json.loads(Path(design).read_text())


def stream_format(design, which):
    """The :class:`StreamFormat` of the ``"input"`` or ``"output"`` stream of ``design``."""
    return StreamFormat.from_metadata(load_design(design)[which], name=f"design {which}")


def _stream(design, which):
    """The stream's format and the bytes one beat takes in memory."""
    design = load_design(design)
    return stream_format(design, which), design[which]["tdata_bits"] // 8


def _beats(words, nbytes):
    """Payload words -> bytes, ``nbytes`` per beat, little endian."""
    out = np.zeros((len(words), nbytes), dtype=np.uint8)
    for i, word in enumerate(words):
        out[i] = np.frombuffer(int(word).to_bytes(nbytes, "little"), dtype=np.uint8)
    return out.reshape(-1)


def input_nbytes(frames, design):
    """Bytes of ``frames`` input frames in memory."""
    fmt, nbytes = _stream(design, "input")
    return int(frames) * fmt.beats_per_frame * nbytes


def output_nbytes(frames, design):
    """Bytes of ``frames`` output frames in memory."""
    fmt, nbytes = _stream(design, "output")
    return int(frames) * fmt.beats_per_frame * nbytes


def pack_input(frames, design):
    """Pack ``(N, *input shape)`` integers into the bytes the DMA streams to the accelerator.

    Raises
    ------
    TypeError
        When the frames are not integers.
    ValueError
        When the frames have the wrong shape or values outside the input range (the message
        names the first such frame and element).
    """
    fmt, nbytes = _stream(design, "input")
    frames = np.asarray(frames)
    if frames.ndim < 1 or frames.shape[1:] != fmt.shape:
        raise ValueError(f"frames must have shape (N, {', '.join(map(str, fmt.shape))}), not "
                         f"{frames.shape}")
    return _beats(fmt.pack(frames), nbytes)


def unpack_output(data, design, frames=None):
    """Unpack the bytes the DMA wrote into ``(N, *output shape)`` int64 outputs.

    ``frames`` (optional) checks that exactly that many frames are present.
    """
    fmt, nbytes = _stream(design, "output")
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    if len(data) % nbytes:
        raise ValueError(f"{len(data)} bytes are not a whole number of {nbytes}-byte beats")
    beat_mask = (1 << fmt.beat_bits) - 1
    words = [int.from_bytes(data[i:i + nbytes].tobytes(), "little") & beat_mask
             for i in range(0, len(data), nbytes)]
    out = fmt.unpack(words)
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
