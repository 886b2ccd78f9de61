"""The pipeline's settings, read the dlt way: `.dlt/config.toml`, `.dlt/secrets.toml` and
environment variables (`SOURCES__INSTAMOJO__CLIENT_SECRET`, `INSTAMOJO_ELT__DESTINATION`, …),
environment first."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dlt

from sources.instamojo import settings as source_settings
from sources.instamojo.token_store import DEFAULT_TOKEN_STORE, TokenStore

SOURCE_SECTION = "sources.instamojo"
PIPELINE_SECTION = "instamojo_elt"
DESTINATIONS = ("duckdb", "postgres")


class ConfigError(RuntimeError):
    """Configuration is missing or wrong; the message says what to set and where."""


@dataclass(frozen=True)
class SourceOptions:
    """Knobs passed to the dlt source for every merchant (see `instamojo_source`'s docstring)."""

    payments_lookback_days: float = source_settings.DEFAULT_PAYMENTS_LOOKBACK_DAYS
    payouts_lookback_days: float = source_settings.DEFAULT_PAYOUTS_LOOKBACK_DAYS
    products_lookback_days: float = source_settings.DEFAULT_PRODUCTS_LOOKBACK_DAYS
    orders_lookback_days: float = source_settings.DEFAULT_ORDERS_LOOKBACK_DAYS
    pending_orders_window_days: float = source_settings.DEFAULT_PENDING_ORDERS_WINDOW_DAYS
    page_concurrency: int = source_settings.DEFAULT_PAGE_CONCURRENCY
    max_requests_per_second: float | None = None
    batch_rows: int = source_settings.DEFAULT_BATCH_ROWS


@dataclass(frozen=True)
class Settings:
    """Everything a sync needs. `repr` never shows a secret."""

    base_url: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    merchants: tuple[str, ...]
    refresh_tokens: dict[str, str] = field(repr=False)
    token_store_path: Path
    destination: str = "duckdb"
    duckdb_path: Path = Path("data/instamojo.duckdb")
    duckdb_memory_limit: str = "384MB"
    postgres_credentials: str | None = field(default=None, repr=False)
    raw_dataset: str = "instamojo_raw"
    marts_dataset: str = "instamojo"
    pipelines_dir: Path = Path("data/pipelines")
    source: SourceOptions = SourceOptions()

    @property
    def token_store(self) -> TokenStore:
        return TokenStore(self.token_store_path)

    @property
    def lock_path(self) -> Path:
        return self.pipelines_dir / "sync.lock"

    def pipeline_name(self, merchant: str) -> str:
        return f"instamojo_{merchant}"

    def with_overrides(self, **changes: Any) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def require_credentials(self) -> None:
        """Explain, without showing any secret, what is missing before a sync can run."""
        missing = [n for n, v in (("client_id", self.client_id), ("client_secret", self.client_secret)) if not v]
        if missing or not self.merchants:
            what = []
            if missing:
                what.append(
                    "the app's OAuth client: set " + " and ".join(f"{SOURCE_SECTION}.{m}" for m in missing)
                    + " in .dlt/secrets.toml (copy .dlt/secrets.toml.example) or the environment variables "
                    + ", ".join(f"SOURCES__INSTAMOJO__{m.upper()}" for m in missing)
                )
            if not self.merchants:
                what.append(
                    "at least one merchant: run `make authorize MERCHANT=<name>` (OAuth in the browser; "
                    f"stores the merchant's refresh token in {self.token_store_path}), or list names in "
                    f"{SOURCE_SECTION}.merchants with their tokens in {SOURCE_SECTION}.refresh_tokens.<name>"
                )
            raise ConfigError(
                "instamojo-elt is not configured yet. Missing:\n  - " + "\n  - ".join(what)
                + "\nTo see the whole pipeline run against the local Instamojo sandbox instead, run `make demo`."
            )


def _get(key: str, default: Any = None, secret: bool = False) -> Any:
    accessor = dlt.secrets if secret else dlt.config
    try:
        value = accessor.get(key)
    except Exception:  # a provider that cannot parse its file: let the caller's default stand
        value = None
    return default if value is None else value


def _number(key: str, default: float | None, kind: type = float) -> Any:
    value = _get(key)
    if value is None:
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None


def load_settings() -> Settings:
    """Read the settings from dlt's config providers (environment, then .dlt/*.toml)."""
    token_store_path = Path(_get(f"{SOURCE_SECTION}.token_store_path", str(DEFAULT_TOKEN_STORE)))
    configured = _get(f"{SOURCE_SECTION}.merchants", [])
    if isinstance(configured, str):  # an environment variable: "acme,globex"
        configured = [m.strip() for m in configured.split(",") if m.strip()]
    tokens = _get(f"{SOURCE_SECTION}.refresh_tokens", {}, secret=True) or {}
    if not isinstance(tokens, dict):
        raise ConfigError(f"{SOURCE_SECTION}.refresh_tokens must be a table of merchant = token")
    merchants = list(configured)
    if not merchants:
        # nothing listed: every merchant that has a token (configured or authorized) is synced
        merchants = sorted(set(tokens) | set(TokenStore(token_store_path).merchants()))
    for merchant in merchants:
        # environment variables (SOURCES__INSTAMOJO__REFRESH_TOKENS__ACME) cannot be listed as a
        # table, only looked up by name
        if merchant not in tokens:
            value = _get(f"{SOURCE_SECTION}.refresh_tokens.{merchant}", secret=True)
            if value:
                tokens[merchant] = value
    destination = str(_get(f"{PIPELINE_SECTION}.destination", "duckdb")).lower()
    if destination not in DESTINATIONS:
        raise ConfigError(f"{PIPELINE_SECTION}.destination must be one of {', '.join(DESTINATIONS)}, got {destination!r}")
    src = SourceOptions(
        payments_lookback_days=_number(f"{SOURCE_SECTION}.payments_lookback_days", SourceOptions.payments_lookback_days),
        payouts_lookback_days=_number(f"{SOURCE_SECTION}.payouts_lookback_days", SourceOptions.payouts_lookback_days),
        products_lookback_days=_number(f"{SOURCE_SECTION}.products_lookback_days", SourceOptions.products_lookback_days),
        orders_lookback_days=_number(f"{SOURCE_SECTION}.orders_lookback_days", SourceOptions.orders_lookback_days),
        pending_orders_window_days=_number(
            f"{SOURCE_SECTION}.pending_orders_window_days", SourceOptions.pending_orders_window_days
        ),
        page_concurrency=_number(f"{SOURCE_SECTION}.page_concurrency", SourceOptions.page_concurrency, int),
        max_requests_per_second=_number(f"{SOURCE_SECTION}.max_requests_per_second", None),
        batch_rows=_number(f"{SOURCE_SECTION}.batch_rows", SourceOptions.batch_rows, int),
    )
    return Settings(
        base_url=str(_get(f"{SOURCE_SECTION}.base_url", source_settings.DEFAULT_BASE_URL)),
        client_id=_get(f"{SOURCE_SECTION}.client_id", secret=True),
        client_secret=_get(f"{SOURCE_SECTION}.client_secret", secret=True),
        merchants=tuple(str(m) for m in merchants),
        refresh_tokens={str(k): str(v) for k, v in tokens.items()},
        token_store_path=token_store_path,
        destination=destination,
        duckdb_path=Path(_get(f"{PIPELINE_SECTION}.duckdb_path", "data/instamojo.duckdb")),
        duckdb_memory_limit=str(_get(f"{PIPELINE_SECTION}.duckdb_memory_limit", "384MB")),
        # a DSN string here; dlt also resolves its own table form when this is None
        postgres_credentials=pg if isinstance(pg := _get("destination.postgres.credentials", secret=True), str) else None,
        raw_dataset=str(_get(f"{PIPELINE_SECTION}.raw_dataset", "instamojo_raw")),
        marts_dataset=str(_get(f"{PIPELINE_SECTION}.marts_dataset", "instamojo")),
        pipelines_dir=Path(_get(f"{PIPELINE_SECTION}.pipelines_dir", "data/pipelines")),
        source=src,
    )

