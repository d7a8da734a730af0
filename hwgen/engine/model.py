"""The engine's cycle model: the cycles of each layer of a program, from its descriptor and the
:class:`~hwgen.engine.EngineConfig` alone, without simulating the hardware.

One module over 400 lines on purpose: the loader, compute and store schedules below hand
each other banks, and each is only right read against the other two.

The model follows the engine's real schedule (:mod:`hwgen.engine.core`). A layer is:

1. its descriptor fetch: one read of ``512 / data_bits`` words, started the cycle after the
   layer before ends, then :data:`~hwgen.engine.bands.SETUP_CYCLES` while the units' band
   geometry registers the descriptor's products;
2. three units working on the layer at once, handing each other banks of three
   double-buffered memories with a full flag per bank (a flag set or cleared at a clock edge is
   seen by the other unit in the next cycle, which acts on it at the edge after):

   - the loader (:mod:`hwgen.engine.loader`), in order: for each band, its input rows into
     input bank ``band % 2`` once that bank is free, then for each fold its parameters and
     weights into weight bank ``fold % 2`` (folds counted over the layer) once that bank is
     free;
   - the compute unit (:mod:`hwgen.engine.compute`): a band starts when its input bank is full
     and its output bank free; each fold when its weight bank is full (with its own weights:
     never before the fold before last has given the bank back), then issues its
     k-steps one a cycle (``rows x out_width x passes x kernel x channel groups``, with the
     fold's own pass count; a vector op's window alone); a state cycle before each fold, two
     more per band. A fold's weight bank is given back when its last output leaves the output
     path (:func:`output_latency` cycles after its last k-step, a cycle more on a family whose
     requantizer product is formed in pieces), the band's input bank the cycle after its last
     k-step, its output bank flagged full with its last output;
   - the store unit (:mod:`hwgen.engine.store`): a band once its output bank is full, row by
     row through the packer to the write master; the bank is given back when its last word
     is read, the packer and the write master finish on their own;

3. the layer ends when the three units are done (the store once its last write is
   acknowledged).

The DRAM is the one the engine is verified against (``tests/hwgen/engine/axi_memory.py``):
a read burst's first beat ``latency + 1`` cycles after its address, then a beat a cycle;
writes accepted as they come, each burst acknowledged the cycle after its last beat. The read
and write masters (:mod:`hwgen.engine.dma`) split commands into bursts of at most
:data:`~hwgen.engine.dma.MAX_BURST` beats within 4 KiB and keep at most
:data:`~hwgen.engine.dma.MAX_OUTSTANDING` bursts in flight.

Where the schedule is a formula (a fold's k-steps, a weight read into an always-ready sink)
the model uses it; where units hand words over with back-pressure (the row commands of a band's
input through the unpacker, a band's output through the packer and the write master) it steps
those small state machines a cycle at a time, as the hardware does; the bank flags between the
units are events. With a fixed read latency and no stalls the model is the hardware's
schedule, cycle for cycle.

The DRAM is described by two numbers: its read latency (``latency``, cycles, the same for
every burst; a parameter of :func:`layer_cycles` and :func:`program_cycles`) and one bus word
a cycle each way (``config.data_bits``). AXI back-pressure is not modelled: a memory that
holds ``ready`` or ``valid`` low on any channel, or whose latency varies from burst to burst,
makes the engine slower than the model says, so under stalls the model is a lower bound.
Measured on the ResNet-18-shaped network of ``tests/hwgen/engine/test_model.py`` (a 4 x 4
engine) with every AXI channel stalling at random, the model was under each layer's
measured cycles by 0.9% to 7.5% (1.9% under the whole run) at 10% of cycles stalled, by 2.6%
to 28% (6.9%) at 30%; the short layers are the furthest off.
"""

from collections import deque
from dataclasses import dataclass

from .bands import SETUP_CYCLES, band_rows
from .config import EngineConfig
from .dma import MAX_BURST, MAX_OUTSTANDING
from .macarray import MacArray
from .post import OutputPath, VectorLanes
from .program import ADD, MATMUL, OPS, Descriptor

__all__ = ["DEFAULT_LATENCY", "LayerCycles", "LayerSchedule", "output_latency",
           "NetworkCycles", "layer_cycles", "metadata_cycles", "program_cycles"]

#: Read latency (cycles from a read address to its first beat, less one) the metadata's model
#: assumes: the simulator's DRAM default.
DEFAULT_LATENCY = 2


