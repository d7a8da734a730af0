"""An AXI4 memory for the Amaranth simulator: bursts into and out of a bytearray, with seeded
random stalls on every channel, for testing the engine's masters without cocotb.

Transfers are decided on the values sampled at each clock edge (``tick().sample``), as the
design sees them, so several testbenches driving one design never race.
"""

import random


class AxiMemory:
    """Serves ``bus`` (an AXI4 manager's ports, or a read or write half) from ``memory``.

    Every channel stalls with probability ``stall`` per cycle (ready or valid held low), and
    each read burst starts ``latency`` cycles after its address is taken. ``reads`` and
    ``writes`` record ``(address, beats)`` of each burst; an INCR burst that crosses a 4 KiB
    boundary fails the test.
    """

    def __init__(self, bus, memory, *, data_bits, stall=0.0, latency=2, seed=0):
        self.bus, self.memory = bus, memory
        self.word = data_bits // 8
        self.stall, self.latency = stall, latency
        self.rng = random.Random(seed)
        self.reads, self.writes = [], []

    def _go(self):
        return self.rng.random() >= self.stall

    def _check(self, address, beats):
        assert address % self.word == 0, f"unaligned burst at {address:#x}"
        assert (address % 4096) + beats * self.word <= 4096, \
            f"burst of {beats} beats at {address:#x} crosses a 4 KiB boundary"
        assert address + beats * self.word <= len(self.memory), \
            f"burst of {beats} beats at {address:#x} is beyond the memory"

    async def read(self, ctx):
        bus, pending, beat, cycle = self.bus, [], None, 0
        while True:
            arready = self._go()
            ctx.set(bus.arready, arready)
            if beat is None and pending and pending[0][0] <= cycle and self._go():
                _, address, beats = pending[0]
                data = int.from_bytes(self.memory[address:address + self.word], "little")
                beat = (data, beats == 1)
                pending[0][1] += self.word
                pending[0][2] -= 1
                if pending[0][2] == 0:
                    pending.pop(0)
            ctx.set(bus.rvalid, beat is not None)
            if beat is not None:
                ctx.set(bus.rdata, beat[0])
                ctx.set(bus.rlast, beat[1])
            _, _, arvalid, araddr, arlen, rready = await ctx.tick().sample(
                bus.arvalid, bus.araddr, bus.arlen, bus.rready)
            cycle += 1
            if arready and arvalid:
                self._check(araddr, arlen + 1)
                self.reads.append((araddr, arlen + 1))
                pending.append([cycle + self.latency, araddr, arlen + 1])
            if beat is not None and rready:
                beat = None

    async def write(self, ctx):
        bus, bursts, responses = self.bus, [], 0
        while True:
            awready = self._go()
            wready = bool(bursts) and self._go()
            ctx.set(bus.awready, awready)
            ctx.set(bus.wready, wready)
            ctx.set(bus.bvalid, responses > 0)
            _, _, awvalid, awaddr, awlen, wvalid, wdata, wlast, bready = \
                await ctx.tick().sample(bus.awvalid, bus.awaddr, bus.awlen, bus.wvalid,
                                        bus.wdata, bus.wlast, bus.bready)
            if responses and bready:
                responses -= 1
            if wready and wvalid:
                address, beats = bursts[0]
                assert wlast == (beats == 1), "wlast on the wrong beat"
                self.memory[address:address + self.word] = wdata.to_bytes(self.word, "little")
                bursts[0] = [address + self.word, beats - 1]
                if beats == 1:
                    bursts.pop(0)
                    responses += 1
            if awready and awvalid:
                self._check(awaddr, awlen + 1)
                self.writes.append((awaddr, awlen + 1))
                bursts.append([awaddr, awlen + 1])
