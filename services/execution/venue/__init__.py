"""Execution's venue gateway: everything that speaks Alpaca's protocol — the HTTP/1.1 pool, the REST
client (rate-limited, secrets scrubbed), the order POST body, the trade_updates stream, the account
poller, and emptying the venue for the kill switch. It holds no order state of its own."""
