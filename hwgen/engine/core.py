"""Engine: the layer-sequential accelerator, an AXI4 manager of DRAM with AXI4-Lite control.

Layers run one after the other, each from its descriptor (:mod:`hwgen.engine.program`), read
from DRAM when the one before has ended. A layer is cut into bands of output rows and, within
a band, into folds (``tm`` output channels of a matrix product, or one channel group of a
vector op). Three units work on the layer at once and hand each other banks of three
double-buffered memories, a full flag per bank:

- the loader (:mod:`hwgen.engine.loader`) reads a band's input rows into an input-buffer bank
  and each fold's parameters and weights into a weight-buffer bank;
- the compute unit (:mod:`hwgen.engine.compute`) runs each fold over the band's pixels and
  writes the outputs into an output-buffer bank;
- the store unit (:mod:`hwgen.engine.store`) writes a finished band to DRAM.

So the next band's input and the next fold's weights are read while the current ones are
computed, and a band is written while the next one is computed. The read and write masters
(:mod:`hwgen.engine.dma`) share one AXI4 port, or several (:mod:`hwgen.engine.ports`); the
registers (:mod:`hwgen.engine.control`) start a program and report its progress.
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..axi import AXI4Signature, AXILiteSignature
from .params import VECTOR_WEIGHT_BITS, param_words
from .bands import LayerGeometry
from .compute import Compute
from .control import Control, config_word
from .dma import ReadMaster, WriteMaster
from .layout import PLANE_ALIGN
from .loader import Loader
from .macarray import weight_word_bits
from .ports import Planes, port_names
from .program import ADD, DEPTHWISE, DESCRIPTOR_LAYOUT, MATMUL, POOL_MAX, POOL_SUM
from .store import Store

__all__ = ["Engine", "ELEMENT_BITS", "OUT_BITS"]

#: Width of an element in the input buffer (signed; holds 16-bit values of either sign).
ELEMENT_BITS = 17
#: Width of an element in the output buffer.
OUT_BITS = 32


def _flags(m, name):
    """Two bank flags, set and cleared by one-cycle pulses from the units."""
    flags = Signal(2, name=f"{name}_full")
    set_, clear = Signal(2, name=f"{name}_set"), Signal(2, name=f"{name}_clear")
    m.d.sync += flags.eq((flags | set_) & ~clear)
    return flags, set_, clear


def _connect_half(m, port, half):
    """Connect one master's half of the AXI4 port."""
    for name, member in half.signature.members.items():
        if member.flow == Out:
            m.d.comb += getattr(port, name).eq(getattr(half, name))
        else:
            m.d.comb += getattr(half, name).eq(getattr(port, name))


