"""`signal.strategy_paths`: a `module:Class` strategy is imported from the configured folders, which
are on sys.path only while it is imported; whatever its import raises is a configuration error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from common.config import ConfigError, StrategyConfig, load_settings
from services.signal.registry import build_strategies
from tests.signal.test_strategy_api import ctx

MODULE = """
from services.signal.strategy import Strategy


class Quiet(Strategy):
    kind = "quiet"
"""


def test_imported_from_the_configured_folder_which_leaves_sys_path(tmp_path: Path) -> None:
    (tmp_path / "zt_paths_pkg").mkdir()
    (tmp_path / "zt_paths_pkg" / "quiet.py").write_text(MODULE)
    before = list(sys.path)
    cfg = StrategyConfig(name="q", kind="zt_paths_pkg.quiet:Quiet", symbols=["AAPL"])
    try:
        [strategy] = build_strategies([cfg], ctx(), [tmp_path])
    finally:
        for name in [m for m in sys.modules if m.startswith("zt_paths_pkg")]:
            del sys.modules[name]
    assert type(strategy).__name__ == "Quiet" and strategy.kind == "quiet"
    assert sys.path == before


def test_an_import_that_raises_names_the_strategy_and_the_error(tmp_path: Path) -> None:
    (tmp_path / "zt_raises.py").write_text("raise RuntimeError('needs a licence file')\n")
    cfg = StrategyConfig(name="r", kind="zt_raises:X", symbols=["AAPL"])
    with pytest.raises(
        ConfigError,
        match=r"signal.strategies\[r\]: cannot import module 'zt_raises': "
        r"RuntimeError: needs a licence file \(signal.strategy_paths: ",
    ):
        build_strategies([cfg], ctx(), [tmp_path])


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in [k for k in os.environ if k.startswith("ZT_")]:
        monkeypatch.delenv(k)
    cfg = tmp_path / "conf" / "zt.toml"
    cfg.parent.mkdir()
    cfg.write_text('[signal]\nstrategy_paths = ["strats", "/abs/where"]\n')
    monkeypatch.chdir("/")
    settings = load_settings(cfg)
    assert settings.signal.strategy_paths == [tmp_path / "conf" / "strats", Path("/abs/where")]
