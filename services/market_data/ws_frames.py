"""The market-data client's WebSocket byte stream, split before websockets parses it.

A whole, unmasked, unfragmented binary frame (what Alpaca sends every market-data message in) goes
straight to the feed's handler once data flows. Everything else reaches websockets as whole units:
the HTTP upgrade response, then each other frame complete (pings, pongs, close, text, fragmented
messages), so its parser always starts at a boundary and stays in charge of the protocol: keepalive,
the close handshake, UTF-8 and size checks. A frame websockets must refuse (masked, reserved bits or
opcode, larger than ``max_size``) and a refused upgrade switch the split off: from there on every byte
goes to websockets, which fails the connection as it would have. Why: websockets' generator-based
parser costs ~3 µs of Python per frame warm, several times that right after a wake-up, on the path
of every quote (docs/architecture.md, "Market data").
"""

from __future__ import annotations

from enum import Enum

_FIN_BINARY = 0x82  # FIN set, no reserved bits, opcode 2 (binary)
_OP_CONT, _OP_TEXT, _OP_BINARY = 0x0, 0x1, 0x2
_KNOWN_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})
_HEADERS_END = b"\r\n\r\n"
MAX_UPGRADE_RESPONSE = 64 * 1024  # websockets refuses far smaller headers; beyond this it judges


class Split(Enum):
    UPGRADE = "upgrade"  # before the end of the HTTP upgrade response
    FRAMES = "frames"  # at a frame boundary in the frame stream
    OFF = "off"  # everything goes to websockets


_UPGRADE, _FRAMES, _OFF = Split.UPGRADE, Split.FRAMES, Split.OFF


class FrameSplitter:
    """Feed it each read; it returns, in stream order, ``(True, payload)`` for a binary message
    that skips websockets and ``(False, raw)`` for bytes websockets must parse. ``direct``: whether
    binary messages may skip websockets yet (until then they go to it, for ``recv()``)."""

    __slots__ = ("_fragmented", "_have", "_need", "_parts", "max_size", "state")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.state = _UPGRADE
        # An incomplete upgrade response or frame: its reads so far, their size, and the size that
        # makes it worth parsing again (joined once then, so a large frame costs one copy, not one
        # per read).
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0
        self._fragmented = False  # inside a fragmented message (its frames go to websockets)

    def feed(self, data: bytes, direct: bool) -> list[tuple[bool, bytes]]:
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            buf = b"".join(self._parts)
            self._parts = []
        else:
            buf = data
        out: list[tuple[bool, bytes]] = []
        pos = 0
        if self.state is _UPGRADE:
            end = buf.find(_HEADERS_END)
            if end < 0:
                if len(buf) > MAX_UPGRADE_RESPONSE:
                    return self._off(out, buf)
                self._keep(buf, 0)
                return out
            pos = end + len(_HEADERS_END)
            if not buf.startswith(b"HTTP/1.1 101 "):
                return self._off(out, buf)
            out.append((False, buf[:pos]))
            self.state = _FRAMES
        elif self.state is _OFF:
            return [(False, buf)]
        n = len(buf)
        need = 2  # what the frame at ``pos`` needs to be parsed: its header first, then all of it
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    need = 4
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    need = 10
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            opcode = b0 & 0x0F
            if b1 & 0x80 or b0 & 0x70 or opcode not in _KNOWN_OPCODES or length > self.max_size:
                return self._off(out, buf[pos:])  # websockets refuses it and fails the connection
            end = pos + head + length
            if end > n:
                need = end - pos
                break
            if b0 == _FIN_BINARY and direct and not self._fragmented:
                out.append((True, buf[pos + head : end]))
            else:
                if opcode in (_OP_TEXT, _OP_BINARY):
                    self._fragmented = not b0 & 0x80
                elif opcode == _OP_CONT and b0 & 0x80:
                    self._fragmented = False
                out.append((False, buf[pos:end]))
            pos = end
            need = 2
        if pos < n:
            self._keep(buf[pos:], need)
        return out

    def _keep(self, rest: bytes, need: int) -> None:
        self._parts = [rest]
        self._have = len(rest)
        self._need = need

    def _off(self, out: list[tuple[bool, bytes]], rest: bytes) -> list[tuple[bool, bytes]]:
        self.state = _OFF
        if rest:
            out.append((False, rest))
        return out