class Engine(wiring.Component):
    """A layer-sequential engine built as ``config`` (:class:`~hwgen.engine.EngineConfig`).

    Members
    -------
    m_axi : Out(AXI4Signature(addr_bits, data_bits))
        DRAM: descriptors, parameters, weights and tensors. With ``config.ports > 1``,
        ``m_axi0`` ... instead, each ``data_bits / ports`` wide (one plane of the image each).
    s_axil : In(AXILiteSignature(8))
        Control (:mod:`hwgen.engine.control`).
    layer_done : Out(1)
        One cycle as each layer's last output is written (for measurements).
    busy : Out(1)
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            **{name: Out(AXI4Signature(config.addr_bits, config.port_bits))
               for name in port_names(config.ports)},
            "s_axil": In(AXILiteSignature(8)),
            "layer_done": Out(1),
            "busy": Out(1),
        })

    config = property(lambda self: self._config)

    @property
    def dsp_count(self):
        """Hardware multipliers of the MAC array."""
        return self._config.dsp_count

    def elaborate(self, platform):
        m = Module()
        c = self._config
        db = c.data_bits
        weight_bits = max(weight_word_bits(c), c.tn * VECTOR_WEIGHT_BITS)
        p_words = param_words(c)

        m.submodules.control = control = Control(config_word=config_word(c), ports=c.ports)
        wiring.connect(m, wiring.flipped(self.s_axil), control.s_axil)
        m.submodules.reader = reader = ReadMaster(addr_bits=c.addr_bits, data_bits=db)
        m.submodules.writer = writer = WriteMaster(addr_bits=c.addr_bits, data_bits=db)
        if c.ports == 1:
            bus, origin = self.m_axi, control.program
        else:
            # The masters address the image by offset; the planes place each lane.
            m.submodules.planes = planes = Planes(addr_bits=c.addr_bits, data_bits=db,
                                                  ports=c.ports)
            m.d.comb += [planes.image.eq(control.program), planes.plane.eq(control.plane)]
            for name in port_names(c.ports):
                wiring.connect(m, getattr(planes, name), wiring.flipped(getattr(self, name)))
            bus, origin = planes.s_axi, 0
        _connect_half(m, bus, reader.m_axi)
        _connect_half(m, bus, writer.m_axi)

        desc = Signal(DESCRIPTOR_LAYOUT)
        m.submodules.loader = loader = Loader(c, element_bits=ELEMENT_BITS,
                                              param_words=p_words, weight_bits=weight_bits)
        m.submodules.compute = compute = Compute(c, element_bits=ELEMENT_BITS,
                                                 param_bits=p_words * db,
                                                 weight_bits=weight_bits, out_bits=OUT_BITS)
        m.submodules.store = store = Store(c, out_bits=OUT_BITS)
        go = Signal()
        # The units start once the layer's geometry is formed from its descriptor
        # (hwgen.engine.bands.SETUP_CYCLES later).
        m.submodules.geometry = geometry = LayerGeometry(
            addr_bits=c.addr_bits, word_shift=(db // 8 - 1).bit_length())
        m.d.comb += [geometry.desc.eq(desc), geometry.prepare.eq(go)]
        for unit in (loader, compute, store):
            m.d.comb += [unit.desc.eq(desc), unit.geometry.eq(geometry.geometry),
                         unit.go.eq(geometry.start)]

        # The image's base: descriptors hold offsets into the image, so it runs wherever it
        # is loaded.
        base = Signal(c.addr_bits)

        # -- buffers and their bank flags ------------------------------------------------------
        ibuf_full, ibuf_set, ibuf_clear = _flags(m, "ibuf")
        wbuf_full, wbuf_set, wbuf_clear = _flags(m, "wbuf")
        obuf_full, obuf_set, obuf_clear = _flags(m, "obuf")
        m.submodules.ibuf = ibuf = Memory(shape=unsigned(c.tn * ELEMENT_BITS),
                                          depth=2 * c.input_words, init=[])
        m.submodules.wbuf = wbuf = Memory(shape=unsigned(weight_bits),
                                          depth=2 * c.weight_words, init=[])
        m.submodules.obuf = obuf = Memory(shape=unsigned(c.tm * OUT_BITS),
                                          depth=2 * c.output_words, init=[])
        ibuf_w, ibuf_r, ibuf_r2 = ibuf.write_port(), ibuf.read_port(), ibuf.read_port()
        wbuf_w, wbuf_r = wbuf.write_port(), wbuf.read_port()
        obuf_w, obuf_r = obuf.write_port(), obuf.read_port()
        m.d.comb += [
            ibuf_w.addr.eq(loader.ibuf_addr), ibuf_w.data.eq(loader.ibuf_data),
            ibuf_w.en.eq(loader.ibuf_en),
            wbuf_w.addr.eq(loader.wbuf_addr), wbuf_w.data.eq(loader.wbuf_data),
            wbuf_w.en.eq(loader.wbuf_en),
            ibuf_r.addr.eq(compute.ibuf_addr), compute.ibuf_data.eq(ibuf_r.data),
            ibuf_r2.addr.eq(compute.ibuf2_addr), compute.ibuf2_data.eq(ibuf_r2.data),
            wbuf_r.addr.eq(compute.wbuf_addr), compute.wbuf_data.eq(wbuf_r.data),
            compute.params.eq(loader.params),
            obuf_w.addr.eq(compute.obuf_addr), obuf_w.data.eq(compute.obuf_data),
            obuf_w.en.eq(compute.obuf_en),
            obuf_r.addr.eq(store.obuf_addr), store.obuf_data.eq(obuf_r.data),
            loader.ibuf_full.eq(ibuf_full), ibuf_set.eq(loader.ibuf_set),
            loader.wbuf_full.eq(wbuf_full), wbuf_set.eq(loader.wbuf_set),
            compute.ibuf_full.eq(ibuf_full), ibuf_clear.eq(compute.ibuf_clear),
            compute.wbuf_full.eq(wbuf_full), wbuf_clear.eq(compute.wbuf_clear),
            compute.obuf_full.eq(obuf_full), obuf_set.eq(compute.obuf_set),
            store.obuf_full.eq(obuf_full), obuf_clear.eq(store.obuf_clear),
            writer.i_cmd.valid.eq(store.o_cmd.valid),
            writer.i_cmd.payload.words.eq(store.o_cmd.payload.words),
            writer.i_cmd.payload.address.eq(base + store.o_cmd.payload.address),
            store.o_cmd.ready.eq(writer.i_cmd.ready),
            writer.i_data.valid.eq(store.o_words.valid),
            writer.i_data.payload.eq(store.o_words.payload),
            store.o_words.ready.eq(writer.i_data.ready),
            store.writer_idle.eq(writer.idle),
        ]

        # -- the sequencer: fetch a descriptor, run its layer, go on ------------------------------
        running, fetching, issued, active = Signal(), Signal(), Signal(), Signal()
        done, error = Signal(), Signal()
        error_code = Signal(8)
        layers = Signal(16)
        program = Signal(c.addr_bits)
        words = Signal(range(512 // db + 1))
        m.d.comb += [control.busy.eq(running), control.done.eq(done),
                     control.error.eq(error), control.error_code.eq(error_code),
                     control.layers.eq(layers), self.busy.eq(running)]
        # An error response (SLVERR or DECERR) to any read or write since the start: the
        # run stops before the next layer (a burst in flight is always finished, so the
        # units stay in step), and a descriptor read with one is not run.
        faulted, fault = Signal(), Signal()
        m.d.comb += fault.eq(faulted | (bus.rvalid & bus.rready & bus.rresp[1]) |
                             (bus.bvalid & bus.bready & bus.bresp[1]))
        m.d.sync += faulted.eq(fault & ~control.start)
        with m.If(control.start):
            m.d.sync += [running.eq(1), done.eq(0), error.eq(0), error_code.eq(0),
                         layers.eq(0), program.eq(origin),
                         base.eq(origin), fetching.eq(1),
                         issued.eq(0), words.eq(0)]
            if c.ports > 1:
                # Planes that overlap or start inside a 4 KiB page: refused, nothing read.
                page = PLANE_ALIGN.bit_length() - 1
                with m.If((control.plane == 0) | (control.plane[:page] != 0) |
                          (control.program[:page] != 0)):
                    m.d.sync += [running.eq(0), fetching.eq(0), error.eq(1),
                                 error_code.eq(2), done.eq(1)]

        # Read commands and data: the descriptor's while fetching, else the loader's.
        with m.If(fetching):
            m.d.comb += [reader.i_cmd.valid.eq(~issued),
                         reader.i_cmd.payload.address.eq(program),
                         reader.i_cmd.payload.words.eq(512 // db),
                         reader.o_data.ready.eq(1)]
            with m.If(reader.i_cmd.valid & reader.i_cmd.ready):
                m.d.sync += issued.eq(1)
            with m.If(reader.o_data.valid):
                m.d.sync += [desc.as_value().eq(Cat(desc.as_value()[db:],
                                                    reader.o_data.payload.word)),
                             words.eq(words + 1)]
            with m.If(words == 512 // db):
                m.d.sync += [fetching.eq(0), words.eq(0)]
                with m.If(fault):
                    m.d.sync += [running.eq(0), error.eq(1), error_code.eq(3), done.eq(1)]
                with m.Elif(desc.op.matches(MATMUL, POOL_MAX, POOL_SUM, DEPTHWISE, ADD)):
                    m.d.comb += go.eq(1)
                    m.d.sync += active.eq(1)
                with m.Else():
                    m.d.sync += [running.eq(0), error.eq(1), error_code.eq(1), done.eq(1)]
        with m.Else():
            m.d.comb += [reader.i_cmd.valid.eq(loader.o_cmd.valid),
                         reader.i_cmd.payload.words.eq(loader.o_cmd.payload.words),
                         reader.i_cmd.payload.address.eq(base + loader.o_cmd.payload.address),
                         loader.o_cmd.ready.eq(reader.i_cmd.ready),
                         loader.i_data.valid.eq(reader.o_data.valid),
                         loader.i_data.payload.eq(reader.o_data.payload),
                         reader.o_data.ready.eq(loader.i_data.ready)]

        # A layer ends when its last band is written; the next descriptor follows it.
        with m.If(active & ~go & ~geometry.busy & loader.done & compute.done & store.done):
            m.d.sync += [active.eq(0), layers.eq(layers + 1)]
            m.d.comb += self.layer_done.eq(1)
            with m.If(fault):
                m.d.sync += [running.eq(0), error.eq(1), error_code.eq(3), done.eq(1)]
            with m.Elif(desc.last):
                m.d.sync += [running.eq(0), done.eq(1)]
            with m.Else():
                m.d.sync += [program.eq(program + 64), fetching.eq(1), issued.eq(0)]
        return m
