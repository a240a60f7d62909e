"""CURVE keys: one key pair per service plus one for the operator's CLI.

Layout of a keys folder (``zerotick keys generate --dir DIR``, ``zmq.curve_dir``)::

    DIR/public/<name>.key            every name's public key (what servers allow, clients trust)
    DIR/private/<name>.key_secret    <name>'s secret key: 0600, in a 0700 folder

Files are ZeroMQ's certificate format (``zmq.auth``). A process needs its own secret file and every
public one; in a container only its own secret is mounted. Secret keys never reach logs or errors,
only the paths of their files do.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import zmq.auth

from common.config import SERVICES

OPERATOR = "operator"  # the key of the zerotick CLI (control commands, the kill switch)
KEY_NAMES = (*SERVICES, OPERATOR)
PUBLIC = "public"
PRIVATE = "private"


class CurveKeyError(SystemExit):
    """A key that is missing, unreadable, too open or malformed: the process does not start (exit 1)."""


def public_path(curve_dir: Path, name: str) -> Path:
    return curve_dir / PUBLIC / f"{name}.key"


def secret_path(curve_dir: Path, name: str) -> Path:
    return curve_dir / PRIVATE / f"{name}.key_secret"


@dataclass(frozen=True)
class CurveKeys:
    """What one process holds: its own key pair and every name's public key (Z85)."""

    me: str
    public: bytes
    secret: bytes = field(repr=False)
    publics: dict[str, bytes]

    def public_of(self, name: str) -> bytes:
        return self.publics[name]


def generate(curve_dir: Path, force: bool = False) -> list[Path]:
    """Write a fresh key pair for every name in ``KEY_NAMES``; refuse to replace existing keys
    unless ``force``. Returns the files written."""
    targets = [p for name in KEY_NAMES for p in (public_path(curve_dir, name), secret_path(curve_dir, name))]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise CurveKeyError(
            f"keys already exist in {curve_dir} (e.g. {existing[0]}); "
            "pass --force to replace them (every process then needs the new ones)"
        )
    (curve_dir / PUBLIC).mkdir(parents=True, exist_ok=True)
    private = curve_dir / PRIVATE
    private.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(private, 0o700)
    written: list[Path] = []
    for name in KEY_NAMES:
        # made in a private scratch folder, then moved in: a secret is never visible with a loose mode
        with tempfile.TemporaryDirectory(dir=private) as scratch:
            pub, sec = zmq.auth.create_certificates(scratch, name)
            os.chmod(sec, 0o600)
            os.chmod(pub, 0o644)
            os.replace(sec, secret_path(curve_dir, name))
            os.replace(pub, public_path(curve_dir, name))
        written += [public_path(curve_dir, name), secret_path(curve_dir, name)]
    return written


def load(curve_dir: Path | None, me: str) -> CurveKeys:
    """``me``'s key pair and every public key, or a CurveKeyError that says what to do."""
    if curve_dir is None:
        raise CurveKeyError("zmq.curve_dir is not set: tcp needs CURVE keys (`zerotick keys generate --dir`)")
    if me not in KEY_NAMES:
        raise CurveKeyError(f"no CURVE key is named {me!r} (names: {', '.join(KEY_NAMES)})")
    publics = {name: _read_public(public_path(curve_dir, name)) for name in KEY_NAMES}
    path = secret_path(curve_dir, me)
    _refuse_open_secret(path)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"CURVE secret key {path} unreadable: {_why(exc)}") from None
    if secret is None:
        raise CurveKeyError(f"{path} holds no secret key")
    if public != publics[me]:
        raise CurveKeyError(f"{path} does not match {public_path(curve_dir, me)}: regenerate the keys")
    return CurveKeys(me, public, secret, publics)


def _read_public(path: Path) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(
            f"CURVE public key {path} unreadable: {_why(exc)} (generate the keys with "
            "`zerotick keys generate --dir DIR` and set zmq.curve_dir)"
        ) from None
    if len(public) != 40:
        raise CurveKeyError(f"CURVE public key {path} is malformed")
    return public


def _refuse_open_secret(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise CurveKeyError(f"CURVE secret key {path} unreadable: {_why(exc)}") from None
    if mode & 0o077:
        raise CurveKeyError(
            f"CURVE secret key {path} is readable by others (mode {oct(mode)}): chmod 600 it "
            "(in a container: chown it to the container's user instead of opening it up)"
        )


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "not a ZeroMQ certificate"