def output_latency(op, family):
    """Cycles from an op's last k-step to its output in the output buffer on an engine of
    ``family``: for a matrix product the buffers' address and read registers, the MAC array,
    the crossbar register and the output path; for the vector lanes the same without the
    crossbar."""
    if op == MATMUL:
        return 2 + (MacArray.MULTIPLY + 2) + 1 + OutputPath.latency_for(family)
    return 2 + VectorLanes.latency + OutputPath.latency_for(family)


#: Widest element the unpacker holds (``hwgen.engine.gearbox.Unpacker`` ``max_bits`` as the
#: loader builds it) and the packer takes (the output buffer's elements).
_UNPACK_MAX_BITS = 16
_PACK_MAX_BITS = 32
#: The store's output-buffer read-ahead (``hwgen.engine.store._AHEAD``).
_STORE_AHEAD = 4

_NEVER = -(1 << 60)


@dataclass(frozen=True)
class LayerCycles:
    """One layer's cycles and traffic.

    ``compute`` is what the compute unit takes alone (every k-step, its state cycles, the
    pipeline's drain); ``read`` what the descriptor fetch and the loader take alone (every
    read, none waiting for a free bank); ``write`` what the store takes alone;
    ``transfer = read + write`` (the DRAM traffic's cycles, the two AXI directions one after
    the other); ``total`` the layer's cycles with the units overlapped as the engine runs
    them (from the end of the layer before to the end of this one). ``utilization`` is the
    layer's useful MACs over ``tm * tn * total``.
    """
    name: str
    op: str
    compute: int
    read: int
    write: int
    total: int
    bytes_read: int
    bytes_written: int
    macs: int
    utilization: float
    start: int = 0
    end: int = 0

    @property
    def transfer(self):
        return self.read + self.write

    @property
    def exposed(self):
        """Cycles of the layer not hidden under its compute."""
        return self.total - self.compute


@dataclass(frozen=True)
class NetworkCycles:
    """A program's layers and its total: ``total`` is the cycles the run takes, as the CYCLES
    register counts them: ``busy`` is high from cycle 0 (the first descriptor read is issued
    the cycle after) through the cycle its last layer ends (``layers[-1].end``), so
    ``total`` is one more than the layers' own cycles together."""
    layers: tuple
    total: int
    macs: int
    utilization: float
    latency: int

    def by_name(self):
        return {layer.name: layer for layer in self.layers}


# -- geometry --------------------------------------------------------------------------------

def _steps_per_pixel(d, passes):
    """k-steps the compute unit issues for each output pixel of a fold of ``passes`` passes."""
    if d.op == MATMUL:
        return passes * d.kernel_h * d.kernel_w * d.in_groups
    return d.kernel_h * d.kernel_w


def _bursts(address, words, word_bytes):
    """Burst lengths of one command (at most MAX_BURST beats, never across 4 KiB)."""
    out = []
    while words:
        to_boundary = (4096 - address % 4096) // word_bytes
        beats = min(MAX_BURST, to_boundary, words)
        out.append(beats)
        address += beats * word_bytes
        words -= beats
    return out


# -- reads -----------------------------------------------------------------------------------

def _sink_read(start, bursts, latency):
    """Edge of the last beat of one command read into an always-ready sink, entered at edge
    ``start``: accepted at ``start + 1``, a burst address a cycle from ``start + 2`` (at most
    ``MAX_OUTSTANDING`` in flight), each burst's first beat ``latency + 1`` after its address,
    beats back to back."""
    ar, end, ends = start + 1, _NEVER, []
    for k, beats in enumerate(bursts):
        ar = max(ar + 1, ends[k - MAX_OUTSTANDING] + 1 if k >= MAX_OUTSTANDING else _NEVER)
        end = max(ar + latency + 1, end + 1) + beats - 1
        ends.append(end)
    return end


