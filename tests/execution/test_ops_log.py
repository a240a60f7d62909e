"""The operations log of execution: one INFO line per order sent, per fill and per order reaching a
final status, each with symbol, side, qty, price, client_order_id, strategy and reason, and no secret."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from common.config import SimConfig
from common.log import JsonFormatter
from tests.execution.test_lifecycle_with_simulator import ASK, Harness, Venue, cancel, run, status, submit
from tests.kit.waiting import until

FIELDS = {"symbol", "side", "qty", "price", "client_order_id", "strategy", "reason"}
SIM = SimConfig()


def _ops(caplog: pytest.LogCaptureFixture, event: str, coid: str) -> list[dict[str, object]]:
    """The ops lines of ``event`` for ``coid``, as the JSON a log file holds."""
    fmt = JsonFormatter("execution")
    out = []
    for r in caplog.records:
        if r.name == "zerotick.ops" and r.getMessage() == event and r.fields["client_order_id"] == coid:  # type: ignore[attr-defined]
            assert r.levelno == logging.INFO
            line = fmt.format(r)
            assert SIM.key_id not in line and SIM.secret_key.get_secret_value() not in line
            out.append(orjson.loads(line))
    return out


def test_one_line_per_send_fill_and_final_status(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zerotick.ops")

    async def scenario(h: Harness, venue: Venue) -> None:
        await submit(h, "zt-ops.1", qty="5", px="99")
        await until(lambda: status(h, "zt-ops.1") == "new")
        venue.quote("98.9", "99", ask_sz="2")
        await until(lambda: len(h.fills("zt-ops.1")) == 1)
        venue.quote("98.9", "99", ask_sz="10")
        await until(lambda: status(h, "zt-ops.1") == "filled")

        await submit(h, "zt-ops.2", qty="1", px="90")  # rests, then canceled
        await until(lambda: status(h, "zt-ops.2") == "new")
        await cancel(h, "zt-ops.2")
        await until(lambda: status(h, "zt-ops.2") == "canceled")

        await venue.post("/sim/faults/reject", {"count": 1, "reason": "symbol halted"})
        await submit(h, "zt-ops.3", qty="2", px=ASK)
        await until(lambda: status(h, "zt-ops.3") == "rejected")
        for _ in range(20):  # quotes alone log nothing
            venue.quote("100", ASK)

    run(tmp_path, scenario)

    (sent,) = _ops(caplog, "order sent", "zt-ops.1")
    assert FIELDS <= sent.keys()
    assert (sent["symbol"], sent["side"], sent["qty"], sent["price"], sent["strategy"]) == (
        "AAPL",
        "buy",
        "5",
        "99",
        "s1",
    )
    fills = _ops(caplog, "fill", "zt-ops.1")
    assert [(f["qty"], f["price"]) for f in fills] == [("2", "99"), ("3", "99")]
    (final,) = _ops(caplog, "order final", "zt-ops.1")
    assert (final["status"], final["filled_qty"], final["qty"]) == ("filled", "5", "5")

    (canceled,) = _ops(caplog, "order final", "zt-ops.2")
    assert (canceled["status"], canceled["filled_qty"]) == ("canceled", "0")
    (rejected,) = _ops(caplog, "order final", "zt-ops.3")
    assert (rejected["status"], rejected["reason"]) == ("rejected", "symbol halted")
    assert len(_ops(caplog, "order sent", "zt-ops.3")) == 1
    ops = [r for r in caplog.records if r.name == "zerotick.ops"]
    assert len(ops) == 3 + 2 + 3  # sent x3, fill x2, final x3: nothing per quote
