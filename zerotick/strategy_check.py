"""``python -m zerotick.strategy_check --config F``: build every enabled strategy exactly as the signal
service will (kind resolved, module imported from ``signal.strategy_paths``, params configured) and
print one JSON list of problems, one line of text each. Run by `zerotick up` in a child process,
in the run folder like the service, so what a strategy module does while importing (threads, files,
a crash) stays out of the CLI."""

from __future__ import annotations

import argparse
import sys

import orjson

from common.clock import wall_ns
from common.config import ConfigError, load_settings
from common.ids import IntentIds
from services.signal.registry import build_strategy
from services.signal.strategy import StrategyContext


def problems(config: str | None) -> list[str]:
    settings = load_settings(config)
    ctx = StrategyContext(
        ids=IntentIds(), intent_max_age_ns=settings.risk.intent_max_age_ms * 1_000_000, clock_ns=wall_ns
    )
    out: list[str] = []
    for cfg in settings.signal.strategies:
        if not cfg.enabled:
            continue
        try:
            build_strategy(cfg, ctx, settings.signal.strategy_paths)
        except Exception as exc:  # a strategy's configure() may raise anything: each is reported
            why = str(exc) if isinstance(exc, ValueError | TypeError) else f"{type(exc).__name__}: {exc}"
            out.append(f"signal.strategies[{cfg.name}] (kind {cfg.kind!r}): {why}")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="zerotick-strategy-check")
    p.add_argument("--config")
    args = p.parse_args(argv)
    out = sys.stdout
    sys.stdout = sys.stderr  # what a strategy module prints does not mix with the answer
    try:
        found = problems(args.config)
    except ConfigError as exc:
        found = [str(exc)]
    out.buffer.write(b"\n" + orjson.dumps(found) + b"\n")  # the last line is the answer
    out.flush()


if __name__ == "__main__":
    main()
