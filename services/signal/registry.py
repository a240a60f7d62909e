"""Strategy kinds: built-in names, names registered at runtime, or ``"module:Class"``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

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


def _load(spec: str) -> type[Strategy]:
    module_name, _, cls_name = spec.partition(":")
    if not module_name or not cls_name:
        raise ValueError(f"{spec!r} is not 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no attribute {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ValueError(f"{spec!r} is not a subclass of services.signal.strategy.Strategy")
    return cls


def resolve(kind: str) -> type[Strategy]:
    """The class for a kind; ValueError with the known kinds when it is unknown."""
    if kind in _registered:
        return _registered[kind]
    if kind in BUILTIN:
        return _load(BUILTIN[kind])
    if ":" in kind:
        return _load(kind)
    raise ValueError(f"unknown strategy kind {kind!r}; known kinds: {known_kinds()}, or use 'module:Class'")


def build_strategies(configs: list[StrategyConfig], ctx: StrategyContext) -> list[Strategy]:
    """Instantiate the enabled strategies; any problem is a ConfigError naming the strategy."""
    out: list[Strategy] = []
    for cfg in configs:
        if not cfg.enabled:
            continue
        try:
            cls = resolve(cfg.kind)
            strategy = cls(cfg.name, cfg.symbols, cfg.params, ctx)
        except (ValueError, TypeError) as exc:
            raise ConfigError.of([f"signal.strategies[{cfg.name}]: {exc}"]) from None
        if not strategy.kind:
            strategy.kind = cfg.kind
        out.append(strategy)
    return out
