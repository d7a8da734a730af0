"""The line buffer's geometry and its exact cycle model (:class:`WindowGeometry`): the
arithmetic :class:`~hwgen.blocks.SlidingWindow` builds its hardware from, and the beat
timing the scheduler follows."""

import bisect
from functools import lru_cache

import numpy as np

from .timing import WindowTiming

__all__ = ["WindowGeometry", "window_timing"]


class WindowGeometry:
    """Window arithmetic shared by the hardware and its cycle model."""

    def __init__(self, height, width, folds, kernel, stride, padding, taps=1, split=1):
        self.height, self.width, self.folds, self.taps = height, width, folds, taps
        # Each output beat leaves as ``split`` beats through a width converter.
        self.split = split
        (self.kh, self.kw), (self.sh, self.sw), (self.ph, self.pw) = kernel, stride, padding
        self.out_h = (height + 2 * self.ph - self.kh) // self.sh + 1
        self.out_w = (width + 2 * self.pw - self.kw) // self.sw + 1
        # Input rows that some window reads: they are the only rows written to the buffer.
        self.last_row = min(height - 1, (self.out_h - 1) * self.sh - self.ph + self.kh - 1)
        self.stored = np.array([y <= self.last_row and (y + self.ph) % self.sh < self.kh
                                for y in range(height)])
        self.stored_before = np.concatenate([[0], np.cumsum(self.stored)])
        self.stored_rows = int(self.stored_before[-1])
        # Stored rows given back after each output row: those the next row no longer reads
        # (after the last output row, all rows of the frame).
        firsts = [self.first_row(oy) for oy in range(self.out_h)] + [height]
        self.release = [int(self.stored_before[firsts[oy + 1]] - self.stored_before[firsts[oy]])
                        for oy in range(self.out_h)]
        # Stored rows one window spans: the buffer must hold at least that many.
        self.window_rows = max(
            int(self.stored_before[min(height, oy * self.sh - self.ph + self.kh)]
                - self.stored_before[self.first_row(oy)]) for oy in range(self.out_h))
        self.in_beats = height * width * folds
        # An output beat carries ``taps`` consecutive (ky, kx, channel fold) positions.
        self.window_beats = self.kh * self.kw * folds // taps
        self.out_beats = self.out_h * self.out_w * self.window_beats
        # Input beat read by each tap of each output beat of output row 0 (row oy adds
        # oy * sh rows), -1 for padding.
        ox, ky, kx, cf = np.meshgrid(np.arange(self.out_w), np.arange(self.kh),
                                     np.arange(self.kw), np.arange(folds), indexing="ij")
        self._row_ky, self._row_cf = ky.ravel(), cf.ravel()
        self._row_ix = (ox * self.sw - self.pw + kx).ravel()

    def first_row(self, oy):
        return max(0, oy * self.sh - self.ph)

    def sources(self, oy):
        """Input beat index within the frame of each tap of each output beat of row ``oy``
        (-1: padding), as an ``(output beats, taps)`` array."""
        iy = oy * self.sh - self.ph + self._row_ky
        ix = self._row_ix
        inside = (iy >= 0) & (iy < self.height) & (ix >= 0) & (ix < self.width)
        return np.where(inside, (iy * self.width + ix) * self.folds + self._row_cf,
                        -1).reshape(-1, self.taps)

    def schedule(self, offers, frames, rows):
        """Exact transfer cycles of the hardware with a ``rows``-row buffer, output always ready.

        ``offers[i]`` is the first cycle input beat ``i`` (of ``frames`` frames back to back)
        is offered; an offered beat waits until the block takes it. Returns the input and
        output transfer cycles (int64 arrays).

        The hardware rules, cycle by cycle:

        - a beat written at cycle ``t`` can be read from cycle ``t + 1``;
        - the reader issues one output beat per cycle, in order, once the input beats its taps
          read have been written (padding needs nothing), and the output shows it one cycle
          later;
        - a frame's first output beat waits until the frame's first input beat is offered, so
          padding at the top of a frame never runs ahead of the frame;
        - the first beat of a stored row is taken only while fewer than ``rows`` stored rows
          are held; the rows an output row gives back are free from the cycle after its last
          beat is issued.

        With ``split > 1`` a width converter takes each output beat and sends it on as
        ``split`` parts, one a cycle, taking the next beat in the cycle the last part leaves;
        the reader issues no beat while the one shown waits for the converter. The output
        cycles are then the parts'.
        """
        offers = np.asarray(offers, dtype=np.int64)
        width_beats = self.width * self.folds
        taken = np.full(len(offers), -1, dtype=np.int64)
        next_row, last_take = 0, -1
        released, released_at = [], []       # cumulative stored rows given back, and when

        def take_rows(upto):                 # input rows [next_row, upto) in global numbering
            nonlocal next_row, last_take
            for row in range(next_row, upto):
                frame, y = divmod(row, self.height)
                span = slice(row * width_beats, (row + 1) * width_beats)
                earliest = last_take + 1
                if self.stored[y]:
                    g = frame * self.stored_rows + int(self.stored_before[y])
                    if g - rows + 1 > 0:
                        k = bisect.bisect_left(released, g - rows + 1)
                        if k == len(released):
                            raise RuntimeError("the line buffer deadlocks")
                        earliest = max(earliest, released_at[k] + 1)
                index = np.arange(width_beats)
                z = offers[span] - index
                z[0] = max(z[0], earliest)
                taken[span] = index + np.maximum.accumulate(z)
                last_take = int(taken[span][-1])
            next_row = max(next_row, upto)

        out = []
        last_issue, total = -1, 0
        converter_took = -1                  # when the converter took the last beat
        for frame in range(frames):
            for oy in range(self.out_h):
                take_rows(frame * self.height
                          + min(self.height, oy * self.sh - self.ph + self.kh))
                src = self.sources(oy)
                ready = np.where(src >= 0, taken[np.maximum(src, 0) + frame * self.in_beats]
                                 + 1, -1).max(axis=1)
                index = np.arange(len(src))
                z = ready - index
                z[0] = max(z[0], last_issue + 1)
                if oy == 0:                  # a frame starts once its first beat is offered
                    start = frame * self.in_beats
                    z[0] = max(z[0], offers[start], taken[start - 1] + 1 if frame else 0)
                if self.split == 1:
                    issue = index + np.maximum.accumulate(z)
                    out.append(issue + 1)
                else:
                    issue, taken_at = self._split_issues(ready, int(z[0]), converter_took)
                    converter_took = int(taken_at[-1])
                    out.append((taken_at[:, None] + np.arange(1, self.split + 1)).ravel())
                last_issue = int(issue[-1])
                total += self.release[oy]
                released.append(total)
                released_at.append(last_issue)
        take_rows(frames * self.height)
        return taken, np.concatenate(out)

    def _split_issues(self, ready, first, took):
        """Issue cycles of one output row's beats (``ready``: when each could issue; the first
        not before ``first``) and when the converter takes each (``took``: when it took the
        beat before, -1 for none): beat ``i`` is shown from its issue cycle plus one and taken
        ``split`` cycles after the one before at the earliest; the reader issues again from
        the cycle the shown beat is taken."""
        issue = np.empty(len(ready), dtype=np.int64)
        taken_at = np.empty(len(ready), dtype=np.int64)
        for i, t in enumerate(ready):
            t = max(int(t), first if i == 0 else 0, took)
            issue[i] = t
            took = max(t + 1, took + self.split) if took >= 0 else t + 1
            taken_at[i] = took
        return issue, taken_at

    def frame_interval(self, rows, frames=5):
        """Steady-state cycles between frames with the input always offered."""
        _, out = self.schedule(np.zeros(frames * self.in_beats, dtype=np.int64), frames, rows)
        beats = self.out_beats * self.split
        ends = out[beats - 1::beats]
        return int(ends[-1] - ends[-2]), np.diff(ends)


@lru_cache(maxsize=None)   # a search per geometry; networks repeat geometries
def window_timing(height, width, folds, kernel, stride, padding, buffer_rows, taps=1, split=1):
    """The :class:`~hwgen.blocks.timing.WindowTiming` of a line buffer with ``buffer_rows``
    rows, or (``None``) of the smallest ring that keeps its input and output busy, whose
    output beats carry ``taps`` window positions each, each sent on as ``split`` beats."""
    geometry = WindowGeometry(height, width, folds, kernel, stride, padding, taps, split)
    target = max(geometry.in_beats, geometry.out_beats * split)
    if buffer_rows is None:
        # The smallest ring whose steady-state frame interval is max(in, out), searched up to
        # one frame plus one window.
        for buffer_rows in range(geometry.window_rows,
                                 geometry.window_rows + geometry.stored_rows + 1):
            last, intervals = geometry.frame_interval(buffer_rows)
            if (intervals[-2:] == target).all():
                break
    else:
        last, _ = geometry.frame_interval(buffer_rows)
    return WindowTiming(geometry, buffer_rows, last)
