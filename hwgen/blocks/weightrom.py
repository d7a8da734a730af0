"""The weight memories of a matrix-vector unit: every weight at its own width, one word per
(output fold, input fold), split into memories shaped for the fewest 18 Kbit block RAMs.

One :class:`WeightLayout` says where each weight bit lives; the
:class:`~hwgen.blocks.matvec.MatVecUnit` builds its memories from it and the cost model
(:mod:`hwgen.model`) prices the same memories, from a unit's weights or from a layer's
shape alone.
"""

from dataclasses import dataclass
from functools import lru_cache
from math import ceil

import numpy as np

__all__ = ["BLOCK_GEOMETRIES", "MEMORY_COLUMNS", "WeightLayout", "block_units",
           "split_word", "weight_layout"]

#: Geometries ``(width, depth)`` of an 18 Kbit block RAM: RAMB18E1, RAMB18E2 and ECP5's
#: DP16KD (its 36-bit mode is PDPW16KD). A RAMB36 is two of them side by side.
BLOCK_GEOMETRIES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))
#: Most block RAM columns of one geometry that share a memory (and its address counter).
MEMORY_COLUMNS = 4
# Above this many bits, the word starts with columns of the most bits per block RAM; the
# rest is split exactly (an optimal cover of a wider word repeats such columns).
_EXACT_BITS = 2048


def block_units(width, depth):
    """The fewest 18 Kbit block RAMs of one geometry that hold ``width`` x ``depth`` bits:
    the FINN-style count of a ``simd * pe * W``-bit weight word ``depth`` deep."""
    return min(ceil(width / w) * ceil(depth / d) for w, d in BLOCK_GEOMETRIES)


@lru_cache(maxsize=None)   # the cost model asks for the same shapes many times
def split_word(width, depth):
    """Widths of the memories a ``width``-bit word, ``depth`` words deep, is split into.

    Each memory is up to :data:`MEMORY_COLUMNS` block RAM columns of one geometry, and the
    columns are chosen for the fewest block RAMs in all (then the fewest columns): a column
    of geometry ``(w, d)`` holds ``w`` bits of the word in ``ceil(depth / d)`` block RAMs,
    and geometries may mix (at 1,500 words, 40 bits fit one 36-bit column of three block
    RAMs and a 4-bit one of one, where any single geometry needs five). The last memory holds
    the bits left over. The count is never more than :func:`block_units` gives.
    """
    if width < 1 or depth < 1:
        return ()
    costs = [(w, ceil(depth / d)) for w, d in BLOCK_GEOMETRIES]
    best_w, best_c = max(costs, key=lambda g: (g[0] / g[1], g[0]))
    lead = max(0, ceil((width - _EXACT_BITS) / best_w))
    rest = width - lead * best_w
    # best[x]: (block RAMs, columns) of the cheapest cover of x bits, and its last column
    # (the widest of equal covers, so that the columns fill few memories).
    best = [((0, 0), None)] + [None] * rest
    for x in range(1, rest + 1):
        for w, c in reversed(costs):
            (units, columns), _ = best[max(0, x - w)]
            score = (units + c, columns + 1)
            if best[x] is None or score < best[x][0]:
                best[x] = (score, w)
    columns, x = [best_w] * lead, rest
    while x > 0:
        w = best[x][1]
        columns.append(w)
        x = max(0, x - w)
    columns.sort(reverse=True)
    widths = []
    for w in sorted(set(columns), reverse=True):
        count = columns.count(w)
        widths += [w * MEMORY_COLUMNS] * (count // MEMORY_COLUMNS)
        if count % MEMORY_COLUMNS:
            widths.append(w * (count % MEMORY_COLUMNS))
    # The last memory takes the bits the full columns leave over.
    widths[-1] -= sum(widths) - width
    return tuple(widths)


@dataclass(frozen=True)
class WeightLayout:
    """Where every weight bit of a matrix-vector unit lives.

    Word ``out_fold * input_folds + in_fold`` holds the weights of that fold pair: element by
    element (``simd`` of them), and within an element lane by lane (``pe``), each weight as a
    ``lane_bits[lane]``-bit two's complement field. The word is cut into memories of
    ``widths`` bits (:func:`split_word`), each read at the same address.

    Attributes
    ----------
    lane_bits : tuple of int
        Width of each lane's weights.
    simd : int
        Input elements per word.
    depth : int
        Words: output folds times input folds.
    widths : tuple of int
        Bits of each memory, in word order.
    """
    lane_bits: tuple
    simd: int
    depth: int
    widths: tuple

    @property
    def word_bits(self):
        return self.simd * sum(self.lane_bits)

    @property
    def stored_bits(self):
        """Bits the memories hold: every field of every word."""
        return self.word_bits * self.depth

    @property
    def block_units(self):
        """18 Kbit block RAMs of the memories, each at its best geometry."""
        return sum(block_units(w, self.depth) for w in self.widths)

    @property
    def starts(self):
        """First word bit of each memory."""
        return tuple(int(v) for v in np.cumsum((0,) + self.widths[:-1]))

    def field(self, lane, element):
        """``(first word bit, bits)`` of lane ``lane``'s weight for input element ``element``."""
        return (element * sum(self.lane_bits) + sum(self.lane_bits[:lane]),
                self.lane_bits[lane])

    def pieces(self, weight):
        """Per memory, ``[(bits, values), ...]``: the weight fields it holds, word bit order.

        ``weight`` is the unit's ``(out_features, in_features)`` matrix. A field cut by a
        memory boundary gives a piece to each side; ``values`` are the piece's bits of each
        word, as non-negative integers.
        """
        pe = len(self.lane_bits)
        weight = np.asarray(weight, dtype=np.int64)
        nf, sf = weight.shape[0] // pe, weight.shape[1] // self.simd
        folds = weight.reshape(nf, pe, sf, self.simd)
        out = [[] for _ in self.widths]
        starts = self.starts
        memory = 0
        for element in range(self.simd):
            for lane in range(pe):
                first, bits = self.field(lane, element)
                values = folds[:, lane, :, element].reshape(-1)
                done = 0
                while done < bits:
                    while first + done >= starts[memory] + self.widths[memory]:
                        memory += 1
                    take = min(bits - done, starts[memory] + self.widths[memory] - first - done)
                    out[memory].append((take, (values >> done) & ((1 << take) - 1)))
                    done += take
        return out

    def init(self, weight):
        """The initial contents of each memory: a list of ``depth`` integers per memory."""
        words = []
        for pieces in self.pieces(weight):
            bits = np.concatenate([(values[:, None] >> np.arange(width)) & 1
                                   for width, values in pieces], axis=1).astype(np.uint8)
            packed = np.packbits(bits, axis=1, bitorder="little")
            words.append([int.from_bytes(row.tobytes(), "little") for row in packed])
        return words


def weight_layout(lane_bits, simd, depth):
    """The :class:`WeightLayout` of a unit with these lane widths, ``simd`` and word count."""
    lane_bits = tuple(int(b) for b in lane_bits)
    return WeightLayout(lane_bits, int(simd), int(depth),
                        split_word(int(simd) * sum(lane_bits), int(depth)))