class _ReadPath:
    """The read master and the DRAM for one command sequence the loader offers back to back
    (stepped a cycle at a time with a consumer that may hold beats back)."""

    def __init__(self, commands, word_bytes, latency):
        self.commands = deque(commands)          # (address, words)
        self.word_bytes, self.latency = word_bytes, latency
        self.address = self.remaining = 0
        self.in_flight = 0
        self.bursts = deque()                    # [first beat edge, beats left]
        self.last_take = _NEVER

    def valid(self, edge):
        """A beat can be taken at ``edge``."""
        return bool(self.bursts) and max(self.bursts[0][0], self.last_take + 1) <= edge

    def step(self, edge, take):
        """Registers at ``edge`` (``take``: the head beat is taken)."""
        issue = self.remaining != 0 and self.in_flight < MAX_OUTSTANDING
        if take:
            self.last_take = edge
            head = self.bursts[0]
            head[1] -= 1
            if head[1] == 0:
                self.bursts.popleft()
                self.in_flight -= 1
        if issue:
            beats = min(MAX_BURST, (4096 - self.address % 4096) // self.word_bytes,
                        self.remaining)
            self.bursts.append([edge + self.latency + 1, beats])
            self.address += beats * self.word_bytes
            self.remaining -= beats
            self.in_flight += 1
        elif self.remaining == 0 and self.commands:
            self.address, self.remaining = self.commands.popleft()

    def next_event(self, edge):
        """The next edge after ``edge`` at which a beat could be taken or the address side
        could move (to skip idle cycles), or None when nothing will happen."""
        if self.remaining or self.commands:
            return edge + 1
        if self.bursts:
            return max(edge + 1, self.bursts[0][0], self.last_take + 1)
        return None


