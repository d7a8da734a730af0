"""Output files and folders of the commands: whole or absent, with the umask's permissions.

Every file is written to a temporary name beside it and renamed into place, so a run that
fails leaves the previous file or none, never half of one. The temporary file is created with
mode ``0o666`` and the process umask applied, as ``open()`` would (``tempfile.mkstemp``
creates ``0o600`` files whatever the umask).
"""

import contextlib
import os
from pathlib import Path

__all__ = ["atomic", "check_output_folder", "follow_umask", "remove", "write_text"]


@contextlib.contextmanager
def atomic(path, mode="w"):
    """Open a temporary file beside ``path`` for writing (``mode`` ``"w"`` or ``"wb"``); on
    success it replaces ``path``, on an error it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic(path) as f:
        f.write(text)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(*paths):
    """Give files written by library code the mode ``open()`` would have given them
    (``0o666`` less the umask); :func:`hwgen.generate` writes ``top.v`` and
    ``metadata.json`` through ``tempfile.mkstemp``, which makes them ``0o600``."""
    mode = 0o666 & ~_umask()
    for path in paths:
        os.chmod(path, mode)


def remove(*paths):
    """Delete the files that exist of ``paths`` (the previous run's results)."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


def check_output_folder(path, option):
    """Raise :class:`ValueError` unless ``path`` is a folder or can be created as one: it
    must not be an existing file, nor lie under one."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if folder.is_dir():
                return
            if folder == path:
                raise ValueError(f"{option} must be a folder, not the existing file {path}")
            raise ValueError(f"{option} must be a folder, not {path} inside the existing file "
                             f"{folder}")
