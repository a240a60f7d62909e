"""The strategy example in README.md runs as documented (so the user guide cannot drift)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from common.config import StrategyConfig
from services.signal.host import StrategyHost
from services.signal.registry import build_strategies
from tests.signal.test_strategy_api import approve, ctx, quote

README = Path(__file__).resolve().parents[2] / "README.md"


def _example_module() -> types.ModuleType:
    text = README.read_text()
    section = text[text.index("## Writing a strategy") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "README lost its strategy example"
    mod = types.ModuleType("readme_example")
    exec(compile(code.group(1), str(README), "exec"), mod.__dict__)
    return mod


def test_readme_strategy_example_loads_by_module_path_and_trades(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "readme_example", _example_module())
    cfg = StrategyConfig(
        name="dip1", kind="readme_example:BuyTheDip", symbols=["AAPL"], params={"qty": 2, "drop": "0.50"}
    )
    host = StrategyHost(build_strategies([cfg], ctx()))
    assert host.on_market([quote("AAPL", "100.00", "100.01")]) == []
    [intent] = host.on_market([quote("AAPL", "99.40", "99.45")])  # ask 0.55 below the high bid
    assert (intent.symbol, intent.side, intent.qty, intent.limit_px) == (
        "AAPL",
        "buy",
        2 * 10**9,
        99_450_000_000,
    )
    approve(host, intent)
    assert host.on_market([quote("AAPL", "99.00", "99.05")]) == []  # one working order at a time
