"""The Instamojo sandbox: a local emulator of Instamojo's developer-platform API (OAuth2,
user-info, user-contact, payments, payouts, products and covers, orders), deterministic from a
seed, with a clock, faults, anomalies and ground truth. It knows nothing of the pipeline.

Start it with ``python -m instamojo_sandbox`` (``--help``) or in-process with :class:`Sandbox`.
"""

from .anomalies import ANOMALY_KINDS, AnomalyError
from .config import (
    ALL_SCOPES,
    DEFAULT_NOW,
    DEMO_APP,
    PROFILES,
    App,
    Rates,
    SandboxConfig,
)
from .faults import FAULT_KINDS, FaultRule
from .server import Sandbox

__all__ = [
    "ALL_SCOPES",
    "ANOMALY_KINDS",
    "DEFAULT_NOW",
    "DEMO_APP",
    "FAULT_KINDS",
    "PROFILES",
    "AnomalyError",
    "App",
    "FaultRule",
    "Rates",
    "Sandbox",
    "SandboxConfig",
]
