"""A real Dask cluster on the loopback address: a scheduler and workers, each its own process.

Each process runs in a session of its own, so :meth:`LoopbackCluster.kill` takes a worker
down together with the simulator it is running, as a machine that fails would.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["LoopbackCluster"]


class LoopbackCluster:
    """``dask scheduler`` and ``workers`` single-threaded ``dask worker`` processes (no
    nanny, so a killed worker stays dead), on 127.0.0.1, with files under ``root``."""

    def __init__(self, root, workers=2, timeout=60):
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._scheduler_file = self._root / "scheduler.json"
        self._processes = []
        self.workers = []
        try:
            # Should the test process die without closing it, the scheduler stops by itself
            # after ten idle minutes, and the workers a minute after it.
            self._start("scheduler", ["distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                      "--port", "0", "--no-dashboard", "--idle-timeout", "600"])
            self.address = self._wait_for_address(timeout)
            for k in range(workers):
                self.workers.append(self._start(f"worker{k}", [
                    "distributed.cli.dask_worker", "--host", "127.0.0.1", "--nthreads", "1",
                    "--no-nanny", "--no-dashboard", "--death-timeout", "60",
                    "--local-directory", str(self._root / f"worker{k}")]))
            self._wait_for_workers(workers, timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, name, arguments):
        log = open(self._root / f"{name}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", *arguments, "--scheduler-file", str(self._scheduler_file)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._processes.append(process)
        return process

    def _wait_for_address(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return json.loads(self._scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        raise TimeoutError(f"the Dask scheduler did not start within {timeout} s; see "
                           f"{self._root / 'scheduler.log'}")

    def _wait_for_workers(self, count, timeout):
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(count, timeout=timeout)
            self.worker_addresses = sorted(client.scheduler_info()["workers"])

    def worker_address(self, index):
        """The address of worker ``index`` (matched through its process id)."""
        from distributed import Client

        pid = self.workers[index].pid
        with Client(self.address) as client:
            found = client.run(os.getpid)
        return next(address for address, p in found.items() if p == pid)

    def kill(self, index):
        """Kill worker ``index`` and everything it started (SIGKILL to its session)."""
        process = self.workers[index]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def close(self):
        """Stop every process this cluster started: the scheduler shuts the workers down,
        and what is left after a few seconds is killed with its session (simulators too)."""
        if self._processes[0].poll() is None and hasattr(self, "address"):
            from distributed import Client

            try:
                with Client(self.address, timeout=5) as client:
                    client.shutdown()
            except (OSError, TimeoutError):
                pass
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
