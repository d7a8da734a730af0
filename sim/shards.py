"""One simulation split into shards of consecutive inputs, run on Dask workers.

:func:`run_sharded` builds the design once, here, and ships the build to the workers
(:class:`~sim.shipping.ShippedBuild`); each shard is one task that streams its inputs
through its own simulator process on a worker (:func:`run_shard`), from reset. The results
come back keyed by shard and are put together in input order, each shard's once.

Fault handling is the Dask scheduler's: a task whose worker dies is run again on another
worker (up to ``distributed.scheduler.allowed-failures`` times). Every attempt logs a
``start`` event under the run's own topic; a shard started more than once was retried.
"""

import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import SimulationError, ToolchainError
from .runner import build_design, run_design
from .shipping import ShippedBuild

__all__ = ["ShardedRun", "split_frames", "run_shard", "run_sharded"]


def split_frames(count, shards):
    """``shards`` (at most ``count``) ranges ``(start, stop)`` of consecutive inputs that
    cover ``0..count-1`` once, their sizes differing by at most one."""
    shards = max(1, min(int(shards), int(count)))
    edges = [count * k // shards for k in range(shards + 1)]
    return list(zip(edges[:-1], edges[1:]))


class _ProgressEvents:
    """While a run goes on, logs its ``progress.txt`` frame count as events (twice a second)."""

    def __init__(self, path, log):
        self._path, self._log = path, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._last = -1

    def _watch(self):
        while not self._stop.wait(0.5):
            try:
                done = int(self._path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if done != self._last:
                self._last = done
                self._log(done)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_shard(build, frames, *, index, run_id, topic, simulator, backpressure, seed):
    """Run one shard on the Dask worker this task is on (the task :func:`run_sharded`
    submits); return its outputs, cycles and timings as a dict."""
    from distributed import get_worker

    started = time.monotonic()
    worker = get_worker()
    attempt = uuid.uuid4().hex[:12]

    def log(event, **fields):
        worker.log_event(topic, {"event": event, "shard": index, "attempt": attempt, **fields})

    log("start", worker=worker.address)
    root = Path(worker.local_directory) / "hwgen-sim"
    meta, install, install_seconds = build.install(root)
    run_dir = root / "sim_run" / f"{run_id}-shard{index}-{attempt}"
    with _ProgressEvents(run_dir / "progress.txt", lambda done: log("progress", done=done)):
        run = run_design(meta, frames, out_dir=root, simulator=simulator,
                         backpressure=backpressure, seed=seed, progress=False, run_dir=run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"index": index, "attempt": attempt, "worker": worker.address,
            "outputs": run.outputs, "frame_cycles": run.frame_cycles,
            "input_cycles": run.input_cycles, "cycles": run.cycles,
            "sim_seconds": run.sim_seconds, "run_seconds": run.wall_seconds,
            "install": install, "install_seconds": install_seconds,
            "task_seconds": time.monotonic() - started}


@dataclass
class ShardedRun:
    """What :func:`run_sharded` gathered.

    Attributes
    ----------
    results : list of dict
        The results of the shards ``0..len(results)-1`` (all of them unless the run
        stopped), as :func:`run_shard` returns them, plus ``start``, ``stop``, ``attempts``
        and ``seconds`` (from submission to result).
    bounds : list of (int, int)
        Every shard's input range.
    retried_shards : int
        Shards started more than once (their worker died).
    build_seconds : float
        The build here (0 when an earlier build was reused).
    shipped_bytes : int
        Size of the shipped build.
    """
    results: list
    bounds: list
    retried_shards: int
    build_seconds: float
    shipped_bytes: int

    @property
    def complete(self):
        return len(self.results) == len(self.bounds)

    @property
    def stop(self):
        """One past the last input of the gathered shards."""
        return self.bounds[len(self.results) - 1][1] if self.results else 0


class _Bar:
    """A progress bar over frames fed by the workers' events; shards done in its postfix."""

    def __init__(self, bounds, progress):
        self._sizes = [b - a for a, b in bounds]
        self._latest, self._done, self._finished = {}, {}, set()
        self._lock = threading.Lock()
        self.bar = None
        if progress is not False:
            import sys

            from tqdm import tqdm

            bar = tqdm(total=sum(self._sizes), unit="frame", desc="simulating", file=sys.stderr,
                       disable=None if progress is None else False, leave=False)
            self.bar = None if bar.disable else bar

    def event(self, event):
        """Handler of the run's topic: ``(time, message)``."""
        message = event[1]
        shard = message["shard"]
        with self._lock:
            if message["event"] == "start":
                self._latest[shard] = message["attempt"]
                self._done[shard] = 0
            elif message["event"] == "progress" and self._latest.get(shard) == message["attempt"]:
                self._done[shard] = message["done"]
        self._show()

    def finished(self, shard):
        with self._lock:
            self._finished.add(shard)
        self._show()

    def _show(self):
        if self.bar is None:
            return
        with self._lock:
            frames = sum(size if k in self._finished else min(self._done.get(k, 0), size)
                         for k, size in enumerate(self._sizes))
            finished = len(self._finished)
        self.bar.n = frames
        self.bar.set_postfix_str(f"shards {finished}/{len(self._sizes)}", refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _attempts(client, topic):
    """``{shard: attempts started}`` from the run's events on the scheduler."""
    seen = {}
    for _, message in client.get_events(topic):
        if message.get("event") == "start":
            seen.setdefault(message["shard"], set()).add(message["attempt"])
    return {shard: len(attempts) for shard, attempts in seen.items()}


def _shipped(build):
    """The build, as the result of a task (so the scheduler can recompute it)."""
    return build


def _shard_failure(future, index, bounds):
    start, stop = bounds[index]
    where = f"shard {index + 1} of {len(bounds)} (inputs {start}..{stop - 1})"
    if future.status == "cancelled":
        return SimulationError(f"{where} was cancelled on the cluster")
    error = future.exception()
    if isinstance(error, (SimulationError, ToolchainError)):
        return type(error)(f"{where}: {error}")
    if type(error).__name__ == "KilledWorker":
        return SimulationError(f"{where}: every worker that ran it died ({error}); the "
                               f"scheduler gave up on it")
    return error


def run_sharded(meta, frames, *, client, out_dir, simulator, backpressure, seed, shards,
                mismatches=None, progress=None, verbose=False):
    """Run ``frames`` through the design ``meta`` in ``shards`` shards on ``client``'s
    workers.

    ``mismatches(start, outputs)``, when given, tells whether a shard's outputs differ from
    the golden: the run then stops at the first such shard once every shard before it is
    in, cancelling the rest, so the first mismatch is the one a single run would report.
    A shard that fails stops the run at once with the shard's error.
    """
    from distributed import as_completed

    build_dir, digest, build_seconds = build_design(meta, out_dir=out_dir, simulator=simulator,
                                                    verbose=verbose)
    build = ShippedBuild.pack(meta, build_dir, digest, simulator)
    bounds = split_frames(len(frames), shards)
    run_id = uuid.uuid4().hex[:12]
    topic = f"hwgen-sim-{run_id}"
    bar = _Bar(bounds, progress)
    client.subscribe_topic(topic, bar.event)
    # The build is a task's argument, not scattered data: the scheduler keeps it, so a
    # worker that dies holding it costs a recomputation, not the run.
    shipped = client.submit(_shipped, build, key=f"hwgen-build-{run_id}", pure=False)
    submitted = time.monotonic()
    futures = [client.submit(run_shard, shipped, frames[a:b], index=i, run_id=run_id,
                             topic=topic, simulator=simulator, backpressure=backpressure,
                             seed=seed, key=f"hwgen-shard-{run_id}-{i}", pure=False)
               for i, (a, b) in enumerate(bounds)]
    index_of = {future.key: i for i, future in enumerate(futures)}
    results, seconds, differing = {}, {}, set()
    try:
        for future in as_completed(futures):
            i = index_of[future.key]
            if future.status != "finished":
                raise _shard_failure(future, i, bounds)
            results[i] = future.result()
            seconds[i] = time.monotonic() - submitted
            bar.finished(i)
            if mismatches is not None and mismatches(bounds[i][0], results[i]["outputs"]):
                differing.add(i)
            if differing and all(k in results for k in range(min(differing))):
                break
        attempts = _attempts(client, topic)
    finally:
        client.cancel([f for f in [*futures, shipped] if not f.done()])
        client.unsubscribe_topic(topic)
        bar.close()
    last = min(differing) if differing else len(bounds) - 1
    gathered = []
    for i in range(last + 1):
        start, stop = bounds[i]
        if len(results[i]["outputs"]) != stop - start:  # the runner checks; a safety net
            raise SimulationError(f"shard {i + 1} of {len(bounds)} returned "
                                  f"{len(results[i]['outputs'])} frames for inputs "
                                  f"{start}..{stop - 1}")
        gathered.append(results[i] | {"start": start, "stop": stop,
                                      "attempts": attempts.get(i, 1),
                                      "seconds": seconds[i]})
    return ShardedRun(results=gathered, bounds=bounds,
                      retried_shards=sum(n > 1 for n in attempts.values()),
                      build_seconds=build_seconds, shipped_bytes=build.size)
