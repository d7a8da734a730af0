"""Accelerator: the dataflow pipeline of a lowered graph, one stream in and one stream out."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from quant.stream_format import StreamFormat

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """The blocks of a :class:`~hwgen.lowering.Netlist`, connected as its links say.

    Feature maps stream in HWC order: pixels in raster order, the channels of a pixel
    together, ``in_elements`` per input beat; a dense layer after a flatten of a map reads
    its columns in that order, so the golden semantics (C-order flatten) hold. Build one with
    :func:`hwgen.compile_graph` (validation, folding, filter reordering, lowering and
    scheduling); the residual joins' FIFOs get the depths of ``schedule``.

    Parameters
    ----------
    netlist : hwgen.lowering.Netlist
    schedule : hwgen.schedule.Schedule
        The netlist's schedule (:func:`hwgen.schedule.schedule`).

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(input element, in_elements)))
        The input frame in stream order (:attr:`in_format`).
    o_stream : Out(stream.Signature(ArrayLayout(output element, out_elements)))
        The output frame in stream order (:attr:`out_format`).
    cycle_count : Out(32)
        Clock cycles since reset.
    frame_count : Out(32)
        Output frames completed since reset.
    """

    def __init__(self, netlist, schedule):
        self._net, self._schedule = netlist, schedule
        depths = schedule.fifo_depths
        self._blocks = {name: spec.build(**({"depth": depths[name]} if name in depths else {}))
                        for name, spec in netlist.blocks.items()}
        inp, out = netlist.input, netlist.output
        super().__init__({
            "i_stream": In(stream.Signature(data.ArrayLayout(inp.shape, inp.lanes))),
            "o_stream": Out(stream.Signature(data.ArrayLayout(out.shape, out.lanes))),
            "cycle_count": Out(32),
            "frame_count": Out(32),
        })

    netlist = property(lambda self: self._net)
    schedule = property(lambda self: self._schedule)
    graph = property(lambda self: self._net.graph)
    device = property(lambda self: self._net.device)
    folding = property(lambda self: dict(self._net.folding))
    blocks = property(lambda self: list(self._blocks.items()))
    links = property(lambda self: list(self._net.links))
    fifo_depths = property(lambda self: dict(self._schedule.fifo_depths))
    in_elements = property(lambda self: self._net.input.lanes)
    out_elements = property(lambda self: self._net.output.lanes)
    out_bits = property(lambda self: self._net.output.bits)
    out_signed = property(lambda self: self._net.output.signed)
    in_beats = property(lambda self: self._net.input.elements // self._net.input.lanes)
    out_beats = property(lambda self: self._net.output.elements // self._net.output.lanes)
    cycles_per_frame = property(lambda self: self._schedule.cycles_per_frame)
    latency = property(lambda self: self._schedule.latency)
    has_windows = property(lambda self: self._schedule.latency_is_estimate)

    @property
    def in_format(self):
        """The :class:`~quant.stream_format.StreamFormat` of the input stream."""
        spec, end = self.graph.input, self._net.input
        return StreamFormat.for_tensor(tuple(spec.shape), spec.bits, spec.signed, end.lanes)

    @property
    def out_format(self):
        """The :class:`~quant.stream_format.StreamFormat` of the output stream: a map in HWC
        order, and so is a flattened map (its ``map_shape``, the map it flattens)."""
        graph, end = self.graph, self._net.output
        return StreamFormat.for_tensor(tuple(graph.shapes()[graph.output]), end.bits,
                                       end.signed, end.lanes, map_shape=end.map)

    in_order = property(lambda self: self.in_format.order)
    out_order = property(lambda self: self.out_format.order)

    def block_cycles(self):
        """``{block name: steady-state cycles per frame}`` of the blocks with a rate of their
        own (see :class:`~hwgen.schedule.Schedule`)."""
        return dict(self._schedule.block_cycles)

    @property
    def dsp_count(self):
        """Hardware multipliers: packed MAC lanes plus requantizer products."""
        return sum(b.dsp_count for b in self._blocks.values() if hasattr(b, "dsp_count"))

    def _port(self, port):
        name, member, index = port
        if name is None:
            return wiring.flipped(getattr(self, member))
        stream_ = getattr(self._blocks[name], member)
        return stream_ if index is None else stream_[index]

    def elaborate(self, platform):
        m = Module()
        for name, block in self._blocks.items():
            m.submodules[name] = block
        for producer, consumer in self._net.links:
            wiring.connect(m, producer=self._port(producer), consumer=self._port(consumer))

        beat = Signal(range(self.out_beats))
        m.d.sync += self.cycle_count.eq(self.cycle_count + 1)
        with m.If(self.o_stream.valid & self.o_stream.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == self.out_beats - 1):
                m.d.sync += [beat.eq(0), self.frame_count.eq(self.frame_count + 1)]
        return m
