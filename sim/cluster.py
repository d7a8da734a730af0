"""Worker processes for simulations and sweeps: local Dask workers or a Dask cluster.

:func:`open_client` gives a ``distributed.Client`` on ``workers`` local worker processes (a
``LocalCluster`` that lives as long as the ``with`` block) or on the scheduler at an address;
:func:`run_jobs` runs independent jobs on it and returns their results in order. Both check
their arguments before anything starts: a worker count that is not a positive integer, an
address that is malformed or where no scheduler answers, give one clear line
(``ValueError`` or :class:`~sim.errors.ClusterError`).

Workers of a cluster need this project and the simulator's run-time installed (for Icarus
``vvp``, for Verilator the same cocotb). ``distributed`` is imported only when a client is
opened, so ``import sim`` stays quick.
"""

import contextlib
import logging
import socket

from quant.numerics import is_int

from .errors import ClusterError

__all__ = ["check_workers", "check_address", "check_client", "connect", "open_client",
           "run_jobs", "total_threads"]

#: Schemes of scheduler addresses; a bare ``host:port`` is TCP.
_SCHEMES = ("tcp", "tls", "ws", "wss", "inproc", "ucx")


def check_workers(workers, option="workers"):
    """``workers`` as an int if it is a positive integer, else :class:`ValueError`."""
    if not is_int(workers) or workers < 1:
        raise ValueError(f"{option} must be a positive integer, not {workers!r}")
    return int(workers)


def check_address(address, option="cluster address"):
    """``(scheme, host, port)`` of a scheduler address such as ``tcp://10.0.0.5:8786`` or
    ``127.0.0.1:8786``, or :class:`ValueError` naming the rule."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"{option} must be a scheduler address such as tcp://HOST:8786, "
                         f"not {address!r}")
    scheme, _, rest = address.strip().rpartition("://")
    scheme = scheme or "tcp"
    if scheme not in _SCHEMES:
        raise ValueError(f"{option} must use one of the schemes {', '.join(_SCHEMES)}, not "
                         f"{scheme!r} in {address!r}")
    host, _, port = rest.rpartition(":")
    if scheme == "inproc":
        return scheme, rest, None
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{option} must be [SCHEME://]HOST:PORT with a port in 1..65535, "
                         f"not {address!r}")
    return scheme, host.strip("[]"), int(port)


def check_client(client):
    """``client`` if it is a ``distributed.Client`` (or acts like one), else
    :class:`TypeError`."""
    if not hasattr(client, "submit") or not hasattr(client, "scheduler_info"):
        raise TypeError(f"client must be a distributed.Client or a scheduler address, not "
                        f"{client!r}")
    return client


def _connect_timeout():
    import dask.config
    from dask.utils import parse_timedelta

    # Dask's own default, for when distributed (which registers it) is not imported yet.
    return parse_timedelta(dask.config.get("distributed.comm.timeouts.connect", "30s"), "s")


def _probe(address, host, port, timeout):
    """Raise :class:`ClusterError` unless something at ``host:port`` accepts a connection
    and speaks first within ``timeout`` seconds, as a Dask scheduler does (its handshake)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as probe:
            probe.settimeout(timeout)
            if probe.recv(1):
                return
            reason = "it closed the connection"
    except socket.timeout:
        reason = f"no answer within {timeout:g} s"
    except OSError as e:
        reason = e.strerror or str(e)
    raise ClusterError(f"cannot reach the Dask scheduler at {address} ({reason}); start one "
                       f"with `dask scheduler` or check the address")


def connect(address, *, timeout=None):
    """A ``distributed.Client`` connected to the scheduler at ``address``.

    A TCP address is probed first, so that a refused connection fails at once and a
    listener that never answers after ``timeout`` seconds (default: Dask's
    ``distributed.comm.timeouts.connect``); a Dask client could wait for its handshake
    forever.

    Raises
    ------
    ValueError
        A malformed address.
    ClusterError
        No scheduler answers at ``address``.
    """
    scheme, host, port = check_address(address)
    timeout = _connect_timeout() if timeout is None else float(timeout)
    if scheme == "tcp":
        _probe(address, host, port, timeout)
    from distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({e}); start one "
                           f"with `dask scheduler` or check the address") from None


@contextlib.contextmanager
def open_client(*, workers=None, client=None):
    """A ``distributed.Client`` for the ``with`` block.

    ``workers``: start that many local worker processes (one thread each, no dashboard) and
    stop them afterwards. ``client``: an existing ``distributed.Client`` (left open) or a
    scheduler address (connected with :func:`connect` and closed afterwards). Exactly one
    of the two is given.
    """
    if (workers is None) == (client is None):
        raise ValueError("give workers (local worker processes) or client (a Dask client or "
                         "scheduler address), one of the two")
    if workers is not None:
        workers = check_workers(workers)
        from distributed import Client, LocalCluster

        # The scheduler serves HTTP (health, metrics) even without a dashboard, on 8787 by
        # default: a free loopback port instead, so that runs side by side neither clash
        # nor warn.
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
                Client(cluster) as local:
            yield local
        return
    if isinstance(client, str):
        with connect(client) as remote:
            yield remote
        return
    yield check_client(client)


def total_threads(client):
    """Worker threads the client's cluster has now (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def run_jobs(function, jobs, *, workers=None, client=None, on_result=None):
    """``[function(*job) for job in jobs]``, run on workers when asked for.

    Without ``workers`` or ``client`` the jobs run here, one after the other. Otherwise each
    job is one task (see :func:`open_client`); a job whose worker dies is run again on
    another by the scheduler, and an exception in a job is raised here, after the other
    jobs are cancelled. ``on_result(index, result)`` is called as each job finishes.
    """
    jobs = [tuple(job) for job in jobs]
    if workers is None and client is None:
        results = []
        for index, job in enumerate(jobs):
            results.append(function(*job))
            if on_result is not None:
                on_result(index, results[-1])
        return results
    from distributed import as_completed

    with open_client(workers=workers, client=client) as dask_client:
        futures = [dask_client.submit(function, *job, pure=False) for job in jobs]
        order = {future.key: index for index, future in enumerate(futures)}
        results = [None] * len(jobs)
        try:
            for future in as_completed(futures):
                index = order[future.key]
                results[index] = future.result()
                if on_result is not None:
                    on_result(index, results[index])
        finally:
            dask_client.cancel([f for f in futures if not f.done()])
        return results
