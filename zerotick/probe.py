"""``zerotick probe TARGET``: exit 0 when a service (or the venue) is up and ready; for healthchecks.

A service is asked ``status`` over its control socket (over tcp with the CURVE key ``--as`` names:
in a service's container, its own); ready = it answers and is neither starting, nor waiting for its
positions, nor without a journal. The venue is asked ``GET /sim/health``.
"""

from __future__ import annotations

import argparse
import sys

from common.config import SERVICES, Settings, load_settings
from common.curve import KEY_NAMES, OPERATOR
from zerotick.control import ControlError, send_control

VENUE = "venue"
NOT_READY = frozenset({"starting", "not_ready", "journal_failed"})


def venue_ready(settings: Settings, timeout_ms: int) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{settings.sim_origin()}/sim/health", timeout=timeout_ms / 1000) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


def cmd_probe(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.target == VENUE:
        ok = venue_ready(settings, args.timeout_ms)
        print(f"venue: {'ready' if ok else 'not answering'} at {settings.sim_origin()}")
        return 0 if ok else 1
    try:
        st = send_control(settings, args.target, "status", timeout_ms=args.timeout_ms, identity=args.identity)
    except ControlError as exc:
        print(f"{args.target}: {exc}", file=sys.stderr)
        return 1
    state = str(st.get("state", "?"))
    print(f"{args.target}: {state}")
    return 1 if state in NOT_READY else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    probe = sub.add_parser("probe", help="exit 0 when a service or the venue is up and ready")
    probe.add_argument("--config", help="TOML config file (default: $ZEROTICK_CONFIG)")
    probe.add_argument("target", choices=[*SERVICES, VENUE])
    probe.add_argument(
        "--as", dest="identity", choices=KEY_NAMES, default=OPERATOR, help="CURVE key to use over tcp"
    )
    probe.add_argument("--timeout-ms", type=int, default=2000)
    probe.set_defaults(func=cmd_probe)
