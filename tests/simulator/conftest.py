"""Fixtures for the venue's tests: a trading venue per test (``sim``), or a factory of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kit.trading_venue import SimServer, make_cfg


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimServer]]:
    servers: list[SimServer] = []

    def make(**overrides: Any) -> SimServer:
        server = SimServer(make_cfg(**overrides))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sim(sim_factory: Callable[..., SimServer]) -> SimServer:
    return sim_factory()
