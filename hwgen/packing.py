"""Exact DSP packing: several low-bit weight x activation products from one hardware multiplier.

A hardware multiplier (a DSP48 slice, an ECP5 MULT18X18D) has a wide signed ``A`` port, a
narrower signed ``B`` port and a product ``P`` wider than a single low-bit product needs. The
lane planner :func:`plan_lanes` packs the weights of ``L`` filters into ``A`` and feeds one
activation into ``B``, so one multiplication gives ``L`` products, one per lane, and recovers
every lane *exactly*, for every input, with a little fabric logic.

The module is long on purpose: the exactness proofs below sit beside the planner and the
bit-level model they prove, so that a change to one is read against the others.

Notation
--------
``W`` weight bits, ``Aa`` activation bits, ``L`` lanes, ``k`` field width (bits per lane).
Weights ``w_i`` lie in ``[w_lo, w_hi]`` (narrow range ``±(2^(W-1) - 1)``, or full range
``-2^(W-1) .. 2^(W-1) - 1``), activations ``x`` in ``[x_lo, x_hi]`` (unsigned ``0 .. 2^Aa - 1``
or signed ``-2^(Aa-1) .. 2^(Aa-1) - 1``), so each product ``p_i = w_i x`` lies in
``[p_lo, p_hi]``. ``[c]`` is 1 when the condition ``c`` holds, else 0.

The packed operand (shared by both schemes)
-------------------------------------------
The weights of one lane group form one signed constant, with the plan's auxiliary bits beside
it in one word (:func:`rom_word`)::

    A = sum_i w_i 2^(k i)
    P = x A = sum_i p_i 2^(k i)      (the exact product: it fits the multiplier's P port)

The weights are stored at their own width and the word is formed as they are read
(:class:`~hwgen.blocks.packer.WeightPacker`: ``A = D - S``, ``D`` the weights' fields without
the lower lanes' sign bits and ``S`` those sign bits, a subtraction a DSP48's pre-adder can
take), equal to :func:`rom_word` for every input.

Lanes overlap in ``P`` (a negative lane borrows from the lanes above it), so the ``k``-bit field
``f_i = floor(P / 2^(k i)) mod 2^k`` is not ``p_i`` in general. Two exact ways to undo that:

Scheme ``"borrow"``: per-lane borrow tracking in fabric
-------------------------------------------------------
Let ``S_i = sum_{j<i} p_j 2^(k j)`` (the lanes below ``i``; ``S_0 = 0``, ``S_L = P``) and
``d_i = [S_i < 0]``. Choose ``k`` with ``|p| <= 2^k - 1`` for every product, that is
``k = bit_length(max(-p_lo, p_hi))``. Then:

1. ``|S_i| <= (2^k - 1) sum_{j<i} 2^(k j) = 2^(k i) - 1``, so ``floor(S_i / 2^(k i)) = -d_i``.
2. ``S_i`` is negative exactly when its topmost nonzero term is: that term has magnitude at
   least ``2^(k j)``, more than all the terms below it together.
3. ``S_{i+1} = 2^(k i) q_i + (S_i + d_i 2^(k i))`` with ``q_i = p_i - d_i`` and the bracket in
   ``[0, 2^(k i))``; hence ``q_i = floor(S_{i+1} / 2^(k i))`` and ``[q_i < 0] = d_{i+1}``.
   Since ``floor(P / 2^(k i)) = q_i + 2^k sum_{j>i} p_j 2^(k (j-i-1))``, the field is
   ``f_i = q_i mod 2^k``.
4. ``q_i`` lies in ``[p_lo - 1, p_hi]``, inside ``[-2^k, 2^k - 1]``: it is the ``(k+1)``-bit two's
   complement number whose low ``k`` bits are ``f_i`` and whose sign bit is ``d_{i+1}``.

So every lane is ``p_i = {d_{i+1}, f_i} + d_i`` (a ``(k+1)``-bit signed value plus a 0/1
increment), and only the ``d_i`` are needed:

* ``d_0 = 0`` and ``d_L = [P < 0]``, the sign bit of the product.
* For ``0 < i < L``: ``S_i = x A_i`` with ``A_i = sum_{j<i} w_j 2^(k j)``, the lanes of the
  packed constant below ``i``. So ``d_i = [x != 0] [A_i != 0] ([x < 0] xor [A_i < 0])``.
  When ``max|w| <= 2^(k-1) - 1`` (always, for activations of 2 bits or more; the planner widens
  ``k`` otherwise), ``|A_i| < 2^(k i - 1)``, so ``A_i`` is the sign-extended low ``k i`` bits of
  ``A`` and ``[A_i < 0]`` is simply bit ``k i - 1`` of ``A``. For unsigned activations
  ``d_i = [x != 0] & A[k i - 1]``: no ROM bit beyond ``A`` at all. For signed activations the
  ROM holds one extra bit per lane boundary, ``z_i = [A_i != 0]`` (some lower weight is
  nonzero), and ``d_i = [x != 0] & z_i & (A[k i - 1] xor x_sign)``.

Fabric cost: one ``(k+1)``-bit incrementer per lane above lane 0, one gate per ``d_i``.

Scheme ``"postadd"``: sign correction through the multiplier's post-adder
---------------------------------------------------------------------------
Let ``n_i = [p_i < 0] = [x != 0] [w_i != 0] ([x < 0] xor [w_i < 0])``, known from the operands
before the multiplication (the weight signs are ROM bits next to ``A``). With a ``k`` such that
every product lies in ``[-2^k, 2^k - 1]`` (``k = bit_length(max(-p_lo - 1, p_hi))``), add the
correction ``C = sum_{i<L-1} n_i 2^(k (i+1))`` in the post-adder (a DSP48's ``C`` port)::

    P' = x A + C = sum_{i<L-1} u_i 2^(k i) + p_{L-1} 2^(k (L-1)),   u_i = p_i + 2^k n_i

Each ``u_i = p_i mod 2^k`` lies in ``[0, 2^k)``, so the lower lanes no longer overlap: bits
``[k i, k i + k)`` of ``P'`` are exactly ``u_i``, ``p_i = {n_i, u_i}`` as a ``(k+1)``-bit two's
complement number, and the top lane is ``P' >> k (L-1)`` (arithmetic shift). The extraction is
wiring; the fabric computes only the ``n_i`` (one small gate per lane, ROM bits ``[w_i < 0]``
and, for signed activations, ``[w_i > 0]``).

Lanes, and the comparison with FINN
-----------------------------------
``A`` must hold the top lane's ``W`` weight bits above ``k (L - 1)`` lower bits (one more for
full-range weights, whose most negative value needs it), so ``L = 1 + (A_bits - W - s) // k``
with ``s = 0`` for narrow-range weights, 1 otherwise; the planner checks the exact ranges of
``A``, ``P`` (or ``P'``) and ``B`` rather than the formula. FINN's packing formula is the same
with ``k = W + Aa - 1``; here ``k`` is the bit length of the largest product magnitude, which is
never more: ``W + Aa - 1`` for unsigned activations with ``W >= 3``, ``Aa`` for ``W = 2``
(weights ``-1, 0, 1``), and ``W + Aa - 2`` for signed activations with narrow-range weights
(``|p| <= (2^(W-1) - 1) 2^(Aa-1) < 2^(W+Aa-2)``).

Both schemes extract every lane every cycle; lanes are then accumulated in fabric at full width,
so the accumulation ``depth`` never limits the packing (it only sizes :attr:`LanePlan.acc_bits`).
The planner picks the scheme with the most lanes, ties going to the lower estimated LUT cost:
``"postadd"`` on multipliers with a post-adder (DSP48E1, DSP48E2), ``"borrow"`` elsewhere.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from quant import numerics
from quant.numerics import is_int

__all__ = [
    "PackingError", "Multiplier", "as_multiplier", "DSP48E1", "DSP48E2", "MULT18X18D",
    "MULTIPLIERS", "SCHEMES",
    "LanePlan", "plan_lanes", "plan_group", "swapped", "finn_lanes", "lane_table", "pack_weights", "unpack_weights",
    "rom_word", "split_word", "multiply_packed", "extract_lanes", "packed_products",
]

SCHEMES = ("borrow", "postadd")



class PackingError(ValueError):
    """Weights and activations of these widths cannot be packed onto the multiplier."""


@dataclass(frozen=True)
class Multiplier:
    """Geometry of a hardware multiplier: ``P = A * B`` with signed two's complement ports.

    Parameters
    ----------
    name : str
    a_bits : int
        Width of the wide multiplier input ``A``, which holds the packed weights.
    b_bits : int
        Width of the multiplier input ``B``, which holds the activation.
    p_bits : int
        Width of the product ``P``.
    post_adder : bool
        Whether ``P = A * B + C`` fits in the same primitive (the DSP48 ``C`` port); the
        ``"postadd"`` scheme needs it.
    """
    name: str
    a_bits: int
    b_bits: int
    p_bits: int
    post_adder: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"multiplier name must be a non-empty string, not {self.name!r}")
        for field in ("a_bits", "b_bits", "p_bits"):
            value = getattr(self, field)
            if not is_int(value) or value < 2:
                raise ValueError(f"multiplier {field} must be an integer of at least 2, "
                                 f"not {value!r}")
        if not isinstance(self.post_adder, bool):
            raise TypeError(f"multiplier post_adder must be a bool, not {self.post_adder!r}")

    @classmethod
    def generic(cls, a_bits, b_bits, p_bits=None, *, post_adder=False, name=None):
        """A multiplier of any geometry; ``p_bits`` defaults to the full ``a_bits + b_bits``."""
        p_bits = a_bits + b_bits if p_bits is None else p_bits
        return cls(name or f"MUL{a_bits}X{b_bits}", a_bits, b_bits, p_bits, post_adder)


#: Xilinx 7-series DSP slice: 25 x 18 signed multiplier, 48-bit P, C port into the post-adder.
DSP48E1 = Multiplier("DSP48E1", 25, 18, 48, post_adder=True)
#: Xilinx UltraScale+ DSP slice: 27 x 18 signed multiplier, 48-bit P, C port.
DSP48E2 = Multiplier("DSP48E2", 27, 18, 48, post_adder=True)
#: Lattice ECP5 sysDSP multiplier: 18 x 18 signed, 36-bit product, no post-adder of its own.
MULT18X18D = Multiplier("MULT18X18D", 18, 18, 36)

#: Device family (the ``synth_xilinx -family`` / ``synth_ecp5`` names) -> multiplier.
MULTIPLIERS = {"xc7": DSP48E1, "xcup": DSP48E2, "ecp5": MULT18X18D}


def _fits_signed(lo, hi, bits):
    return -(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1


def _signed_bits(lo, hi):
    """Bits of the smallest two's complement type holding ``[lo, hi]`` (at least 1)."""
    return max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length() if hi > 0 else 0) + 1


