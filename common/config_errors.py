"""Configuration problems as one line each, naming where the problem is: ``file:line:col`` for TOML
syntax, the environment variable for an unparsable value, the dotted field for a validation error.

No line ever carries the offending value of a field (it may be a secret); pydantic's messages do not
either, and ours (``common.config``) quote only numbers.
"""

from __future__ import annotations

import json
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

_TOML_AT = re.compile(r"^(?P<msg>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_TOML_AT_END = re.compile(r"^(?P<msg>.*?) \(at end of document\)$")
_SETTINGS_FIELD = re.compile(r'for field "(?P<field>[^"]+)" from source "(?P<source>[^"]+)"')
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def check_toml(path: Path) -> list[str]:
    """The file's syntax problem as ``path:line:col: message`` (an empty list when it parses)."""
    try:
        tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        return [f"{path}: cannot read the config file: {exc.strerror or type(exc).__name__}"]
    except UnicodeDecodeError as exc:
        return [f"{path}: not UTF-8 text (byte {exc.start})"]
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        if m := _TOML_AT.match(text):
            return [f"{path}:{m['line']}:{m['col']}: TOML syntax error: {m['msg']}"]
        if m := _TOML_AT_END.match(text):
            lines = path.read_bytes().decode("utf-8", "replace").count("\n") + 1
            return [f"{path}:{lines}: TOML syntax error at the end of the file: {m['msg']}"]
        return [f"{path}: TOML syntax error: {text}"]
    return []


def validation_lines(exc: ValidationError) -> list[str]:
    """One ``section.key: message`` per problem; pydantic's input values are never shown."""
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = str(err["msg"])
        for prefix in _PYDANTIC_PREFIXES:
            msg = msg.removeprefix(prefix)
        out.append(f"{loc}: {msg}")
    return out


def env_lines(
    exc: Exception, settings_cls: type[BaseModel], prefix: str, environ: Mapping[str, str]
) -> list[str]:
    """A value pydantic-settings could not parse (``SettingsError``): name the environment variable(s)
    behind it. Lists, tables and sub-sections must be given as JSON in the environment."""
    text = str(exc)
    m = _SETTINGS_FIELD.search(text)
    cause = exc.__cause__
    why = f"{type(cause).__name__}: {cause}" if cause is not None else text
    if m is None or m["source"] != "EnvSettingsSource":
        return [f"configuration source error: {text}" + (f" ({why})" if cause is not None else "")]
    field = m["field"]
    head = f"{prefix}{field}".upper()
    names = sorted(k for k in environ if k.upper() == head or k.upper().startswith(head + "__"))
    culprits = [n for n in names if _needs_json(settings_cls, n[len(prefix) :]) and not _is_json(environ[n])]
    if isinstance(cause, json.JSONDecodeError):
        why = f"not valid JSON ({cause.msg} at column {cause.colno})"
    hint = "lists, tables and sections are given as JSON, e.g. ZT_MARKET_DATA__STOCKS='[\"AAPL\"]'"
    return [f"environment variable {n}: {why}; {hint}" for n in culprits or names] or [
        f"environment for {field}: {why}"
    ]


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _needs_json(model: type[BaseModel], dotted: str) -> bool:
    """Whether the field a ``SECTION__KEY`` variable names is one pydantic-settings decodes as JSON."""
    annotation: Any = model
    for part in dotted.lower().split("__"):
        inner = _unwrap(annotation)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return False
        fields = {name.lower(): f for name, f in inner.model_fields.items()}
        if part not in fields:
            return False
        annotation = fields[part].annotation
    inner = _unwrap(annotation)
    origin = typing.get_origin(inner) or inner
    return origin in (list, dict, set, tuple, frozenset) or (
        isinstance(origin, type) and issubclass(origin, BaseModel)
    )


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
