"""The engine configuration: what one layer-sequential engine bitstream holds."""

from dataclasses import dataclass, field

from quant.numerics import is_int

from .. import packing
from .layout import PORT_COUNTS

__all__ = ["EngineConfig", "PORT_COUNTS", "crossbar_sources", "film_lanes"]


def crossbar_sources(lane_bits):
    """For each channel position of a fold, the lanes its sum may come from: a position on a
    narrower lane takes its own lane's sum or a widest lane's (where a filter wider than its
    lane runs), a position on a widest lane its own or a narrower lane's (where the filter it
    gave its lane to runs). Lanes all of one width need no crossbar."""
    top = max(lane_bits)
    wide = [p for p, b in enumerate(lane_bits) if b == top]
    narrow = [p for p, b in enumerate(lane_bits) if b < top]
    return [tuple(sorted({p, *(narrow if b == top else wide)}))
            for p, b in enumerate(lane_bits)]


def film_lanes(tm, high_every=16, low=4, high=8):
    """FILM-QNN's lane pattern: one ``high``-bit lane in every ``high_every`` lanes (the last of
    each run, and the last lane of all), the others ``low``-bit; ``tm`` lanes in all."""
    return tuple(high if (p + 1) % high_every == 0 or p == tm - 1 else low for p in range(tm))


@dataclass(frozen=True)
class EngineConfig:
    """A layer-sequential engine: a ``tm`` x ``tn`` mixed-precision MAC array, its buffers and
    its AXI ports. Every layer of every network the engine runs shares these.

    Parameters
    ----------
    tm : int
        Output channels computed per cycle: the MAC array's lanes, and the channel group of
        the outputs it writes.
    tn : int
        Input elements per cycle: the channel group of the tensors it reads. (This engine
        keeps ``tm == tn``, so that the matrix and vector paths share one output path.)
    lane_bits : tuple of int
        Weight bits of each of the ``tm`` lanes, fixed in hardware (FILM-QNN: 15 of every 16
        lanes 4-bit, one 8-bit, :func:`film_lanes`). A filter runs on a lane at least as wide
        as its own bits.
    act_bits : int
        Width of the signed activations the MAC array multiplies: unsigned inputs of
        ``act_bits - 1`` bits or signed ones of ``act_bits`` bits.
    acc_bits : int
        Width of the signed accumulators (a layer whose worst case does not fit is refused).
    data_bits : int
        Width of the AXI4 data bus (a power of two, 32 to 1024).
    ports : int
        AXI4 ports the bus is spread over (1, 2 or 4): each bus word is cut into ``ports``
        lanes of ``data_bits / ports`` bits, lane ``k`` going to port ``k`` and stored in
        plane ``k`` of the DRAM image (:mod:`hwgen.engine.ports`), so that several of a
        processor's memory ports carry the engine's traffic together.
    addr_bits : int
        Width of AXI4 addresses: the DRAM image must fit ``2 ** addr_bits`` bytes.
    input_words : int
        Words of the input buffer (``tn`` elements each) per bank; two banks (and two more
        for the second operand of an add).
    output_words : int
        Words of the output buffer (``tm`` elements each) per bank; two banks.
    weight_words : int
        Words of the weight buffer (one k-step: ``tm`` x ``tn`` weights) per bank; two banks.
    channels : int
        Output channels a layer may have (the requantizer's multiplier table).
    family : str
        Multiplier family the lanes are packed for (a :data:`hwgen.packing.MULTIPLIERS` key).
    """

    tm: int = 16
    tn: int = 16
    lane_bits: tuple = field(default=None)
    act_bits: int = 9
    acc_bits: int = 32
    data_bits: int = 64
    ports: int = 1
    addr_bits: int = 32
    input_words: int = 2048
    output_words: int = 1024
    weight_words: int = 512
    channels: int = 1024
    family: str = "xcup"

    def __post_init__(self):
        for name in ("tm", "tn", "act_bits", "acc_bits", "data_bits", "addr_bits",
                     "input_words", "output_words", "weight_words", "channels"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"engine {name} must be a positive integer, not {value!r}")
        if self.tm != self.tn:
            raise ValueError(f"engine tm must equal tn (the matrix and vector paths share one "
                             f"output path), not tm {self.tm}, tn {self.tn}")
        lanes = film_lanes(self.tm) if self.lane_bits is None else tuple(self.lane_bits)
        if len(lanes) != self.tm or not all(is_int(b) and 2 <= b <= 8 for b in lanes):
            raise ValueError(f"engine lane_bits must be {self.tm} widths in 2..8, one per "
                             f"lane, not {self.lane_bits!r}")
        object.__setattr__(self, "lane_bits", tuple(int(b) for b in lanes))
        if self.data_bits not in (32, 64, 128, 256, 512, 1024):
            raise ValueError(f"engine data_bits must be a power of two in 32..1024, not "
                             f"{self.data_bits}")
        if not is_int(self.ports) or self.ports not in PORT_COUNTS or \
                self.data_bits // self.ports < 32:
            raise ValueError(f"engine ports must be one of "
                             f"{', '.join(map(str, PORT_COUNTS))} with lanes of at least 32 "
                             f"bits (data_bits / ports), not {self.ports!r} on a "
                             f"{self.data_bits}-bit bus")
        if not 2 <= self.act_bits <= 16:
            raise ValueError(f"engine act_bits must be in 2..16, not {self.act_bits}")
        if not 16 <= self.acc_bits <= 48:
            raise ValueError(f"engine acc_bits must be in 16..48, not {self.acc_bits}")
        if not 16 <= self.addr_bits <= 64:
            raise ValueError(f"engine addr_bits must be in 16..64, not {self.addr_bits}")
        if self.family not in packing.MULTIPLIERS:
            raise ValueError(f"engine family must be one of "
                             f"{', '.join(map(repr, packing.MULTIPLIERS))}, not {self.family!r}")

    @property
    def groups(self):
        """Per lane width: ``(bits, lanes, plan)``, the lanes in order, each group packed by
        its plan onto the family's multipliers."""
        out = []
        for bits in sorted(set(self.lane_bits)):
            lanes = tuple(p for p, b in enumerate(self.lane_bits) if b == bits)
            out.append((bits, lanes, packing.plan_group(self.family, bits, self.act_bits, True)))
        return out

    @property
    def dsp_count(self):
        """Hardware multipliers of the MAC array: one per pack of lanes and input element."""
        return sum(-(-len(lanes) // plan.lanes) for _, lanes, plan in self.groups) * self.tn

    @property
    def data_bytes(self):
        return self.data_bits // 8

    @property
    def port_bits(self):
        """Data width of each AXI4 port."""
        return self.data_bits // self.ports

    @classmethod
    def from_dict(cls, entry):
        """The configuration :meth:`as_dict` describes (its derived ``dsp`` is left out)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: (tuple(v) if k == "lane_bits" else v) for k, v in entry.items()
                      if k in names})

    def as_dict(self):
        return {"tm": self.tm, "tn": self.tn, "lane_bits": list(self.lane_bits),
                "act_bits": self.act_bits, "acc_bits": self.acc_bits,
                "data_bits": self.data_bits, "ports": self.ports, "addr_bits": self.addr_bits,
                "input_words": self.input_words, "output_words": self.output_words,
                "weight_words": self.weight_words,
                "channels": self.channels, "family": self.family, "dsp": self.dsp_count}
