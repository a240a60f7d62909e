"""Strategy kinds: built-in names, names registered at runtime, or ``"module:Class"``.

A ``"module:Class"`` module is imported with ``signal.strategy_paths`` appended to ``sys.path`` for the
duration of the import only: the folders serve strategy imports, never shadow zerotick's packages or
the standard library, and do not stay on the path of the process."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from common.config import ConfigError, StrategyConfig
from services.signal.strategy import Strategy, StrategyContext

BUILTIN: dict[str, str] = {
    "probe": "services.signal.strategies.probe:ProbeStrategy",
    "ma_cross": "services.signal.strategies.ma_cross:MovingAverageCross",
    "ladder": "services.signal.strategies.ladder:LadderStrategy",
}
_registered: dict[str, type[Strategy]] = {}


def register(kind: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: make a strategy available under ``kind``."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        _registered[kind] = cls
        cls.kind = kind
        return cls

    return deco


def known_kinds() -> list[str]:
    return sorted({*BUILTIN, *_registered})


@contextmanager
def _import_paths(paths: Sequence[Path]) -> Iterator[None]:
    added = [str(p) for p in paths if str(p) not in sys.path]
    sys.path.extend(added)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for p in added:
            sys.path.remove(p)


def _load(spec: str, paths: Sequence[Path] = ()) -> type[Strategy]:
    module_name, _, cls_name = spec.partition(":")
    if not module_name or not cls_name:
        raise ValueError(f"{spec!r} is not 'module:Class'")
    try:
        with _import_paths(paths):
            module = importlib.import_module(module_name)
    except Exception as exc:  # whatever the module raises while importing is a configuration problem
        where = (
            f" (signal.strategy_paths: {[str(p) for p in paths]})" if paths else " (no signal.strategy_paths)"
        )
        why = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        raise ValueError(f"cannot import module {module_name!r}: {why}{where}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no attribute {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ValueError(f"{spec!r} is not a subclass of services.signal.strategy.Strategy")
    return cls


def resolve(kind: str, paths: Sequence[Path] = ()) -> type[Strategy]:
    """The class for a kind; ValueError with the known kinds when it is unknown."""
    if kind in _registered:
        return _registered[kind]
    if kind in BUILTIN:
        return _load(BUILTIN[kind])
    if ":" in kind:
        return _load(kind, paths)
    raise ValueError(f"unknown strategy kind {kind!r}; known kinds: {known_kinds()}, or use 'module:Class'")


def build_strategy(cfg: StrategyConfig, ctx: StrategyContext, paths: Sequence[Path] = ()) -> Strategy:
    """One strategy, configured; ValueError or TypeError says what is wrong with its kind or params."""
    strategy = resolve(cfg.kind, paths)(cfg.name, cfg.symbols, cfg.params, ctx)
    if not strategy.kind:
        strategy.kind = cfg.kind
    return strategy


def build_strategies(
    configs: list[StrategyConfig], ctx: StrategyContext, paths: Sequence[Path] = ()
) -> list[Strategy]:
    """Instantiate the enabled strategies; any problem is a ConfigError naming the strategy."""
    out: list[Strategy] = []
    for cfg in configs:
        if not cfg.enabled:
            continue
        try:
            out.append(build_strategy(cfg, ctx, paths))
        except (ValueError, TypeError) as exc:
            raise ConfigError.of([f"signal.strategies[{cfg.name}]: {exc}"]) from None
    return out
