"""Execution's order manager: the orders zerotick sent and what became of them — the per-order state
machine, the tracker that turns venue news into sequenced OrderUpdate/Fill events, the durable
journal and the restore from it, placement (never twice), reconciliation with the venue, and the
trading gate asked before every POST."""