def _input_read(start, rows, config, latency):
    """Edge of the last group written into the input buffer for one band, the loader entering
    its INPUT state at edge ``start``. ``rows``: ``(address, words, groups, bits)`` of each
    row read, in order (an add's second operand after the first)."""
    db = config.data_bits
    width = db + config.tn * _UNPACK_MAX_BITS
    path = _ReadPath([(a, w) for a, w, _, _ in rows], db // 8, latency)
    row = 0
    words_total, groups_total, group_bits = rows[0][1], rows[0][2], config.tn * rows[0][3]
    have = groups = words = 0
    held = False                             # the read master holds a beat back
    edge = start
    while True:
        edge += 1
        emit = have >= group_bits
        row_end = emit and groups == groups_total - 1
        after = have - group_bits if emit else have
        ready = words != words_total and after + db <= width and not row_end
        arriving = path.valid(edge)
        take = ready and (held or arriving)
        path.step(edge, arriving and not held)
        held = not take if held else arriving and not take
        if row_end:
            row += 1
            if row == len(rows):
                return edge
            have = groups = words = 0
            _, words_total, groups_total, bits = rows[row]
            group_bits = config.tn * bits
        else:
            have = after + (db if take else 0)
            groups += emit
            words += take
        if not emit and not take and not held and have < group_bits:
            # Nothing moves until a beat arrives: skip to it.
            nxt = path.next_event(edge)
            if nxt is not None and nxt > edge + 1:
                edge = nxt - 1


# -- the store -------------------------------------------------------------------------------

class _Fifo:
    """``amaranth.lib.fifo.SyncFIFOBuffered`` occupancy: an inner queue and an output
    register; an entry written at an edge is readable two edges later."""

    def __init__(self, depth):
        self.inner_depth = depth - 1
        self.inner = 0
        self.r_rdy = False

    @property
    def level(self):
        return self.inner + self.r_rdy

    @property
    def w_rdy(self):
        return self.inner != self.inner_depth

    def comb(self, r_en):
        """``(do_read, do_inner_read)`` for this cycle."""
        inner_read = self.inner != 0 and (not self.r_rdy or r_en)
        return self.r_rdy and r_en, inner_read

    def step(self, write, r_en, inner_read):
        self.inner += (1 if write else 0) - (1 if inner_read else 0)
        self.r_rdy = inner_read or (self.r_rdy and not r_en)


class _Store:
    """The store unit, its queue and packer, the write master and the DRAM's write side,
    stepped a cycle at a time; their state carries from band to band."""

    def __init__(self, d, config, out_addr):
        self.d, self.config = d, config
        self.db = config.data_bits
        self.word_bytes = self.db // 8
        self.width = self.db + config.tm * _PACK_MAX_BITS
        self.group_bits = config.tm * d.out_bits
        self.row_groups = d.out_width * d.out_groups
        self.row_bytes = d.out_row_words * self.word_bytes
        self.out_addr = out_addr
        # The store's state machine.
        self.rows_state = False
        self.rows = self.row = self.index = self.total = 0
        self.cmds_done = self.reading = self.in_flight = False
        self.address = 0
        # Queue and packer.
        self.queue = _Fifo(_STORE_AHEAD)
        self.have = self.groups = 0
        self.flushing = False
        # Write master.
        self.w_address = self.w_remaining = 0
        self.awaiting = 0
        self.lengths = _Fifo(MAX_OUTSTANDING)
        self.length_values = deque()
        self.sent = 0
        # DRAM write side.
        self.mem_bursts = deque()
        self.responses = 0
        self.wready = self.bvalid = False

    def begin_band(self, band):
        oy0, rows, _, _ = band_rows(self.d, band)
        self.rows_state = True
        self.rows, self.row, self.index = rows, 0, 0
        self.total = rows * self.d.out_width * self.d.out_groups
        self.cmds_done, self.reading = False, True
        self.address = self.out_addr + oy0 * self.row_bytes

    def idle(self):
        """Nothing is left to move (the state machine waits for a band or is done)."""
        return (not self.rows_state and not self.in_flight and self.queue.level == 0
                and self.have == 0 and not self.flushing and self.w_remaining == 0
                and self.awaiting == 0 and self.lengths.level == 0 and not self.mem_bursts
                and self.responses == 0 and not self.bvalid)

    def writer_idle(self, cmd_valid):
        return (self.w_remaining == 0 and self.awaiting == 0 and not self.lengths.r_rdy
                and not cmd_valid)

    def step(self):
        """One cycle; returns ``(cleared, done)``: the band's bank is given back at this
        edge, and (out of the ROWS state) the store's ``done`` held in this cycle."""
        # -- combinational ------------------------------------------------------------------
        cmd_valid = self.rows_state and not self.cmds_done
        cmd_accept = cmd_valid and self.w_remaining == 0
        read = (self.reading and self.index != self.total
                and self.queue.level + self.in_flight < _STORE_AHEAD - 1)
        # Packer.
        d = self.db
        w_ready = self.wready and self.lengths.r_rdy
        out_valid = self.have >= d or (self.flushing and self.have != 0)
        send = out_valid and w_ready
        after = (self.have - d if self.have >= d else 0) if send else self.have
        in_ready = not self.flushing and after + self.group_bits <= self.width
        q_read, q_inner_read = self.queue.comb(in_ready)
        take = q_read
        # Write master.
        aw = (self.w_remaining != 0 and self.lengths.w_rdy
              and self.awaiting < MAX_OUTSTANDING)
        last_beat = send and self.sent == self.length_values[0] - 1
        l_read, l_inner_read = self.lengths.comb(last_beat)
        response = self.bvalid
        cleared = (self.rows_state and self.cmds_done and self.index == self.total
                   and not self.in_flight)
        done = (not self.rows_state and not self.queue.r_rdy
                and self.writer_idle(cmd_valid))
        # -- registers ----------------------------------------------------------------------
        flushing = self.flushing
        self.queue.step(self.in_flight, in_ready, q_inner_read)
        self.in_flight = read
        if read:
            self.index += 1
        last_group = take and self.groups == self.row_groups - 1
        self.have = after + (self.group_bits if take else 0)
        if last_group:
            self.groups, self.flushing = 0, True
        elif take:
            self.groups += 1
        if flushing and after == 0:
            self.flushing = False
        if cmd_accept:
            self.row += 1
            if self.row == self.rows:
                self.cmds_done = True
            self.w_address, self.w_remaining = self.address, self.d.out_row_words
            self.address += self.row_bytes
        if aw:
            beats = min(MAX_BURST, (4096 - self.w_address % 4096) // self.word_bytes,
                        self.w_remaining)
            self.w_address += beats * self.word_bytes
            self.w_remaining -= beats
            self.length_values.append(beats)
            self.mem_bursts.append(beats)
        self.lengths.step(aw, last_beat, l_inner_read)
        if send:
            self.sent = 0 if last_beat else self.sent + 1
            if last_beat:
                self.length_values.popleft()
        self.awaiting += (1 if aw else 0) - (1 if response else 0)
        # DRAM: a response the cycle after a burst's last beat.
        if self.responses and self.bvalid:
            self.responses -= 1
        if send:
            self.mem_bursts[0] -= 1
            if self.mem_bursts[0] == 0:
                self.mem_bursts.popleft()
                self.responses += 1
        self.wready = bool(self.mem_bursts)
        self.bvalid = self.responses > 0
        if cleared:
            self.rows_state, self.reading = False, False
        return cleared, done


# -- one layer -------------------------------------------------------------------------------

class LayerSchedule:
    """The three units of one layer as generators over the bank-flag events they wait for;
    :meth:`run` interleaves them from the edge the units start (``go``). Afterwards
    ``events`` maps each bank event, ``(kind, index)`` with ``kind`` one of ``ibuf_set``,
    ``ibuf_clear``, ``wbuf_set``, ``wbuf_clear``, ``obuf_set`` and ``obuf_clear`` (a band's
    or a fold's index), to the edge it happens at."""

    def __init__(self, d, config, latency, fold_passes):
        self.d, self.config, self.latency = d, config, latency
        self.word_bytes = config.data_bytes
        self.events = {}
        self.read_cycles = self.write_cycles = 0
        self.bytes_read = self.bytes_written = 0
        self.out_latency = output_latency(d.op, config.family)
        # Per fold: k-steps per output pixel, weight k-steps, and words read.
        self.steps = [_steps_per_pixel(d, passes) for passes in fold_passes]
        self.weight_steps = [passes * d.ksteps for passes in fold_passes]
        self.fold_words = [d.fold_words + steps * d.kstep_words for steps in self.weight_steps]

    # Bank events of negative bands and folds are long past.
    def _event(self, kind, index):
        return _NEVER if index < 0 else self.events.get((kind, index))

    def input_rows(self, band):
        d = self.d
        _, _, r0, r1 = band_rows(d, band)
        groups = d.in_width * d.in_groups
        row_bytes = d.in_row_words * self.word_bytes
        rows = [(d.in_addr + r * row_bytes, d.in_row_words, groups, d.in_bits)
                for r in range(r0, r1)]
        if d.op == ADD:
            row2_bytes = d.in2_row_words * self.word_bytes
            rows += [(d.in2_addr + r * row2_bytes, d.in2_row_words, groups, d.in2_bits)
                     for r in range(r0, r1)]
        return rows

    def loader(self, go):
        d, t, n = self.d, go, 0
        for band in range(d.bands):
            free = yield ("ibuf_clear", band - 2)
            t = max(t, free) + 1
            rows = self.input_rows(band)
            end = _input_read(t, rows, self.config, self.latency)
            self.read_cycles += end - t
            self.bytes_read += sum(words for _, words, _, _ in rows) * self.word_bytes
            t = self.events[("ibuf_set", band)] = end
            address = d.param_addr
            for fold in range(d.folds):
                free = yield ("wbuf_clear", n - 2)
                t = max(t, free) + 1
                words = self.fold_words[fold]
                last = _sink_read(t, _bursts(address, words, self.word_bytes), self.latency)
                end = last + 1 + (self.weight_steps[fold] > 0)
                self.read_cycles += end - t
                self.bytes_read += words * self.word_bytes
                t = self.events[("wbuf_set", n)] = end
                address += words * self.word_bytes
                n += 1
            t += 1                                   # FOLD: the band's folds are loaded
        self.done["loader"] = t + 1                  # BAND: no band left; DONE

    def compute(self, go):
        d, t, n = self.d, go, 0
        out = _NEVER
        self.compute_cycles = 0
        for band in range(d.bands):
            full = yield ("ibuf_set", band)
            free = yield ("obuf_clear", band - 2)
            _, rows, _, _ = band_rows(d, band)
            t = max(t, full, free) + 1               # BAND -> FOLD
            for fold in range(d.folds):
                full = yield ("wbuf_set", n)
                issue = rows * d.out_width * self.steps[fold]
                t = max(t, full) + 1                 # FOLD -> RUN
                t += issue                           # the fold's k-steps; -> FOLD
                out = self.events[("wbuf_clear", n)] = t + self.out_latency
                n += 1
                self.compute_cycles += 1 + issue
            self.compute_cycles += 2
            t += 1                                   # FOLD: no fold left; -> BAND
            self.events[("ibuf_clear", band)] = t
            self.events[("obuf_set", band)] = out
        self.compute_cycles += 1 + self.out_latency
        # BAND: no band left; FINISH, done once the last band's outputs are in.
        self.done["compute"] = max(t + 1, out)

    def store(self, go):
        d = self.d
        unit = _Store(d, self.config, d.out_addr)
        edge = go
        for band in range(d.bands):
            full = yield ("obuf_set", band)
            start = max(edge, full) + 1
            # BAND: the packer and the writer finish the band before.
            while edge < start:
                if unit.idle():
                    edge = start
                    break
                edge += 1
                unit.step()
            unit.begin_band(band)
            first = edge
            while True:
                edge += 1
                cleared, _ = unit.step()
                if cleared:
                    break
            self.write_cycles += edge - first
            self.events[("obuf_clear", band)] = edge
            self.bytes_written += band_rows(d, band)[1] * d.out_row_words * self.word_bytes
        edge += 1                                    # BAND: no band left; DRAIN
        unit.step()
        drain = edge
        while True:
            edge += 1
            _, done = unit.step()
            if done:
                break
        self.write_cycles += edge - 1 - drain
        self.done["store"] = edge - 1

    def run(self, go):
        self.done = {}
        units = [self.loader(go), self.compute(go), self.store(go)]
        waiting = [next(unit) for unit in units]
        while units:
            moved = False
            for i, unit in enumerate(units):
                if unit is None:
                    continue
                value = self._event(*waiting[i])
                while value is not None:
                    moved = True
                    try:
                        waiting[i] = unit.send(value)
                    except StopIteration:
                        units[i] = None
                        break
                    value = self._event(*waiting[i])
            units_left = [u for u in units if u is not None]
            if not units_left:
                break
            if not moved:
                raise RuntimeError(f"engine model deadlock waiting for {waiting}")
        # The sequencer sees the three units done and ends the layer at the next edge.
        return max(self.done.values()) + 1


def _fetch_cycles(config, latency):
    """Edges from a layer's end (or one before the run's start) to its units' ``go``: the
    descriptor read's command, address, latency and words."""
    return 3 + latency + 512 // config.data_bits


def layer_cycles(descriptor, config, *, latency=DEFAULT_LATENCY, name="", macs=0, start=-1,
                 fold_passes=None):
    """The :class:`LayerCycles` of one layer (``descriptor``) on an engine built as
    ``config``, its descriptor fetch starting after the edge ``start`` (the end of the layer
    before; ``-1`` for a program's first layer: the run starts, at cycle 0, the cycle ``busy``
    rises, and issues its first read the cycle after). ``fold_passes`` is each fold's pass count, as
    its parameters give it (by default every fold of a matrix product takes the descriptor's
    ``passes``, the most any fold may; every fold of a vector op takes one)."""
    d = descriptor
    if d.op not in OPS:
        raise ValueError(f"descriptor op must be one of {sorted(OPS)}, not {d.op}")
    if not isinstance(latency, int) or latency < 0:
        raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
    if fold_passes is None:
        fold_passes = [d.passes if d.op == MATMUL else 1] * d.folds
    elif len(fold_passes) != d.folds or not all(1 <= p <= max(d.passes, 1)
                                                 for p in fold_passes):
        raise ValueError(f"fold_passes must give each of the {d.folds} folds 1 to "
                         f"{d.passes} passes, not {list(fold_passes)}")
    fetch = _fetch_cycles(config, latency)
    go = start + fetch + SETUP_CYCLES
    layer = LayerSchedule(d, config, latency, fold_passes)
    end = layer.run(go)
    total = end - max(start, 0)
    tmtn = config.tm * config.tn
    return LayerCycles(name=name, op=OPS[d.op], compute=layer.compute_cycles,
                       read=fetch + layer.read_cycles, write=layer.write_cycles, total=total,
                       bytes_read=64 + layer.bytes_read, bytes_written=layer.bytes_written,
                       macs=macs, utilization=macs / (tmtn * total) if total else 0.0,
                       start=max(start, 0), end=end)


def program_cycles(program, *, latency=DEFAULT_LATENCY):
    """The :class:`NetworkCycles` of a compiled :class:`~hwgen.engine.Program`: its layers
    one after the other, each fetched when the one before ends."""
    return _network_cycles(program.config, [(layer.name, layer.descriptor, layer.macs,
                                              layer.fold_passes) for layer in program.layers],
                           latency)


def metadata_cycles(meta, *, latency=DEFAULT_LATENCY):
    """The :class:`NetworkCycles` of an engine design from its metadata (what
    ``hwgen.generate(..., arch="engine")`` returns and writes to ``metadata.json``), without
    compiling the network again."""
    config = EngineConfig.from_dict(meta["engine"])
    return _network_cycles(config, [(layer["name"], Descriptor(**layer["descriptor"]),
                                     layer["macs"], tuple(layer.get("fold_passes", ())))
                                    for layer in meta["layers"]], latency)


def _network_cycles(config, layers_, latency):
    layers, start = [], -1
    for name, descriptor, macs, fold_passes in layers_:
        cycles = layer_cycles(descriptor, config, latency=latency, name=name, macs=macs,
                              start=start, fold_passes=fold_passes or None)
        layers.append(cycles)
        start = cycles.end
    total = layers[-1].end + 1 if layers else 0
    macs = sum(layer.macs for layer in layers)
    tmtn = config.tm * config.tn
    return NetworkCycles(layers=tuple(layers), total=total, macs=macs,
                         utilization=macs / (tmtn * total) if total else 0.0,
                         latency=latency)
