"""The control-token guard and the secret files: refusals change nothing, are counted, and never
reveal a token; secret files and the run folder are owner-only."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from common import wire
from common.auth import ControlGuard, peer_password, token_ok
from common.private_files import UnsafeRunDir, create_secret, ensure_private_dir, read_secret

TOKEN = "s3cret-token-value"


def _refused(service: str, cmd: str, reason: str) -> float:
    labels = {"service": service, "cmd": cmd, "reason": reason}
    return REGISTRY.get_sample_value("zt_control_refused_total", labels) or 0.0


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return str([(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records])


def _guard(token: str = TOKEN) -> ControlGuard:
    return ControlGuard("guardtest", frozenset({"orders"}), frozenset({"cancel_all"}), token)


def test_token_comparison() -> None:
    assert token_ok(TOKEN, TOKEN)
    assert not token_ok("", TOKEN)
    assert not token_ok(TOKEN[:-1], TOKEN)
    assert not token_ok("", "")  # no token configured: nothing is authorised
    assert not token_ok("anything", "")


def test_mutating_command_needs_the_token_and_refusals_are_counted_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = _guard()
    before = _refused("guardtest", "cancel_all", "token")
    with caplog.at_level(logging.WARNING):
        missing = guard.refusal(wire.Control(cmd="cancel_all"), now_ns=1)
        wrong = guard.refusal(wire.Control(cmd="cancel_all", token="wrong-guess"), now_ns=1)
    assert missing is not None and not missing.ok and "control token" in missing.detail
    assert wrong is not None and not wrong.ok
    assert _refused("guardtest", "cancel_all", "token") == before + 2
    logged = _logged(caplog)
    assert "cancel_all" in logged and "wrong-guess" not in logged and TOKEN not in logged
    assert guard.refusal(wire.Control(cmd="cancel_all", token=TOKEN), now_ns=1) is None


def test_read_only_commands_need_no_token_and_undeclared_ones_do() -> None:
    guard = _guard()
    for cmd in ("ping", "status", "orders"):
        assert guard.refusal(wire.Control(cmd=cmd), now_ns=1) is None
    before = _refused("guardtest", "other", "token")
    assert guard.refusal(wire.Control(cmd="x" * 500), now_ns=1) is not None  # fail closed
    assert _refused("guardtest", "other", "token") == before + 1  # a made-up name is not a label


def test_without_a_configured_token_every_mutating_command_is_refused() -> None:
    guard = _guard(token="")
    assert guard.refusal(wire.Control(cmd="cancel_all", token=""), now_ns=1) is not None
    assert guard.refusal(wire.Control(cmd="status"), now_ns=1) is None


def test_a_command_past_its_deadline_is_refused() -> None:
    guard = _guard()
    before = _refused("guardtest", "cancel_all", "expired")
    late = guard.refusal(wire.Control(cmd="cancel_all", token=TOKEN, deadline_ns=1_000), now_ns=5_000_000)
    assert late is not None and not late.ok and "deadline" in late.detail and "not run" in late.detail
    assert _refused("guardtest", "cancel_all", "expired") == before + 1
    in_time = wire.Control(cmd="cancel_all", token=TOKEN, deadline_ns=10_000)
    assert guard.refusal(in_time, now_ns=9_000) is None


def test_peer_passwords_are_per_service_and_need_a_secret() -> None:
    assert peer_password("k", "risk") == peer_password("k", "risk")
    assert peer_password("k", "risk") != peer_password("k", "signal")
    assert peer_password("k", "risk") != peer_password("other", "risk")
    with pytest.raises(ValueError, match="no peer secret"):
        peer_password("", "risk")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_folder_is_made_owner_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fresh = tmp_path / "a" / "run"
    ensure_private_dir(fresh)
    assert _mode(fresh) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        ensure_private_dir(loose)
    assert _mode(loose) == 0o700 and "owner-only" in _logged(caplog)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(UnsafeRunDir, match="of its own"):
        ensure_private_dir(shared)
    assert _mode(shared) == 0o1777  # left as it was


def test_secret_file_is_created_once_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "run" / "control.token"
    assert read_secret(path) == ""
    first = create_secret(path)
    assert len(first) >= 32 and _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert create_secret(path) == first == read_secret(path)
    assert [p.name for p in path.parent.iterdir()] == ["control.token"]  # no temp file left behind
