"""The WebSocket byte stream split before websockets parses it: whole binary frames skip websockets,
and websockets sees everything else as whole units (the upgrade response, each other frame), in
stream order, however the bytes arrive; whatever websockets must refuse switches the split off."""

from __future__ import annotations

import random
import struct

import pytest

from services.market_data.ws_frames import MAX_UPGRADE_RESPONSE, FrameSplitter, Split

UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
MAX = 1 << 20


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = False, rsv: int = 0) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 1 << 16:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    return head + (b"\0\0\0\0" + payload if mask else payload)


def binary(payload: bytes) -> bytes:
    return frame(0x2, payload)


# (frame bytes, the payload when it skips websockets, else None)
STREAM: list[tuple[bytes, bytes | None]] = [
    (binary(b"\x91\x81\xa1T\xa1q"), b"\x91\x81\xa1T\xa1q"),
    (frame(0x9, b"ping"), None),  # a ping: websockets answers it
    (binary(b"m" * 125), b"m" * 125),
    (binary(b"M" * 300), b"M" * 300),  # 2-byte length
    (binary(b"L" * 70_000), b"L" * 70_000),  # 8-byte length
    (frame(0x1, b"text"), None),  # text: websockets checks its UTF-8
    (frame(0x2, b"part1", fin=False), None),  # a fragmented message: all of it to websockets
    (frame(0xA, b"pong"), None),  # a control frame inside it
    (frame(0x0, b"part2", fin=False), None),
    (frame(0x0, b"part3"), None),
    (binary(b""), b""),
    (binary(b"last"), b"last"),
]


def expected(direct: bool) -> list[tuple[bool, bytes]]:
    out: list[tuple[bool, bytes]] = [(False, UPGRADE)]
    for raw, skips in STREAM:
        out.append((True, skips) if direct and skips is not None else (False, raw))
    return out


def feed_in(chunks: list[bytes], direct: bool = True) -> tuple[FrameSplitter, list[tuple[bool, bytes]]]:
    split = FrameSplitter(MAX)
    out: list[tuple[bool, bytes]] = []
    for chunk in chunks:
        out += split.feed(chunk, direct)
    return split, out


def chunked(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 64, 1000, 20_000])
        out.append(data[pos : pos + step])
        pos += step
    return out


WHOLE = UPGRADE + b"".join(raw for raw, _ in STREAM)


@pytest.mark.parametrize("seed", range(12))
def test_every_frame_comes_out_whole_and_in_order_however_the_bytes_arrive(seed: int) -> None:
    split, out = feed_in(chunked(WHOLE, random.Random(seed)))
    assert out == expected(direct=True)
    assert split.state is Split.FRAMES


def test_one_byte_at_a_time_and_all_at_once_give_the_same() -> None:
    assert feed_in([WHOLE[i : i + 1] for i in range(len(WHOLE))])[1] == expected(direct=True)
    assert feed_in([WHOLE])[1] == expected(direct=True)


def test_until_direct_is_set_every_frame_goes_to_websockets() -> None:
    assert feed_in([WHOLE], direct=False)[1] == expected(direct=False)


def test_bytes_after_the_upgrade_response_in_the_same_read_are_frames() -> None:
    split = FrameSplitter(MAX)
    assert split.feed(UPGRADE[:10], True) == []
    assert split.feed(UPGRADE[10:] + binary(b"q1") + binary(b"q2")[:3], True) == [
        (False, UPGRADE),
        (True, b"q1"),
    ]
    assert split.feed(binary(b"q2")[3:], True) == [(True, b"q2")]


@pytest.mark.parametrize(
    "bad",
    [
        frame(0x2, b"masked", mask=True),  # a server must not mask
        frame(0x2, b"rsv", rsv=0x40),  # no extension was negotiated
        frame(0x3, b"reserved opcode"),
        bytes([0x82, 127]) + struct.pack(">Q", MAX + 1),  # larger than max_size: not buffered here
    ],
    ids=["masked", "reserved_bits", "reserved_opcode", "too_large"],
)
def test_a_frame_websockets_must_refuse_switches_the_split_off(bad: bytes) -> None:
    split = FrameSplitter(MAX)
    out = split.feed(UPGRADE + binary(b"ok") + bad + binary(b"after"), True)
    assert out == [(False, UPGRADE), (True, b"ok"), (False, bad + binary(b"after"))]
    assert split.state is Split.OFF
    assert split.feed(binary(b"later"), True) == [(False, binary(b"later"))]


def test_a_refused_upgrade_goes_to_websockets_as_it_came() -> None:
    refused = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\n\r\nslow"
    split = FrameSplitter(MAX)
    assert split.feed(refused, True) == [(False, refused)]
    assert split.state is Split.OFF


def test_an_upgrade_response_without_an_end_is_not_held_forever() -> None:
    split = FrameSplitter(MAX)
    assert split.feed(b"HTTP/1.1 101 OK\r\nX: " + b"a" * MAX_UPGRADE_RESPONSE, True)[0][0] is False
    assert split.state is Split.OFF
