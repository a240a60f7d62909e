"""A small file system for tests that fill a disk: a tmpfs mounted where the run folder goes."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount syntax: "48m") mounted at ``path`` (created) for the test; skips when
    it cannot be mounted (not root, no mount permission)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the run folder needs root")
    path.mkdir(mode=0o700)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)  # still busy: detach it lazily


def fill(folder: Path) -> int:
    """Write one file until the filesystem refuses (ENOSPC); returns the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