def _a(n):
    """The indefinite article for a number said aloud: "an 8-bit", "a 12-bit", "an 18-bit"."""
    return "an" if n in (8, 11, 18) or str(n).startswith("8") else "a"


def _weight_range(bits, narrow):
    return numerics.weight_range(bits) if narrow else numerics.int_range(bits, True)


def _corner_range(a, b):
    """Range of ``u * v`` for ``u`` in ``[a0, a1]`` and ``v`` in ``[b0, b1]``."""
    corners = [u * v for u in a for v in b]
    return min(corners), max(corners)


@dataclass(frozen=True)
class LanePlan:
    """How weights of one precision are packed onto a multiplier, and how lanes are recovered.

    Built by :func:`plan_lanes`; every derived number is a property, so the hardware and the
    tests never re-derive them.

    Attributes
    ----------
    multiplier : Multiplier
    weight_bits, act_bits : int
    act_signed, narrow : bool
        Activation signedness; narrow-range (``±(2^(W-1) - 1)``) or full-range weights.
    depth : int
        Number of products each lane's consumer accumulates (sizes :attr:`acc_bits`).
    scheme : str
        ``"borrow"`` or ``"postadd"`` (see the module documentation).
    lanes : int
        Products per multiplication.
    field_bits : int
        ``k``: lane ``i`` occupies bits ``[k i, k i + k)`` of the product.
    """
    multiplier: Multiplier
    weight_bits: int
    act_bits: int
    act_signed: bool
    narrow: bool
    depth: int
    scheme: str
    lanes: int
    field_bits: int

    #: The multiplier port holding the packed weight constant.
    packed_operand = "A"
    #: The multiplier port holding the activation.
    activation_operand = "B"

    @property
    def offsets(self):
        """Bit offset of each lane in the packed constant and in the product."""
        return tuple(self.field_bits * i for i in range(self.lanes))

    @property
    def weight_range(self):
        return _weight_range(self.weight_bits, self.narrow)

    @property
    def act_range(self):
        return numerics.int_range(self.act_bits, self.act_signed)

    @property
    def product_range(self):
        """Inclusive range of one lane's product ``w x``."""
        return _corner_range(self.weight_range, self.act_range)

    @property
    def product_bits(self):
        """Width of each recovered (signed) lane product: ``field_bits + 1``."""
        return self.field_bits + 1

    @property
    def packed_range(self):
        """Inclusive range of the packed constant ``A``."""
        lo, hi = self.weight_range
        scale = sum(1 << off for off in self.offsets)
        return lo * scale, hi * scale

    @property
    def packed_bits(self):
        """Width of the packed constant as stored (two's complement; at most ``A``'s width)."""
        return _signed_bits(*self.packed_range)

    @property
    def result_range(self):
        """Inclusive range of the multiplier result (``x A``, plus ``C`` for ``"postadd"``)."""
        lo, hi = _corner_range(self.act_range, self.packed_range)
        if self.scheme == "postadd" and self.lanes > 1:
            top = self.field_bits * (self.lanes - 1)
            p_lo, p_hi = self.product_range
            # P' = (lanes below the top, each in [0, 2^k)) + p_{L-1} 2^top.
            lo = max(lo, p_lo << top)
            hi = min(hi + (1 << top) - 1, (p_hi << top) + (1 << top) - 1)
        return lo, hi

    @property
    def result_bits(self):
        """Width of the multiplier result as registered (at most ``P``'s width)."""
        return _signed_bits(*self.result_range)

    @property
    def aux_layout(self):
        """Meaning of each ROM bit stored above the packed constant, bit 0 first."""
        L = self.lanes
        if self.scheme == "borrow":
            if not self.act_signed:
                return ()
            return tuple(f"lanes below {i} nonzero" for i in range(1, L))
        if not self.act_signed:
            return tuple(f"w{i} < 0" for i in range(L - 1))
        return tuple(name for i in range(L - 1) for name in (f"w{i} < 0", f"w{i} > 0"))

    @property
    def aux_bits(self):
        """Number of ROM bits stored above the packed constant."""
        return len(self.aux_layout)

    @property
    def word_bits(self):
        """Width of one ROM word: the packed constant, then the auxiliary bits."""
        return self.packed_bits + self.aux_bits

    @property
    def correction_bits(self):
        """Bit positions the correction uses.

        ``"borrow"``: bit ``k i - 1`` of the packed constant gives the sign of the lanes below
        lane ``i`` (``i = 1 .. L-1``). ``"postadd"``: the post-adder input has bit
        ``k (i + 1)`` set when lane ``i``'s product is negative (``i = 0 .. L-2``).
        """
        k = self.field_bits
        if self.scheme == "borrow":
            return tuple(k * i - 1 for i in range(1, self.lanes))
        return tuple(k * (i + 1) for i in range(self.lanes - 1))

    @property
    def acc_bits(self):
        """Signed width that holds the sum of ``depth`` products of one lane."""
        lo, hi = self.product_range
        return _signed_bits(min(lo, 0) * self.depth, max(hi, 0) * self.depth)

    @property
    def finn_lanes(self):
        """Lanes FINN's packing formula gives for the same multiplier and widths."""
        return finn_lanes(self.multiplier, self.weight_bits, self.act_bits, narrow=self.narrow)

    @property
    def lut_estimate(self):
        """Rough fabric cost of the lane recovery, in LUTs (an incrementer bit counts as one).

        Only used to break ties between schemes of equal density.
        """
        L, k = self.lanes, self.field_bits
        if self.scheme == "borrow":
            return (L - 1) * (k + 2)
        return L - 1

    def as_dict(self):
        """The plan as plain JSON-ready values."""
        return {
            "multiplier": self.multiplier.name, "weight_bits": self.weight_bits,
            "act_bits": self.act_bits, "act_signed": self.act_signed, "narrow": self.narrow,
            "depth": self.depth, "scheme": self.scheme, "lanes": self.lanes,
            "finn_lanes": self.finn_lanes, "field_bits": self.field_bits,
            "offsets": list(self.offsets), "packed_operand": self.packed_operand,
            "activation_operand": self.activation_operand, "packed_bits": self.packed_bits,
            "aux_bits": self.aux_bits, "aux_layout": list(self.aux_layout),
            "word_bits": self.word_bits, "product_bits": self.product_bits,
            "result_bits": self.result_bits, "correction_bits": list(self.correction_bits),
            "acc_bits": self.acc_bits,
        }


