"""common/capture.py: the capture format shared by market_data (writer) and the venue (replay)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from common.capture import (
    CaptureFormatError,
    CaptureFrame,
    CaptureWriter,
    format_rfc3339_ns,
    parse_rfc3339_ns,
    read_capture,
)

NS = 1_732_233_600_123_456_789


def test_rfc3339_round_trip_and_offsets() -> None:
    text = format_rfc3339_ns(NS)
    assert text == "2024-11-22T00:00:00.123456789Z"
    assert parse_rfc3339_ns(text) == NS
    assert parse_rfc3339_ns("2024-11-22T01:00:00.5+01:00") == NS - 123_456_789 + 500_000_000
    assert parse_rfc3339_ns("2024-11-22T00:00:00Z") == NS - 123_456_789
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_rfc3339_ns("yesterday")


def test_writer_then_reader_gives_the_frames_back(tmp_path: Path) -> None:
    path = tmp_path / "cap" / "md.jsonl"
    quote = {
        "T": "q",
        "S": "AAPL",
        "bp": 190.12,
        "bs": 3,
        "ap": 190.13,
        "as": 1,
        "t": msgpack.Timestamp.from_unix_nano(NS),
    }
    book = {
        "T": "o",
        "S": "BTC/USD",
        "t": format_rfc3339_ns(NS + 1),
        "b": [{"p": 60000.01, "s": 0.5}],
        "a": [],
        "r": True,
    }
    with CaptureWriter(path) as w:
        w.write_frame("stocks", NS + 10, [quote])
        w.write_frame("crypto", NS + 20, [book])
        w.flush()
    frames = list(read_capture(path))
    assert frames == [
        CaptureFrame(NS + 10, "stocks", [{**quote, "t": format_rfc3339_ns(NS)}]),
        CaptureFrame(NS + 20, "crypto", [book]),
    ]


def test_writer_refuses_an_unknown_feed(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path / "x.jsonl") as w, pytest.raises(ValueError, match="feed"):
        w.write_frame("options", 1, [])


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"recv_ns": "1", "feed": "stocks", "msgs": []}', "recv_ns"),
        ('{"recv_ns": 1, "feed": "forex", "msgs": []}', "feed"),
        ('{"recv_ns": 1, "feed": "stocks", "msgs": [1]}', "msgs"),
        ('{"recv_ns": 1, "feed": "stocks", "msgs": [{"T": "q", "t": 5}]}', "RFC 3339"),
    ],
)
def test_a_malformed_line_names_its_line_number(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = '{"recv_ns": 1, "feed": "stocks", "msgs": []}'
    path.write_text(f"{good}\n\n{line}\n")
    frames = read_capture(path)
    assert next(frames).recv_ns == 1
    with pytest.raises(CaptureFormatError, match=rf"bad\.jsonl:3: .*{problem}"):
        next(frames)
