"""orderdesk-ledger: an append-only, tamper-evident ledger for Order Desk posts."""

__version__ = "0.1.0"