def as_multiplier(multiplier):
    """A :class:`Multiplier`, given one or a key of :data:`MULTIPLIERS`."""
    if isinstance(multiplier, Multiplier):
        return multiplier
    if isinstance(multiplier, str) and multiplier in MULTIPLIERS:
        return MULTIPLIERS[multiplier]
    raise TypeError(f"multiplier must be a Multiplier or one of "
                    f"{', '.join(map(repr, MULTIPLIERS))}, not {multiplier!r}")


def _field_bits(scheme, p_lo, p_hi, w_lo, w_hi):
    if scheme == "postadd":
        # Every product in [-2^k, 2^k - 1].
        return max(1, (-p_lo - 1).bit_length(), p_hi.bit_length())
    # Every product in [-(2^k - 1), 2^k - 1], and every weight within ±(2^(k-1) - 1) so that
    # bit k i - 1 of the packed constant is the sign of its lanes below i.
    return max(1, (-p_lo).bit_length(), p_hi.bit_length(), max(-w_lo, w_hi).bit_length() + 1)


def _plan(mult, weight_bits, act_bits, act_signed, narrow, depth, scheme):
    """The plan with the most lanes for one scheme, or a PackingError saying what does not fit."""
    tag = f"W{weight_bits}A{act_bits}"
    kind = "signed" if act_signed else "unsigned"
    need_b = act_bits if act_signed else act_bits + 1
    if need_b > mult.b_bits:
        most = mult.b_bits if act_signed else mult.b_bits - 1
        raise PackingError(
            f"{tag} needs {_a(act_bits)} {act_bits}-bit {kind} activation in the "
            f"{mult.b_bits}-bit signed B port of {mult.name}, which holds {kind} activations "
            f"of at most {most} bits")
    w_lo, w_hi = _weight_range(weight_bits, narrow)
    range_name = "narrow-range" if narrow else "full-range"
    if not _fits_signed(w_lo, w_hi, mult.a_bits):
        raise PackingError(
            f"{tag}: {weight_bits}-bit {range_name} weights do not fit the {mult.a_bits}-bit "
            f"signed A port of {mult.name}; not even one lane fits")
    if scheme == "postadd" and not mult.post_adder:
        raise PackingError(f"{tag}: scheme 'postadd' needs a multiplier with a post-adder; "
                           f"{mult.name} has none (use scheme 'borrow')")
    x_lo, x_hi = numerics.int_range(act_bits, act_signed)
    p_lo, p_hi = _corner_range((w_lo, w_hi), (x_lo, x_hi))
    k = _field_bits(scheme, p_lo, p_hi, w_lo, w_hi)
    best = None
    for lanes in range(1, mult.a_bits + 1):
        plan = LanePlan(mult, weight_bits, act_bits, act_signed, narrow, depth, scheme,
                        lanes, k)
        if plan.packed_bits > mult.a_bits or plan.result_bits > mult.p_bits:
            break
        best = plan
    if best is None:
        bits = LanePlan(mult, weight_bits, act_bits, act_signed, narrow, depth, scheme, 1,
                        k).result_bits
        raise PackingError(
            f"{tag}: one {range_name} weight x {kind} activation product needs {bits} bits, "
            f"more than the {mult.p_bits}-bit P port of {mult.name}")
    return best


