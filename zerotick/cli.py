"""``zerotick``: run, stop and inspect the system.

zerotick up [--config F] [--live]   all services as daemons under supervisord (+ the venue without keys)
zerotick down                       stop everything
zerotick status [--json]            one line per process: supervisor state, pid, control-channel answer
zerotick sim [...]                  the Alpaca-compatible venue in the foreground
zerotick run SERVICE                one service in the foreground
zerotick ctl SERVICE CMD [k=v ...]  send a control command over the service's request socket
zerotick kill --reason R [--flatten] HALT: cancel every order (close every position) and confirm at the venue
zerotick reduce-only --reason R     only orders that shrink a position may go out
zerotick reset --reason R           back to ACTIVE (refused while the venue holds orders zerotick does not know)
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from common.config import SERVICES, ConfigError, Settings, load_settings
from common.enums import ControlCmd
from zerotick import supervisor
from zerotick.control import ControlError, send_control

# `zerotick kill` must be fast when everything else is hung: modules only some commands need
# (supervisord's XML-RPC client, urllib) are imported where they are used.


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _config_path(args: argparse.Namespace) -> Path | None:
    path = args.config or os.environ.get("ZEROTICK_CONFIG")
    return Path(path).resolve() if path else None


def _layout(settings: Settings) -> supervisor.Layout:
    return supervisor.Layout(settings.zmq.run_dir.resolve())


def cmd_up(args: argparse.Namespace) -> int:
    if args.live:
        os.environ["ZT_ALPACA__LIVE"] = "true"
    settings = _settings(args)
    if settings.venue == "live" and not args.live:
        print("refusing to trade real money without `zerotick up --live`", file=sys.stderr)
        return 2
    layout = _layout(settings)
    pid = supervisor.start(settings, layout, _config_path(args))
    venue = {
        "sim": f"the simulator at {settings.trading_base_url()}",
        "paper": "Alpaca PAPER",
        "live": "Alpaca LIVE (real money)",
        "custom": f"the venue at {settings.trading_base_url()}",
    }[settings.venue]
    print(f"zerotick up: supervisord pid {pid}, trading on {venue}")
    print(f"  programs: {', '.join(supervisor.programs(settings))}")
    print(f"  logs:     {layout.logs}/")
    print("  `zerotick status` to check, `zerotick down` to stop")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    layout = _layout(_settings(args))
    if supervisor.stop(layout):
        print("zerotick down: stopped")
    else:
        print("zerotick down: was not running")
    return 0


def _venue_healthy(settings: Settings, timeout_ms: int) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{settings.sim_origin()}/sim/health", timeout=timeout_ms / 1000) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


def collect_status(settings: Settings, timeout_ms: int = 500) -> dict[str, Any]:
    layout = _layout(settings)
    procs = supervisor.process_info(layout)
    rows: dict[str, Any] = {}
    for name in supervisor.programs(settings):
        info = procs.get(name, {"state": "NOT RUNNING", "pid": None, "uptime_s": 0})
        row: dict[str, Any] = {"supervisor": info["state"], "pid": info["pid"], "uptime_s": info["uptime_s"]}
        if name in SERVICES:
            try:
                row["service"] = send_control(settings, name, "status", timeout_ms=timeout_ms)
                row["rpc"] = "ok"
            except ControlError as exc:
                row["service"] = None
                row["rpc"] = "down"
                row["rpc_error"] = str(exc)
            row["up"] = row["supervisor"] == "RUNNING" and row["rpc"] == "ok"
        elif name == supervisor.SIM_PROGRAM:
            row["rpc"] = "ok" if _venue_healthy(settings, timeout_ms) else "down"
            row["up"] = row["supervisor"] == "RUNNING" and row["rpc"] == "ok"
        else:
            row["up"] = row["supervisor"] == "RUNNING"
        rows[name] = row
    return {
        "venue": settings.venue,
        "trading_state": _trading_state(settings, rows),
        "supervisord_pid": supervisor.supervisord_pid(layout),
        "all_up": bool(rows) and all(r["up"] for r in rows.values()),
        "processes": rows,
    }


def _trading_state(settings: Settings, rows: dict[str, Any]) -> dict[str, Any]:
    """Risk's answer when it gives one, else the persisted record (what a restart would come back in)."""
    from common.trading_state import StateStore

    record = StateStore(settings.zmq.run_dir).load()
    risk = (rows.get("risk") or {}).get("service") or {}
    execution = (rows.get("execution") or {}).get("service") or {}
    return {
        "state": risk.get("trading_state") or record.state.value,
        "persisted": {
            "state": record.state.value,
            "seq": record.seq,
            "source": record.source.value,
            "who": record.who,
            "reason": record.reason,
            "ts_ns": record.ts_ns,
        },
        "execution_gate": execution.get("trading_state"),
        "trip_pending": execution.get("trip_pending"),
    }


