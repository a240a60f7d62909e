"""The Prometheus configuration and alert rules as promtool sees them, and the rules' unit tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.kit.ops import ALERTS, ALERTS_TEST, PROMETHEUS_DIR, alert_exprs

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
EXPECTED_ALERTS = {
    "KillSwitchTripped",
    "FeedStale",
    "TickToOrderP99High",
    "RejectRateHigh",
    "ServiceDown",
    "ReconnectStorm",
    "MessagesDropped",
    "JournalFailing",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS_DIR)


def test_alert_rules_pass_promtool_check() -> None:
    out = _promtool("check", "rules", str(ALERTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in out.stdout


def test_prometheus_config_passes_promtool_check() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_alert_rules_unit_tests_pass() -> None:
    out = _promtool("test", "rules", str(ALERTS_TEST))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_the_rules_are_the_documented_set_each_with_for_severity_and_what_to_do() -> None:
    text = ALERTS.read_text()
    assert set(alert_exprs()) == EXPECTED_ALERTS
    blocks = text.split("- alert: ")[1:]
    for block in blocks:
        name = block.split()[0]
        assert "\n        for: " in block, name
        assert "severity: critical" in block or "severity: warning" in block, name
        assert "summary: " in block and "description: " in block, name


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_every_alert_has_a_firing_and_a_quiet_unit_test(alert: str) -> None:
    cases = ALERTS_TEST.read_text().split("  - name: ")[1:]
    mine = [c for c in cases if f"alertname: {alert}\n" in c]
    assert any("exp_alerts:\n" in c and "exp_labels:" in c for c in mine), f"{alert}: no firing case"
    assert any("exp_alerts: []" in c for c in mine), f"{alert}: no quiet case"
