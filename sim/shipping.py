"""A built simulator, packed to run on workers that do not share this file system.

The design is built once, where :func:`sim.simulate` runs (:func:`sim.runner.build_design`);
:meth:`ShippedBuild.pack` keeps the design's metadata, its Verilog text and the one file a
run needs (Icarus: ``sim.vvp``; Verilator: the linked model executable), compressed. On a
worker, :meth:`ShippedBuild.install` writes them into the worker's own folder in the layout
:func:`sim.runner.run_design` looks for (``sim_build/<simulator>-<digest>/build.ok``), once
per worker. A build made for another platform (operating system, processor, cocotb version,
Icarus version, or, for Verilator, another path of cocotb's libraries, which the executable
is linked against) is not unpacked: the worker builds the design itself from the Verilog.
"""

import functools
import io
import os
import platform
import shutil
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .runner import build_design, check_simulator

__all__ = ["ShippedBuild", "platform_fingerprint"]

#: The stamp :func:`sim.runner.build_design` leaves in a finished build.
_STAMP = "build.ok"
#: One install at a time per worker process (a worker may run several shards at once).
_INSTALL_LOCK = threading.Lock()
#: The design metadata a run reads (the Verilog path is the worker's own).
_META_KEYS = ("top", "input", "output", "cycles_per_frame", "latency")


@functools.lru_cache(maxsize=None)
def platform_fingerprint(simulator):
    """What a build for ``simulator`` depends on here, as sorted ``(key, value)`` pairs."""
    import cocotb

    check_simulator(simulator)
    items = {"simulator": simulator, "system": platform.system(),
             "machine": platform.machine(), "cocotb": cocotb.__version__}
    if simulator == "icarus":
        version = subprocess.run(["vvp", "-V"], capture_output=True, text=True, check=False)
        items["icarus"] = (version.stdout.splitlines() or [""])[0]
    else:
        import cocotb_tools.config

        items["cocotb_libs"] = str(cocotb_tools.config.libs_dir)
    return tuple(sorted(items.items()))


def _run_files(simulator, top):
    return ["sim.vvp"] if simulator == "icarus" else [top]


@dataclass(frozen=True)
class ShippedBuild:
    """A built design that a worker can run without this machine's files.

    Attributes
    ----------
    simulator, digest : str
        The simulator and the build's digest (:func:`sim.runner.build_design`).
    metadata : dict
        The design metadata without its Verilog path.
    verilog : bytes
        The Verilog text.
    archive : bytes
        A gzip-compressed tar of the files a run needs.
    fingerprint : tuple
        :func:`platform_fingerprint` of the machine that built it.
    """
    simulator: str
    digest: str
    metadata: dict
    verilog: bytes
    archive: bytes
    fingerprint: tuple

    @classmethod
    def pack(cls, meta, build_dir, digest, simulator):
        """Pack the build in ``build_dir`` of the checked metadata ``meta``."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
            for name in _run_files(simulator, meta["top"]):
                tar.add(Path(build_dir) / name, arcname=name)
        return cls(simulator=simulator, digest=digest,
                   metadata={k: meta[k] for k in _META_KEYS},
                   verilog=Path(meta["verilog"]).read_bytes(), archive=buffer.getvalue(),
                   fingerprint=platform_fingerprint(simulator))

    @property
    def size(self):
        """Bytes shipped (archive and Verilog)."""
        return len(self.archive) + len(self.verilog)

    def install(self, root):
        """Make the build runnable under ``root`` (the ``out_dir`` of a run there).

        Returns ``(meta, how, seconds)``: the metadata with the Verilog path under ``root``;
        ``"cached"`` (installed before), ``"shipped"`` (unpacked) or ``"rebuilt"`` (another
        platform: built here); and the seconds it took.
        """
        start = time.monotonic()
        root = Path(root)
        with _INSTALL_LOCK:
            verilog = root / "designs" / self.digest / f"{self.metadata['top']}.v"
            if not verilog.is_file():
                verilog.parent.mkdir(parents=True, exist_ok=True)
                tmp = verilog.with_name(f".{verilog.name}.{os.getpid()}.tmp")
                tmp.write_bytes(self.verilog)
                tmp.replace(verilog)
            meta = dict(self.metadata, verilog=str(verilog.resolve()))
            build_dir = root / "sim_build" / f"{self.simulator}-{self.digest}"
            if (build_dir / _STAMP).is_file():
                return meta, "cached", time.monotonic() - start
            if self.fingerprint != platform_fingerprint(self.simulator):
                build_design(meta, out_dir=root, simulator=self.simulator)
                return meta, "rebuilt", time.monotonic() - start
            staging = build_dir.with_name(f".{build_dir.name}.{os.getpid()}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            with tarfile.open(fileobj=io.BytesIO(self.archive), mode="r:gz") as tar:
                tar.extractall(staging, filter="data")
            (staging / _STAMP).write_text(f"{verilog}\n")
            shutil.rmtree(build_dir, ignore_errors=True)
            staging.replace(build_dir)
            return meta, "shipped", time.monotonic() - start
