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
    boundary fails the test, as does a master's ``valid`` that falls, or a payload that
    changes, before its ``ready``.

    With ``w_first`` the memory takes one write address at a time, and only once a write
    beat of its burst is waiting (WVALID held), as the AXI rules allow a slave to. A burst
    that touches a byte in ``faulty`` (a ``range``) is answered ``fault_code`` (SLVERR, 2, or
    DECERR, 3): on every read beat (its data still read), or on its write response (nothing
    written). The handshake rule is checked on the address and length of AR and AW and the
    data and last flag of W.
    """

    def __init__(self, bus, memory, *, data_bits, stall=0.0, latency=2, seed=0,
                 w_first=False, faulty=range(0), fault_code=2):
        self.bus, self.memory = bus, memory
        self.word = data_bits // 8
        self.stall, self.latency = stall, latency
        self.w_first, self.faulty, self.fault_code = w_first, faulty, fault_code
        self.rng = random.Random(seed)
        self.reads, self.writes = [], []

    def _response(self, address, beats):
        """OKAY (0), or ``fault_code`` for a burst that touches ``faulty``."""
        end = address + beats * self.word
        touches = self.faulty and address < self.faulty.stop and self.faulty.start < end
        return self.fault_code if touches else 0

    def _go(self):
        return self.rng.random() >= self.stall

    @staticmethod
    def _held(channel, offered, valid, ready, payload):
        """The AXI rule for a master's channel: once ``valid`` is high it stays high, with
        the same payload, until ``ready`` takes it. ``offered`` is the payload left waiting
        at the edge before; returns what is left waiting at this one."""
        if offered is not None:
            assert valid, f"{channel}VALID fell before {channel}READY took {offered}"
            assert payload == offered, f"{channel} changed from {offered} to {payload} " \
                                       f"while waiting for {channel}READY"
        return payload if valid and not ready else None

    def _check(self, address, beats):
        assert address % self.word == 0, f"unaligned burst at {address:#x}"
        assert (address % 4096) + beats * self.word <= 4096, \
            f"burst of {beats} beats at {address:#x} crosses a 4 KiB boundary"
        assert address + beats * self.word <= len(self.memory), \
            f"burst of {beats} beats at {address:#x} is beyond the memory"

    async def read(self, ctx):
        bus, pending, beat, cycle, offered = self.bus, [], None, 0, None
        while True:
            arready = self._go()
            ctx.set(bus.arready, arready)
            if beat is None and pending and pending[0][0] <= cycle and self._go():
                _, address, beats, code = pending[0]
                data = int.from_bytes(self.memory[address:address + self.word], "little")
                beat = (data, beats == 1, code)
                pending[0][1] += self.word
                pending[0][2] -= 1
                if pending[0][2] == 0:
                    pending.pop(0)
            ctx.set(bus.rvalid, beat is not None)
            if beat is not None:
                ctx.set(bus.rdata, beat[0])
                ctx.set(bus.rlast, beat[1])
                ctx.set(bus.rresp, beat[2])
            _, _, arvalid, araddr, arlen, rready = await ctx.tick().sample(
                bus.arvalid, bus.araddr, bus.arlen, bus.rready)
            cycle += 1
            offered = self._held("AR", offered, arvalid, arready, (araddr, arlen))
            if arready and arvalid:
                self._check(araddr, arlen + 1)
                self.reads.append((araddr, arlen + 1))
                pending.append([cycle + self.latency, araddr, arlen + 1,
                                self._response(araddr, arlen + 1)])
            if beat is not None and rready:
                beat = None

    async def write(self, ctx):
        bus, bursts, responses, held = self.bus, [], [], False
        aw_offered = w_offered = None
        while True:
            # A W-first memory raises AWREADY only while a write beat is held for a burst
            # whose address it has not taken (every address taken has all its beats).
            awready = self._go() and (not self.w_first or (held and not bursts))
            wready = bool(bursts) and self._go()
            ctx.set(bus.awready, awready)
            ctx.set(bus.wready, wready)
            ctx.set(bus.bvalid, bool(responses))
            ctx.set(bus.bresp, responses[0] if responses else 0)
            _, _, awvalid, awaddr, awlen, wvalid, wdata, wlast, bready = \
                await ctx.tick().sample(bus.awvalid, bus.awaddr, bus.awlen, bus.wvalid,
                                        bus.wdata, bus.wlast, bus.bready)
            held = bool(wvalid) and not wready
            aw_offered = self._held("AW", aw_offered, awvalid, awready, (awaddr, awlen))
            w_offered = self._held("W", w_offered, wvalid, wready, (wdata, wlast))
            if responses and bready:
                responses.pop(0)
            if wready and wvalid:
                address, beats, code = bursts[0]
                assert wlast == (beats == 1), "wlast on the wrong beat"
                if not code:
                    self.memory[address:address + self.word] = wdata.to_bytes(self.word,
                                                                              "little")
                bursts[0] = [address + self.word, beats - 1, code]
                if beats == 1:
                    bursts.pop(0)
                    responses.append(code)
            if awready and awvalid:
                self._check(awaddr, awlen + 1)
                self.writes.append((awaddr, awlen + 1))
                bursts.append([awaddr, awlen + 1, self._response(awaddr, awlen + 1)])
