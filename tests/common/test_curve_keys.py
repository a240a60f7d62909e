"""`zerotick keys generate`: a key pair per service and one for the operator, secrets owner-only,
never replaced without --force; keys that are missing, too open or malformed stop a process with a
message naming the file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import zmq.auth

from common import curve
from zerotick.cli import main


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _generate(folder: Path, *extra: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["keys", "generate", "--dir", str(folder), *extra])
    return int(done.value.code or 0)


def test_generate_writes_a_pair_per_name_and_refuses_to_overwrite(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert _generate(keys) == 0
    assert _mode(keys / "private") == 0o700
    publics = set()
    for name in ("market_data", "signal", "risk", "execution", "operator"):
        assert _mode(curve.secret_path(keys, name)) == 0o600
        public, secret = zmq.auth.load_certificate(curve.secret_path(keys, name))
        assert secret is not None and zmq.curve_public(secret) == public
        assert zmq.auth.load_certificate(curve.public_path(keys, name)) == (public, None)
        loaded = curve.load(keys, name)
        assert (loaded.public, loaded.secret) == (public, secret)
        publics.add(public)
    assert len(publics) == 5

    before = curve.public_path(keys, "risk").read_bytes()
    assert _generate(keys) == 1  # refused: the same keys stay
    assert curve.public_path(keys, "risk").read_bytes() == before
    assert _generate(keys, "--force") == 0
    assert curve.public_path(keys, "risk").read_bytes() != before


def test_unusable_keys_stop_the_process_with_the_files_name(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    curve.generate(keys)
    secret = curve.secret_path(keys, "signal")
    secret_text = secret.read_text()
    secret.chmod(0o644)
    with pytest.raises(curve.CurveKeyError, match=r"signal\.key_secret is readable by others"):
        curve.load(keys, "signal")
    secret.chmod(0o600)
    curve.public_path(keys, "operator").write_text("not a certificate\n")
    with pytest.raises(curve.CurveKeyError, match=r"operator\.key unreadable") as err:
        curve.load(keys, "signal")
    assert "secret-key" not in str(err.value) and secret_text not in str(err.value)
    curve.public_path(keys, "operator").unlink()
    with pytest.raises(curve.CurveKeyError, match=r"operator\.key unreadable"):
        curve.load(keys, "signal")
    with pytest.raises(curve.CurveKeyError, match="not set"):
        curve.load(None, "signal")
