"""Owner-only files: the run folder (sockets, logs, secrets) and the secret files inside it.

A secret file is written whole before it becomes visible (temp file, fsync, then a hard link that
fails if the name exists), so a reader never sees half a secret and two writers racing agree on one.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


class UnsafeRunDir(RuntimeError):
    """The run folder cannot be made owner-only without harming others (the CLI prints it)."""


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) owner-only, or tighten an existing one that others can reach."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.getuid() or mode & stat.S_ISVTX:
        # e.g. run_dir = "/tmp": tightening a shared folder would break everyone else's use of it
        raise UnsafeRunDir(
            f"run folder {path} is shared (sticky, or another user's); use a folder of its own"
        )
    if mode & 0o077:
        log.warning(
            "run folder was accessible to other users; made it owner-only",
            extra={"fields": {"path": str(path), "mode": oct(mode)}},
        )
        os.chmod(path, DIR_MODE)


def read_secret(path: Path) -> str:
    """The secret in ``path`` (stripped), or "" when there is none."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def create_secret(path: Path, nbytes: int = 32) -> str:
    """Return the secret in ``path``, first creating it (random, 0600) when it does not exist."""
    existing = read_secret(path)
    if existing:
        return existing
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.write(fd, (secrets.token_urlsafe(nbytes) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and refuses to replace a secret another process wrote first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return read_secret(path)
