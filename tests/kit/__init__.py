"""The shared test kit: one place for what several test folders need.

waiting.py       until (async) and wait_until (sync): poll a condition with a deadline
system.py        whole-system helpers: free ports, TOML configs, the CLI, `zerotick up` (system_up),
                 stopping processes by PID, logs
ledger.py        each ledger of a running system read its own way (venue, execution, risk, journal)
execution.py     an ExecutionService on the test's loop, seen through risk's sockets (Harness)
tiny_venue.py    a minimal Alpaca REST + trade_updates venue with fault injection
fake_execution.py  a fake execution service for risk's tests (sequenced events, positions snapshots)
market_data.py   the market_data service as a process, its subscriber, its config
alpaca_frames.py Alpaca market-data frames (msgpack) as the venue sends them
trading_venue.py the venue's trading side (REST, trade_updates) in a thread (SimServer)
md_venue.py      the whole venue in a thread, its exchange recording what the feed told it
md_client.py     a raw market-data WebSocket client (msgpack or JSON)
trade_updates.py alpaca-py's TradingStream collecting trade updates; held delayed steps; /sim calls
"""
