"""Resources: the five numbers every cost function returns."""

from dataclasses import asdict, dataclass

from quant.numerics import is_int

__all__ = ["KINDS", "Resources"]

#: Resource names, in report order.
KINDS = ("lut", "ff", "dsp", "bram18", "lutram")


@dataclass(frozen=True)
class Resources:
    """LUTs, flip-flops, hardware multipliers, block RAM (RAMB18 units) and LUT RAM (LUTs).

    ``lut`` counts logic LUTs only; LUTs used as memory (distributed RAM and shift registers)
    are in ``lutram``. Instances add up (``a + b``), subtract (``a - b``) and scale by an integer (``3 * r``).
    """

    lut: int = 0
    ff: int = 0
    dsp: int = 0
    bram18: int = 0
    lutram: int = 0

    def __add__(self, other):
        if not isinstance(other, Resources):
            return NotImplemented
        return Resources(*(getattr(self, k) + getattr(other, k) for k in KINDS))

    def __sub__(self, other):
        if not isinstance(other, Resources):
            return NotImplemented
        return Resources(*(getattr(self, k) - getattr(other, k) for k in KINDS))

    def __radd__(self, other):
        if other == 0:          # sum() starts from 0
            return self
        return self.__add__(other)

    def __mul__(self, n):
        if not is_int(n):
            return NotImplemented
        return Resources(*(getattr(self, k) * n for k in KINDS))

    __rmul__ = __mul__

    def as_dict(self):
        return asdict(self)

    def utilization(self, device):
        """``{kind: share of the device}`` (a fraction; over 1 means it does not fit)."""
        capacity = device.capacity()
        return {k: getattr(self, k) / capacity[k] for k in KINDS}
