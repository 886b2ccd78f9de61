"""dlt source for Instamojo's developer-platform API: one merchant's profile, contact, payments,
payouts, products and orders, incrementally (see source.py, and docs/sync.md for the behaviour)."""

from .source import RunNotes, instamojo_source

__all__ = ["instamojo_source", "RunNotes"]
