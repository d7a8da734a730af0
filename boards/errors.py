"""Exceptions for board problems: an unknown board, a design that does not fit its part."""

__all__ = ["BoardError", "BuildError"]


class BoardError(ValueError):
    """A board cannot take the design: unknown name, missing resources, or too big for its part.

    The message names the board and, for a fit problem, every resource that is short with the
    numbers (used and available).
    """


class BuildError(RuntimeError):
    """A build tool ran and failed, or the result misses its target (timing); the message
    names the log or report to read."""