def cmd_status(args: argparse.Namespace) -> int:
    st = collect_status(_settings(args))
    if args.json:
        print(orjson.dumps(st, option=orjson.OPT_INDENT_2).decode())
    else:
        ts = st["trading_state"]
        pending = "   TRIP NOT CONFIRMED BY THE VENUE" if ts["trip_pending"] else ""
        print(f"venue: {st['venue']}   supervisord pid: {st['supervisord_pid'] or '-'}")
        print(f"trading state: {ts['state'].upper()} ({ts['persisted']['reason']}){pending}")
        print(f"{'PROCESS':<12} {'SUPERVISOR':<12} {'PID':>7} {'UPTIME':>9}  {'CONTROL':<10} STATE")
        for name, r in st["processes"].items():
            svc = r.get("service") or {}
            why = f" ({svc['not_ready_reason']})" if svc.get("not_ready_reason") else ""
            print(
                f"{name:<12} {r['supervisor']:<12} {r['pid'] or '-':>7} {r['uptime_s']:>8}s  "
                f"{r.get('rpc', '-'):<10} {svc.get('state', '-')}{why}"
            )
    return 0 if st["all_up"] else 1


def cmd_ctl(args: argparse.Namespace) -> int:
    kv = dict(a.split("=", 1) for a in args.args if "=" in a)
    bad = [a for a in args.args if "=" not in a]
    if bad:
        print(f"arguments must be key=value, got {bad}", file=sys.stderr)
        return 2
    try:
        out = send_control(_settings(args), args.service, args.cmd, kv, timeout_ms=args.timeout_ms)
    except ControlError as exc:
        print(f"{args.service}: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    from zerotick import kill_switch

    result = kill_switch.kill(_settings(args), args.reason, args.flatten, args.timeout)
    doc = {
        "confirmed": result.confirmed,
        "elapsed_ms": round(result.elapsed_ms, 1),
        "via_services": result.via_services,
        "services_error": result.services_error or None,
        "venue": result.venue,
    }
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    if not result.confirmed:
        print(
            "zerotick kill: HALTED, but the venue has NOT confirmed yet: "
            f"{result.venue['detail']}. Check the venue's own UI; run `zerotick kill` again.",
            file=sys.stderr,
        )
        return 1
    what = "no open orders and no positions" if args.flatten else "no open orders"
    print(f"zerotick kill: HALTED; the venue shows {what} ({result.elapsed_ms:.0f} ms)", file=sys.stderr)
    return 0


def _cmd_set_state(args: argparse.Namespace, state: Any) -> int:
    from zerotick import kill_switch

    ok, doc = kill_switch.set_state(_settings(args), state, args.reason, args.timeout)
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    if not ok:
        why = str(doc.get("detail", "")).removeprefix("refused: ")
        print(f"zerotick: {state.value} refused: {why}", file=sys.stderr)
        return 1
    return 0


def cmd_reduce_only(args: argparse.Namespace) -> int:
    from common.enums import TradingState

    return _cmd_set_state(args, TradingState.REDUCE_ONLY)


def cmd_reset(args: argparse.Namespace) -> int:
    from common.enums import TradingState

    return _cmd_set_state(args, TradingState.ACTIVE)


def cmd_run(args: argparse.Namespace) -> int:
    from common.service import run

    module = importlib.import_module(f"services.{args.service}.service")
    run(module.SERVICE_CLASS, _settings(args))
    return 0


def cmd_sim(rest: list[str]) -> int:
    from simulator.app import main as sim_main

    sim_main(rest)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zerotick", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "--config", help="TOML config file (default: $ZEROTICK_CONFIG, else built-in defaults)"
        )
        return sp

    up = with_config(sub.add_parser("up", help="start every service under supervisord"))
    up.add_argument("--live", action="store_true", help="allow trading real money on Alpaca live")
    up.set_defaults(func=cmd_up)
    with_config(sub.add_parser("down", help="stop everything")).set_defaults(func=cmd_down)
    st = with_config(sub.add_parser("status", help="show what runs"))
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)
    run = with_config(sub.add_parser("run", help="run one service in the foreground"))
    run.add_argument("service", choices=SERVICES)
    run.set_defaults(func=cmd_run)
    ctl = with_config(sub.add_parser("ctl", help="send a control command to a service"))
    ctl.add_argument("service", choices=SERVICES)
    ctl.add_argument("cmd", choices=ControlCmd.values())
    ctl.add_argument("args", nargs="*", help="key=value arguments")
    ctl.add_argument("--timeout-ms", type=int, default=1000)
    ctl.set_defaults(func=cmd_ctl)
    kill = with_config(sub.add_parser("kill", help="trip the kill switch: HALT and empty the venue"))
    kill.add_argument("--reason", required=True, help="why (goes to the audit log)")
    kill.add_argument("--flatten", action="store_true", help="also close every position")
    kill.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the venue")
    kill.set_defaults(func=cmd_kill)
    ro = with_config(sub.add_parser("reduce-only", help="only orders that shrink a position go out"))
    ro.add_argument("--reason", required=True)
    ro.add_argument("--timeout", type=float, default=5.0)
    ro.set_defaults(func=cmd_reduce_only)
    reset = with_config(sub.add_parser("reset", help="back to ACTIVE after a trip"))
    reset.add_argument("--reason", required=True)
    reset.add_argument("--timeout", type=float, default=5.0)
    reset.set_defaults(func=cmd_reset)
    sub.add_parser(
        "sim",
        help="run the Alpaca-compatible venue in the foreground (see `zerotick sim --help`)",
        add_help=False,
    )
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sim":
        sys.exit(cmd_sim(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    except RuntimeError as exc:
        print(f"zerotick: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