@lru_cache(maxsize=None)   # plans are immutable; the cost model asks for the same ones often
def plan_lanes(multiplier, weight_bits, act_bits, act_signed=False, narrow=True, depth=1,
               scheme=None):
    """Plan the densest exact packing of ``weight_bits`` x ``act_bits`` products.

    Parameters
    ----------
    multiplier : Multiplier or str
        A :class:`Multiplier` or a key of :data:`MULTIPLIERS` (``"xc7"``, ``"xcup"``,
        ``"ecp5"``).
    weight_bits : int
        Weight width ``W`` (at least 2).
    act_bits : int
        Activation width ``Aa`` (at least 1).
    act_signed : bool
        Signed (two's complement) or unsigned activations.
    narrow : bool
        Narrow-range weights ``±(2^(W-1) - 1)`` (the project's weights), or full range.
    depth : int
        How many products of a lane are summed downstream. Lanes are extracted every cycle and
        summed in fabric at full width, so any depth is exact; it only sizes ``acc_bits``.
    scheme : {None, "borrow", "postadd"}
        ``None`` picks the scheme with the most lanes, ties to the lower LUT estimate.

    Raises
    ------
    PackingError
        When the activation does not fit ``B``, one weight does not fit ``A``, one product
        does not fit ``P``, or ``"postadd"`` is asked of a multiplier without a post-adder.
    """
    mult = as_multiplier(multiplier)
    for name, value, least in (("weight_bits", weight_bits, 2), ("act_bits", act_bits, 1),
                               ("depth", depth, 1)):
        if not is_int(value) or value < least:
            raise ValueError(f"{name} must be an integer of at least {least}, not {value!r}")
    for name, value in (("act_signed", act_signed), ("narrow", narrow)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, not {value!r}")
    if scheme is not None and scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of None, {', '.join(map(repr, SCHEMES))}, "
                         f"not {scheme!r}")
    args = (mult, int(weight_bits), int(act_bits), bool(act_signed), bool(narrow), int(depth))
    if scheme is not None:
        return _plan(*args, scheme)
    plans, errors = [], []
    for s in SCHEMES:
        if s == "postadd" and not mult.post_adder:
            continue
        try:
            plans.append(_plan(*args, s))
        except PackingError as e:
            errors.append(e)
    if not plans:
        raise errors[0]
    return max(plans, key=lambda p: (p.lanes, -p.lut_estimate))


