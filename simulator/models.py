"""Pydantic v2 models of the REST request bodies the simulator accepts.

Numbers may arrive as JSON numbers (alpaca-py sends floats) or strings (Alpaca's documented type);
the REST layer parses JSON floats straight into Decimal so no binary rounding sneaks in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.errors import ApiError, validation

M = TypeVar("M", bound=BaseModel)

Positive = Annotated[Decimal, Field(gt=0, decimal_places=9)]
Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
TimeInForce = Literal["day", "gtc", "opg", "cls", "ioc", "fok"]
OrderClass = Literal["simple", "bracket", "oco", "oto"]


class Body(BaseModel):
    # Unknown keys are ignored, as Alpaca does (alpaca-py may send newer fields such as position_intent).
    model_config = ConfigDict(extra="ignore", frozen=True)


class TakeProfitBody(Body):
    limit_price: Positive


class StopLossBody(Body):
    stop_price: Positive
    limit_price: Positive | None = None


class OrderBody(Body):
    symbol: str = Field(min_length=1, max_length=32)
    qty: Positive | None = None
    notional: Positive | None = None
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    limit_price: Positive | None = None
    stop_price: Positive | None = None
    trail_price: Positive | None = None
    trail_percent: Positive | None = None
    extended_hours: bool = False
    client_order_id: str | None = Field(default=None, min_length=1, max_length=128)
    order_class: OrderClass | None = None
    take_profit: TakeProfitBody | None = None
    stop_loss: StopLossBody | None = None

    @field_validator("symbol")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.strip().upper()

    @field_validator("order_class", mode="before")
    @classmethod
    def _empty_class(cls, v: Any) -> Any:
        return None if v == "" else v

    @model_validator(mode="after")
    def _qty_xor_notional(self) -> OrderBody:
        if (self.qty is None) == (self.notional is None):
            raise ValueError("exactly one of qty or notional is required")
        return self


class ReplaceBody(Body):
    qty: Positive | None = None
    time_in_force: TimeInForce | None = None
    limit_price: Positive | None = None
    stop_price: Positive | None = None
    trail: Positive | None = None
    client_order_id: str | None = Field(default=None, min_length=1, max_length=128)


class AccountConfigPatch(Body):
    dtbp_check: Literal["both", "entry", "exit"] | None = None
    pdt_check: Literal["both", "entry", "exit"] | None = None
    fractional_trading: bool | None = None
    max_margin_multiplier: Literal["1", "2", "4"] | None = None
    no_shorting: bool | None = None
    suspend_trade: bool | None = None
    trade_confirm_email: Literal["all", "none"] | None = None
    ptp_no_exception_entry: bool | None = None
    max_options_trading_level: int | None = Field(default=None, ge=0, le=3)


class ResetBody(Body):
    cash: Annotated[Decimal, Field(ge=0, decimal_places=9)] | None = None


class RestFaultBody(Body):
    """See simulator/rest_faults.py for what the fields do together."""

    status: Literal[500, 504, 429] | None = None  # None: the real reply, delayed
    count: int = Field(ge=1, le=1_000_000)
    after_apply: bool = False
    paths: str | None = None  # only calls whose path starts with this prefix are faulted
    method: Literal["GET", "POST", "PATCH", "DELETE"] | None = None  # only calls with this method
    delay_ms: float = Field(default=0.0, ge=0, le=60_000)

    @model_validator(mode="after")
    def _does_something(self) -> RestFaultBody:
        if self.status is None and self.delay_ms <= 0:
            raise ValueError("a REST fault needs a status, a delay_ms > 0, or both")
        return self


class RejectFaultBody(Body):
    count: int = Field(ge=0, le=1_000_000)  # 0 disarms
    reason: str = Field(default="rejected by simulator fault injection", min_length=1, max_length=256)


class TradeStreamDownBody(Body):
    seconds: float = Field(gt=0, le=3_600)  # trade_updates refused (HTTP 503) this long


def parse(model: type[M], data: Any) -> M:
    """Validate a decoded JSON body; failures become Alpaca's 422 with every problem named."""
    if not isinstance(data, dict):
        raise validation("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts)


__all__ = [
    "AccountConfigPatch",
    "ApiError",
    "OrderBody",
    "RejectFaultBody",
    "ReplaceBody",
    "ResetBody",
    "RestFaultBody",
    "StopLossBody",
    "TakeProfitBody",
    "parse",
]
