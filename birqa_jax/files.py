"""Atomic file writing: a reader sees the old file or the complete new one, never a part.

The new content goes to a temporary file in the target's folder, is flushed to disk, and is
renamed onto the target (a rename within one folder is atomic), so a crash or Ctrl-C never
leaves a half-written model, metrics log or score table behind.
"""

from __future__ import annotations

import os
import tempfile


def temp_file_beside(path: str | os.PathLike) -> tuple[int, str]:
    """A new empty file in ``path``'s folder, with the permissions a plain new file gets there:
    ``(fd, its path)``, to be renamed onto ``path`` once complete (a rename within one folder is
    atomic). OSError when the folder cannot be written."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
    return fd, tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