def swapped(multiplier):
    """The same multiplier with its ports' roles exchanged: the weights on the narrow port and
    the activation on the wide one (for activations too wide for the narrow port)."""
    mult = as_multiplier(multiplier)
    return Multiplier(f"{mult.name}/swapped", mult.b_bits, mult.a_bits, mult.p_bits,
                      mult.post_adder)


def plan_group(multiplier, weight_bits, act_bits, act_signed=False):
    """The plan for one precision group of MAC lanes, or None when its products must be built
    from LUTs.

    The densest plan of :func:`plan_lanes`; when the activation does not fit the narrow ``B``
    port (raw accumulators, global sums), a plan on the :func:`swapped` multiplier (one lane:
    the activation on the wide port); when neither fits, None.
    """
    try:
        return plan_lanes(multiplier, weight_bits, act_bits, act_signed=act_signed)
    except PackingError:
        pass
    try:
        return plan_lanes(swapped(multiplier), weight_bits, act_bits, act_signed=act_signed)
    except PackingError:
        return None


def finn_lanes(multiplier, weight_bits, act_bits, narrow=True):
    """FINN's packing formula ``1 + (A - W - s) // (W + Aa - 1)``, ``s = 0`` if narrow else 1."""
    mult = as_multiplier(multiplier)
    s = 0 if narrow else 1
    return max(0, 1 + (mult.a_bits - weight_bits - s) // (weight_bits + act_bits - 1))


def lane_table(multiplier, bits_range=range(2, 9), act_signed=False, narrow=True, scheme=None):
    """Our lanes and FINN's for every ``(W, Aa)`` in ``bits_range`` x ``bits_range``.

    Returns a list of dicts with ``weight_bits``, ``act_bits``, ``lanes``, ``finn_lanes``,
    ``field_bits`` and ``scheme`` (``lanes`` 0 and ``scheme`` None where nothing fits), and the
    ROM bits per weight: ``stored_bits_per_weight`` as the weights are stored (at their own
    width, packed as they are read) and ``prepacked_bits_per_weight``, what a ROM of
    :func:`rom_word` words would need (None where nothing fits).
    """
    rows = []
    for w in bits_range:
        for a in bits_range:
            try:
                plan = plan_lanes(multiplier, w, a, act_signed=act_signed, narrow=narrow,
                                  scheme=scheme)
                ours = {"lanes": plan.lanes, "field_bits": plan.field_bits,
                        "scheme": plan.scheme, "stored_bits_per_weight": w,
                        "prepacked_bits_per_weight": round(plan.word_bits / plan.lanes, 2)}
            except PackingError:
                ours = {"lanes": 0, "field_bits": None, "scheme": None,
                        "stored_bits_per_weight": w, "prepacked_bits_per_weight": None}
            rows.append({"weight_bits": w, "act_bits": a} | ours
                        | {"finn_lanes": finn_lanes(multiplier, w, a, narrow=narrow)})
    return rows


# -- the bit-level model ---------------------------------------------------------------------------
#
# The functions below work on Python ints and, elementwise, on NumPy integer arrays (int64 when
# the values fit, object arrays otherwise): they use only +, -, *, <<, >>, &, | and comparisons,
# which mean the same on both. They compute exactly what the hardware computes.

def _as_weights(plan, weights):
    w = np.asarray(weights)
    if w.shape[-1:] != (plan.lanes,):
        raise ValueError(f"weights must have {plan.lanes} lanes in the last axis, not shape "
                         f"{w.shape}")
    if w.size and not np.issubdtype(w.dtype, np.integer) and w.dtype != object:
        raise TypeError(f"weights must be integers, not {w.dtype}")
    lo, hi = plan.weight_range
    if w.size and (w.min() < lo or w.max() > hi):
        bad = np.unravel_index(np.argmax((w < lo) | (w > hi)), w.shape)
        raise ValueError(f"weights must lie in the {plan.weight_bits}-bit "
                         f"{'narrow' if plan.narrow else 'full'} range {lo}..{hi}; weight "
                         f"{tuple(int(i) for i in bad)} is {w[bad]}")
    if w.ndim == 1:
        return [int(v) for v in w]
    dtype = np.int64 if plan.word_bits <= 62 and plan.result_bits <= 62 else object
    return [w[..., i].astype(dtype) for i in range(plan.lanes)]


def _flag(condition):
    """A 0/1 integer from a bool or a bool array."""
    return condition * 1


def pack_weights(plan, weights):
    """ROM contents for one lane group: ``(packed_constant, aux)``.

    ``weights`` has ``plan.lanes`` entries (lane 0 first), or shape ``(..., lanes)`` for many
    groups at once. ``packed_constant`` is the signed integer ``sum_i w_i 2^(k i)``; ``aux`` the
    unsigned integer of :attr:`LanePlan.aux_layout` bits.
    """
    w = _as_weights(plan, weights)
    packed = 0
    for off, wi in zip(plan.offsets, w):
        packed = packed + (wi << off)
    aux = 0
    if plan.scheme == "borrow":
        if plan.act_signed:
            nonzero = 0
            for i in range(1, plan.lanes):
                nonzero = nonzero | _flag(w[i - 1] != 0)
                aux = aux | (nonzero << (i - 1))
    else:
        step = 2 if plan.act_signed else 1
        for i in range(plan.lanes - 1):
            aux = aux | (_flag(w[i] < 0) << (step * i))
            if plan.act_signed:
                aux = aux | (_flag(w[i] > 0) << (step * i + 1))
    return packed, aux


def unpack_weights(plan, packed, aux):
    """The inverse of :func:`pack_weights` for one lane group: the list of lane weights."""
    packed, aux, k = int(packed), int(aux), plan.field_bits
    weights = []
    for i in range(plan.lanes - 1):
        r = packed & ((1 << k) - 1)
        if plan.scheme == "postadd":
            negative = (aux >> ((2 if plan.act_signed else 1) * i)) & 1
            w = r - (1 << k) if negative else r
        else:
            w = r - (1 << k) if r >> (k - 1) else r
        weights.append(w)
        packed = (packed - w) >> k
    weights.append(packed)
    return weights


def rom_word(plan, weights):
    """One ROM word (unsigned, :attr:`LanePlan.word_bits` wide): packed constant, then aux."""
    packed, aux = pack_weights(plan, weights)
    return (packed & ((1 << plan.packed_bits) - 1)) | (aux << plan.packed_bits)


def split_word(plan, word):
    """``(packed_constant, aux)`` of a ROM word (the inverse of :func:`rom_word`)."""
    word = int(word)
    packed = word & ((1 << plan.packed_bits) - 1)
    if packed >> (plan.packed_bits - 1):
        packed -= 1 << plan.packed_bits
    return packed, word >> plan.packed_bits


def _act_flags(plan, x):
    nonzero = _flag(x != 0)
    negative = _flag(x < 0) if plan.act_signed else 0
    return nonzero, negative


def _postadd_signs(plan, aux, x):
    """``n_i = [p_i < 0]`` for lanes ``0 .. L-2``, from the activation and the ROM bits."""
    nonzero, negative = _act_flags(plan, x)
    signs = []
    for i in range(plan.lanes - 1):
        if plan.act_signed:
            w_neg, w_pos = (aux >> (2 * i)) & 1, (aux >> (2 * i + 1)) & 1
            signs.append(nonzero & ((negative & w_pos) | ((1 - negative) & w_neg)))
        else:
            signs.append(nonzero & ((aux >> i) & 1))
    return signs


def multiply_packed(plan, packed, aux, x):
    """What the multiplier computes: ``x * A`` (``"borrow"``) or ``x * A + C`` (``"postadd"``)."""
    result = x * packed
    if plan.scheme == "postadd":
        for pos, n in zip(plan.correction_bits, _postadd_signs(plan, aux, x)):
            result = result + (n << pos)
    return result


def extract_lanes(plan, result, x, packed, aux):
    """Recover the lane products from the multiplier result, as the hardware does.

    Reads only the low :attr:`LanePlan.result_bits` bits of ``result`` (sign-extended), the
    activation's sign and zeroness, the packed constant's correction bits and the ROM aux bits.
    """
    k, L = plan.field_bits, plan.lanes
    width = plan.result_bits
    mask = (1 << width) - 1
    r = result & mask
    r = r - ((r >> (width - 1)) << width)          # the registered, sign-extended word
    field = (1 << k) - 1
    if plan.scheme == "postadd":
        signs = _postadd_signs(plan, aux, x)
        lanes = [((r >> (k * i)) & field) - (signs[i] << k) for i in range(L - 1)]
        top = r >> (k * (L - 1))
        top = (top & ((1 << (k + 1)) - 1))
        lanes.append(top - ((top >> k) << (k + 1)))
        return lanes
    nonzero, negative = _act_flags(plan, x)
    borrow = [0]                                    # d_0 = 0
    for i in range(1, L):
        a_neg = (packed >> (k * i - 1)) & 1
        if plan.act_signed:
            below = (aux >> (i - 1)) & 1
            borrow.append(nonzero & below & (a_neg ^ negative))
        else:
            borrow.append(nonzero & a_neg)
    borrow.append(_flag(r < 0))                     # d_L: the sign of P
    return [((r >> (k * i)) & field) - (borrow[i + 1] << k) + borrow[i] for i in range(L)]


def packed_products(plan, weights, x):
    """The whole scheme on integers: pack, multiply, extract. Equals ``w_i * x`` lane by lane."""
    packed, aux = pack_weights(plan, weights)
    if not isinstance(packed, int):
        x = np.asarray(x).astype(packed.dtype)
    return extract_lanes(plan, multiply_packed(plan, packed, aux, x), x, packed, aux)
