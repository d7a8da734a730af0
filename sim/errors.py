"""Exceptions for simulation problems: a missing tool, a run that fails or disagrees, or a
cluster that cannot be reached."""

from hwgen.errors import ToolchainError

__all__ = ["ClusterError", "SimulationError", "ToolchainError"]


class SimulationError(RuntimeError):
    """A simulation failed, timed out, or its outputs differ from the golden.

    ``result`` holds the :class:`sim.SimulationResult` when the run finished but disagreed
    with the golden, ``log`` the path of the simulator log when there is one.
    """

    def __init__(self, message, *, result=None, log=None):
        super().__init__(message)
        self.result = result
        self.log = log


class ClusterError(ConnectionError):
    """No Dask scheduler answers at the address given; nothing was run."""
