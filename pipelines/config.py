"""The pipeline's settings, read the dlt way: `.dlt/config.toml`, `.dlt/secrets.toml` and
environment variables (`SOURCES__INSTAMOJO__CLIENT_SECRET`, `INSTAMOJO_ELT__DESTINATION`, …),
environment first.

Every value is checked where it is read: a bad one is a `ConfigError` (exit 2) naming the key,
where it came from (the environment variable or the file) and what is allowed. A file that does
not parse is an error naming the file and the line, and nothing else is read past it. Relative
paths are resolved against the project folder the command runs in (the folder holding `.dlt/`)
before dlt sees them, so a copied project folder works on its own files.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dlt
from dlt.common.configuration.exceptions import ConfigProviderException

from sources.instamojo import settings as source_settings
from sources.instamojo.names import MerchantNameError, check_merchant_name
from sources.instamojo.personal import GROUPS as PERSONAL_GROUPS
from sources.instamojo.personal import MIN_KEY_LENGTH, PersonalDataPolicy
from sources.instamojo.personal import MODES as PERSONAL_MODES
from sources.instamojo.token_store import (
    DEFAULT_TOKEN_STORE,
    TokenStore,
    TokenStoreError,
)

SOURCE_SECTION = "sources.instamojo"
PIPELINE_SECTION = "instamojo_elt"
DESTINATIONS = ("duckdb", "postgres")
ENGINE_PIPELINE = "instamojo__sync"  # two underscores: no merchant's earlier pipeline had this name
PERSONAL_SECTION = f"{SOURCE_SECTION}.personal_data"
PII_KEY = f"{SOURCE_SECTION}.pii_key"
DEFAULT_REVOKED_GRACE_DAYS = 30.0


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
    products_full_read_hours: float = source_settings.DEFAULT_PRODUCTS_FULL_READ_HOURS
    page_concurrency: int = source_settings.DEFAULT_PAGE_CONCURRENCY
    page_size: int | None = source_settings.DEFAULT_PAGE_SIZE
    merchant_concurrency: int = source_settings.DEFAULT_MERCHANT_CONCURRENCY
    max_requests_per_second: float | None = None
    app_max_requests_per_second: float | None = None
    batch_rows: int = source_settings.DEFAULT_BATCH_ROWS


@dataclass(frozen=True)
class PersonalDataSettings:
    """`[sources.instamojo.personal_data]` (docs/personal-data.md): a mode per group of personal
    fields, the HMAC key (`sources.instamojo.pii_key`, secrets only; `repr` never shows it), how
    long a revoked merchant waits before `make forget` is due, and the optional retention."""

    modes: dict[str, str] = field(default_factory=dict)
    key: str | None = field(default=None, repr=False)
    revoked_grace_days: float = DEFAULT_REVOKED_GRACE_DAYS
    retention_days: float | None = None
    retention_action: str = "drop"

    @property
    def needs_key(self) -> bool:
        retention = self.retention_days is not None and self.retention_action == "pseudonymize"
        return "pseudonymize" in self.modes.values() or retention

    def policy(self) -> PersonalDataPolicy:
        """The policy the source applies; a ConfigError (exit 2) when `pseudonymize` is asked for
        without a usable key, raised before any request is made."""
        if self.needs_key and not self.key:
            groups = ", ".join([f"{PERSONAL_SECTION}.{g}" for g, m in sorted(self.modes.items()) if m == "pseudonymize"]
                               or [f"{PERSONAL_SECTION}.pii_retention_action"])
            raise ConfigError(
                f"{groups} = \"pseudonymize\" needs a secret key: set {PII_KEY} in .dlt/secrets.toml or the "
                f"environment variable {env_name(PII_KEY)} (at least {MIN_KEY_LENGTH} characters, e.g. the output "
                "of `python -c 'import secrets; print(secrets.token_hex(32))'`; keep it: the same key gives the "
                "same tokens). Nothing was synced.")
        return PersonalDataPolicy(dict(self.modes), self.key if self.needs_key else None)


@dataclass(frozen=True)
class Settings:
    """Everything a sync needs. `repr` never shows a secret. Paths are absolute."""

    base_url: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    merchants: tuple[str, ...]
    refresh_tokens: dict[str, str] = field(repr=False)
    token_store_path: Path
    destination: str = "duckdb"
    # the DuckDB file analysts open: a copy the pipeline publishes after each run (see
    # pipelines/warehouse.py); the pipeline itself writes `duckdb_work_path`
    duckdb_path: Path = Path("data/warehouse.duckdb")
    # DuckDB's buffer pool during loads (docs/sync.md, "Memory")
    duckdb_memory_limit: str = "256MB"
    postgres_credentials: str | None = field(default=None, repr=False)
    raw_dataset: str = "instamojo_raw"
    marts_dataset: str = "instamojo"
    pipelines_dir: Path = Path("data/pipelines")
    source: SourceOptions = SourceOptions()
    personal: PersonalDataSettings = field(default_factory=PersonalDataSettings)

    def __post_init__(self) -> None:
        # relative paths mean the project folder the command runs in, resolved now, before dlt
        # (which remembers a pipeline's first working folder) or anything else sees them
        for name in ("token_store_path", "duckdb_path", "pipelines_dir"):
            path = Path(getattr(self, name)).expanduser()
            object.__setattr__(self, name, path if path.is_absolute() else Path.cwd() / path)
        # the token store is a folder (a path ending in .json names an earlier version's file)
        object.__setattr__(self, "token_store_path", TokenStore(self.token_store_path).path)

    @property
    def token_store(self) -> TokenStore:
        return TokenStore(self.token_store_path)

    @property
    def lock_path(self) -> Path:
        return self.pipelines_dir / "sync.lock"

    @property
    def duckdb_work_path(self) -> Path:
        """The DuckDB file the pipeline loads and transforms into; only the pipeline opens it."""
        return self.pipelines_dir / "work.duckdb"

    @property
    def pipeline_name(self) -> str:
        return ENGINE_PIPELINE

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def require_credentials(self) -> None:
        """Explain, without showing any secret, what is missing before a sync can run."""
        self.personal.policy()  # a missing HMAC key is a configuration error before any request
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


def env_name(key: str) -> str:
    """The environment variable dlt reads for `key` (`sources.instamojo.x` → `SOURCES__INSTAMOJO__X`)."""
    return key.upper().replace(".", "__")


class ConfigReader:
    """Reads keys through dlt's providers and says where each value came from."""

    def __init__(self, project_dir: Path | None = None) -> None:
        self.project_dir = (project_dir or Path.cwd()).resolve()
        self._files: dict[str, dict[str, Any]] = {}

    def get(self, key: str, default: Any = None, *, secret: bool = False) -> Any:
        accessor = dlt.secrets if secret else dlt.config
        try:
            value: Any = accessor.get(key)
        except ConfigProviderException as exc:
            # a file that does not parse: dlt's message names the file and the line
            raise ConfigError(f"cannot read the configuration: {_one_line(exc)}") from None
        return default if value is None else value

    def where(self, key: str) -> str:
        """Where `key` is set: its environment variable, the file holding it, or the default."""
        name = env_name(key)
        if name in os.environ:
            return f"environment variable {name}"
        for file in (".dlt/secrets.toml", ".dlt/config.toml"):
            doc = self._file(file)
            node: Any = doc
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return str(self.project_dir / file)
        return "the default"

    def number(self, key: str, default: float | None, *, kind: type = float, minimum: float | None = None,
               positive: bool = False, maximum: float | None = None) -> Any:
        """A finite number within bounds, else a ConfigError naming the key, its source and the rule."""
        value = self.get(key)
        if value is None or value == "":
            return default
        rule = ("an integer" if kind is int else "a number") + (
            " greater than 0" if positive else f" of at least {minimum:g}" if minimum is not None else "")
        if maximum is not None:
            rule += f" and at most {maximum:g}"
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if kind is int:
                if not number.is_integer():
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError, OverflowError):
            raise self.invalid(key, value, rule) from None
        if not math.isfinite(number) or (positive and number <= 0) or (minimum is not None and number < minimum) \
                or (maximum is not None and number > maximum):
            raise self.invalid(key, value, rule)
        return number

    def path(self, key: str, default: str | Path) -> Path:
        """A path, relative ones resolved against the project folder."""
        value = self.get(key, default)
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise self.invalid(key, value, "a file or folder path")
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else self.project_dir / path

    def identifier(self, key: str, default: str) -> str:
        """A dataset (schema) name: lower-case letters, digits and '_' (what dlt would make of it anyway)."""
        value = str(self.get(key, default))
        if not value or not value.replace("_", "").isalnum() or not value.isascii() or value[0].isdigit() \
                or value != value.lower() or len(value) > 50:
            raise self.invalid(key, value, "a schema name of lower-case letters, digits and '_' (at most 50)")
        return value

    def invalid(self, key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{key} = {value!r} (from {self.where(key)}) is not valid: it must be {allowed}")

    def _file(self, relative: str) -> dict[str, Any]:
        if relative not in self._files:
            try:
                self._files[relative] = tomllib.loads((self.project_dir / relative).read_text())
            except (OSError, tomllib.TOMLDecodeError):
                self._files[relative] = {}
        return self._files[relative]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def load_personal_data(cfg: ConfigReader) -> PersonalDataSettings:
    """`[sources.instamojo.personal_data]` and the key. The key is a secret: in the committed
    config.toml it is an error (it would be in git), wherever else it is read from."""
    modes = {}
    for group in PERSONAL_GROUPS:
        key = f"{PERSONAL_SECTION}.{group}"
        value = cfg.get(key, "keep")
        mode = value.strip().lower() if isinstance(value, str) else value
        if mode not in PERSONAL_MODES:
            raise cfg.invalid(key, value, "one of " + ", ".join(f'"{m}"' for m in PERSONAL_MODES))
        modes[group] = mode
    for key in (PII_KEY, f"{PERSONAL_SECTION}.pii_key"):
        node: Any = cfg._file(".dlt/config.toml")
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            raise ConfigError(
                f"{key} is set in {cfg.project_dir / '.dlt/config.toml'}, which is committed: a key there is "
                f"no secret. Remove it, and set {PII_KEY} in .dlt/secrets.toml (git-ignored) or the environment "
                f"variable {env_name(PII_KEY)} instead.")
    key_value = cfg.get(PII_KEY, secret=True)
    if key_value is not None and (not isinstance(key_value, str) or len(key_value.strip()) < MIN_KEY_LENGTH):
        # the value itself is never shown
        raise cfg.invalid(PII_KEY, "***", f"a string of at least {MIN_KEY_LENGTH} characters")
    key_text = key_value.strip() if isinstance(key_value, str) else None
    if key_text:
        from sources.instamojo.errors import register_secret

        register_secret(key_text)
    return PersonalDataSettings(
        modes=modes,
        key=key_text,
        revoked_grace_days=cfg.number(f"{PERSONAL_SECTION}.revoked_grace_days", DEFAULT_REVOKED_GRACE_DAYS,
                                      minimum=0),
        retention_days=cfg.number(f"{PERSONAL_SECTION}.pii_retention_days", None, minimum=0),
        retention_action=_retention_action(cfg),
    )


def _retention_action(cfg: ConfigReader) -> str:
    key = f"{PERSONAL_SECTION}.pii_retention_action"
    value = cfg.get(key, "drop")
    if value not in ("drop", "pseudonymize"):
        raise cfg.invalid(key, value, 'one of "drop", "pseudonymize"')
    return str(value)


def load_settings(project_dir: Path | None = None) -> Settings:
    """Read and check the settings from dlt's config providers (environment, then .dlt/*.toml)."""
    cfg = ConfigReader(project_dir)
    token_store_path = cfg.path(f"{SOURCE_SECTION}.token_store_path", DEFAULT_TOKEN_STORE)
    configured = cfg.get(f"{SOURCE_SECTION}.merchants", [])
    if isinstance(configured, str):  # an environment variable: "acme,globex"
        configured = [m.strip() for m in configured.split(",") if m.strip()]
    if not isinstance(configured, list):
        raise cfg.invalid(f"{SOURCE_SECTION}.merchants", configured, "a list of merchant names")
    tokens = cfg.get(f"{SOURCE_SECTION}.refresh_tokens", {}, secret=True) or {}
    if not isinstance(tokens, dict):
        raise cfg.invalid(f"{SOURCE_SECTION}.refresh_tokens", "…", "a table of merchant = token")
    try:
        for name in configured:
            check_merchant_name(name, f"{SOURCE_SECTION}.merchants in {cfg.where(f'{SOURCE_SECTION}.merchants')}")
        for name in tokens:
            check_merchant_name(name, f"{SOURCE_SECTION}.refresh_tokens in {cfg.where(f'{SOURCE_SECTION}.refresh_tokens')}")
        merchants = list(configured)
        if not merchants:
            # nothing listed: every merchant that has a token (configured or authorized) is synced
            merchants = sorted(set(tokens) | set(TokenStore(token_store_path).merchants()))
    except MerchantNameError as exc:
        raise ConfigError(str(exc)) from None
    except TokenStoreError as exc:
        raise ConfigError(str(exc)) from None
    for merchant in merchants:
        # environment variables (SOURCES__INSTAMOJO__REFRESH_TOKENS__ACME) cannot be listed as a
        # table, only looked up by name
        if merchant not in tokens:
            value = cfg.get(f"{SOURCE_SECTION}.refresh_tokens.{merchant}", secret=True)
            if value:
                tokens[merchant] = value
    destination = str(cfg.get(f"{PIPELINE_SECTION}.destination", "duckdb")).lower()
    if destination not in DESTINATIONS:
        raise cfg.invalid(f"{PIPELINE_SECTION}.destination", destination, "one of " + ", ".join(DESTINATIONS))
    k = SOURCE_SECTION
    src = SourceOptions(
        payments_lookback_days=cfg.number(f"{k}.payments_lookback_days", SourceOptions.payments_lookback_days, minimum=0),
        payouts_lookback_days=cfg.number(f"{k}.payouts_lookback_days", SourceOptions.payouts_lookback_days, minimum=0),
        products_lookback_days=cfg.number(f"{k}.products_lookback_days", SourceOptions.products_lookback_days, minimum=0),
        orders_lookback_days=cfg.number(f"{k}.orders_lookback_days", SourceOptions.orders_lookback_days, minimum=0),
        pending_orders_window_days=cfg.number(f"{k}.pending_orders_window_days",
                                              SourceOptions.pending_orders_window_days, minimum=0),
        products_full_read_hours=cfg.number(f"{k}.products_full_read_hours",
                                            SourceOptions.products_full_read_hours, minimum=0),
        page_concurrency=cfg.number(f"{k}.page_concurrency", SourceOptions.page_concurrency, kind=int, minimum=1),
        page_size=cfg.number(f"{k}.page_size", SourceOptions.page_size, kind=int, minimum=1,
                             maximum=source_settings.MAX_PAGE_SIZE),
        merchant_concurrency=cfg.number(f"{k}.merchant_concurrency", SourceOptions.merchant_concurrency, kind=int,
                                        minimum=1, maximum=256),
        max_requests_per_second=cfg.number(f"{k}.max_requests_per_second", None, positive=True),
        app_max_requests_per_second=cfg.number(f"{k}.app_max_requests_per_second", None, positive=True),
        batch_rows=cfg.number(f"{k}.batch_rows", SourceOptions.batch_rows, kind=int, minimum=1),
    )
    pg = cfg.get("destination.postgres.credentials", secret=True)
    memory = str(cfg.get(f"{PIPELINE_SECTION}.duckdb_memory_limit", Settings.duckdb_memory_limit)).strip()
    if not memory or not memory[0].isdigit():
        raise cfg.invalid(f"{PIPELINE_SECTION}.duckdb_memory_limit", memory, "a size such as \"256MB\" or \"2GB\"")
    base_url = str(cfg.get(f"{SOURCE_SECTION}.base_url", source_settings.DEFAULT_BASE_URL)).strip()
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        # the API's paths (/v2/…, /oauth2/token/) are joined to it: a path here would hide them
        raise cfg.invalid(f"{SOURCE_SECTION}.base_url", base_url,
                          "the API's root URL, with no path, such as https://api.instamojo.com")
    return Settings(
        base_url=base_url,
        client_id=cfg.get(f"{SOURCE_SECTION}.client_id", secret=True),
        client_secret=cfg.get(f"{SOURCE_SECTION}.client_secret", secret=True),
        merchants=tuple(str(m) for m in merchants),
        refresh_tokens={str(key): str(v) for key, v in tokens.items()},
        token_store_path=token_store_path,
        destination=destination,
        duckdb_path=cfg.path(f"{PIPELINE_SECTION}.duckdb_path", "data/warehouse.duckdb"),
        duckdb_memory_limit=memory,
        # a DSN string here; dlt also resolves its own table form when this is None
        postgres_credentials=pg if isinstance(pg, str) else None,
        raw_dataset=cfg.identifier(f"{PIPELINE_SECTION}.raw_dataset", "instamojo_raw"),
        marts_dataset=cfg.identifier(f"{PIPELINE_SECTION}.marts_dataset", "instamojo"),
        pipelines_dir=cfg.path(f"{PIPELINE_SECTION}.pipelines_dir", "data/pipelines"),
        source=src,
        personal=load_personal_data(cfg),
    )
