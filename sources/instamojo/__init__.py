"""dlt source for Instamojo's developer-platform API: many merchants' profile, contact, payments,
payouts, products and orders, incrementally (see source.py, and docs/sync.md for the behaviour)."""

from .merchant import MerchantSpec
from .resources.common import RunNotes
from .source import instamojo_source

__all__ = ["instamojo_source", "MerchantSpec", "RunNotes"]
