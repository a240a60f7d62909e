"""The floor of the wire-to-wire measurement: the least a single Python process can do between a quote
and its order, measured exactly like zerotick and the naive bot (bench/wire_to_wire.py's probes).

Market data comes in on a raw WebSocket (the ``websockets`` library, msgpack frames as alpaca-py and
zerotick take them) subscribed to the
same stock quotes as the naive bot. For each quote on the probe symbol the client writes a limit buy
at the ask, as an HTTP/1.1 POST to /v2/orders built from a pre-rendered header block, on one
kept-alive TCP_NODELAY connection, and does not wait for the reply: a background task only reads
the replies to keep the socket drained. No validation, no retries, no risk checks: it is a yardstick.

    python -m bench.minimal_client REST_URL STOCK_WS_URL KEY SECRET PROBE_SYMBOL [OTHER_SYMBOL ...]

Prints ``minimal client ready`` once subscribed.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from urllib.parse import urlsplit

import msgpack
import uvloop
import websockets


def order_head(host: str, port: int, key: str, secret: str) -> bytes:
    """Everything of the POST up to the Content-Length value: rendered once."""
    return (
        f"POST /v2/orders HTTP/1.1\r\nHost: {host}:{port}\r\nAPCA-API-KEY-ID: {key}\r\n"
        f"APCA-API-SECRET-KEY: {secret}\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
        "Content-Length: "
    ).encode()


def order_request(head: bytes, symbol: str, ask: object, n: int) -> bytes:
    """The whole POST for one order: a 1-share buy limit at ``ask`` with a unique client_order_id."""
    body = (
        b'{"symbol":"' + symbol.encode() + b'","qty":"1","side":"buy","type":"limit","time_in_force":"day",'
        b'"limit_price":"' + str(ask).encode() + b'","client_order_id":"mc-' + str(n).encode() + b'"}'
    )
    return head + str(len(body)).encode() + b"\r\n\r\n" + body


async def drain(reader: asyncio.StreamReader) -> None:
    """Read and drop the venue's replies so the connection never backs up."""
    while await reader.read(65536):
        pass


async def run(rest: str, stock_ws: str, key: str, secret: str, symbol: str, others: list[str]) -> None:
    url = urlsplit(rest)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    drainer = asyncio.create_task(drain(reader))
    head = order_head(host, port, key, secret)
    write = writer.write
    n = 0
    unpack = msgpack.unpackb
    headers = {"Content-Type": "application/msgpack"}
    async with websockets.connect(
        stock_ws, max_size=None, compression=None, additional_headers=headers
    ) as ws:
        await ws.recv()  # [{"T":"success","msg":"connected"}]
        await ws.send(msgpack.packb({"action": "auth", "key": key, "secret": secret}))
        await ws.recv()  # authenticated
        await ws.send(msgpack.packb({"action": "subscribe", "quotes": [symbol, *others]}))
        await ws.recv()  # the subscription
        print("minimal client ready", flush=True)
        async for frame in ws:
            for msg in unpack(frame):
                if msg.get("T") == "q" and msg.get("S") == symbol:
                    n += 1
                    write(order_request(head, symbol, msg["ap"], n))
    drainer.cancel()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 5:
        raise SystemExit(__doc__)
    rest, stock_ws, key, secret, symbol, *others = args
    uvloop.run(run(rest, stock_ws, key, secret, symbol, others))


if __name__ == "__main__":
    main()
