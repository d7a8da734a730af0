"""Exceptions for problems in a model, raised before any hardware is generated."""

__all__ = ["GraphError", "UnsupportedLayerError"]


class GraphError(ValueError):
    """A QGraph is malformed or its values break a rule; the message lists every problem."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UnsupportedLayerError(GraphError):
    """A model holds layers the flow cannot convert; the message lists all of them."""
