"""Buyers' (and merchants') personal data: which raw columns hold it, and what is done to it
before anything is written (docs/personal-data.md).

Three groups, each `keep` (load as the API sent it), `pseudonymize` (a keyed hash of the
normalised value) or `drop` (NULL):

- buyer_contact: the buyer's email and phone (payments, orders);
- buyer_identity: the buyer's name and postal address (payments' name; orders' buyer_name,
  buyer_address, buyer_city, buyer_state, buyer_zip). `buyer_country` is kept: a country names no
  one, and the API only sells in India;
- merchant_contact: the merchant's own name, email and phone (user_contact; user_info's
  full_name). The account id and username stay: they say which Instamojo account a token belongs
  to (identity.py).

A token is `h1:` and the first 32 hex digits (128 bits) of HMAC-SHA256(key, normalised value):
the same buyer gets the same token in payments and orders, across merchants and runs, as long as
the key is the same; without the key no one can test guesses (an unkeyed or constant-salt hash of
an Indian phone number is undone by trying all ten-digit numbers). The `h1:` prefix marks a value
as a token, so a rewrite of stored rows never hashes a token again, and says which scheme made it.

Normalisation, so one person is one token whatever the spelling: emails trimmed and lower-cased;
phones in E.164 (`+91` for bare ten-digit Indian numbers, a leading 0 or 91 read as India's trunk
or country code; spaces, dashes, dots and brackets removed); names and addresses trimmed,
whitespace collapsed and case-folded.

Applied per Arrow column: each distinct value is hashed once (dictionary encoding), so a batch of
20,000 payments from a few thousand buyers costs a few thousand HMACs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from .errors import register_secret

Mode = Literal["keep", "pseudonymize", "drop"]
MODES: tuple[str, ...] = ("keep", "pseudonymize", "drop")
GROUPS: tuple[str, ...] = ("buyer_contact", "buyer_identity", "merchant_contact")
Kind = Literal["email", "phone", "text"]

TOKEN_PREFIX = "h1:"
TOKEN_HEX_DIGITS = 32
_TOKEN = re.compile(r"^h1:[0-9a-f]{32}$")
# A key must be unguessable: at least this many characters (a 32-byte random hex string has 64).
MIN_KEY_LENGTH = 16
_CACHE_MAX = 500_000  # tokens remembered per run (about 100 MB at most)

# table → column → (group, how its values are normalised)
PERSONAL_COLUMNS: dict[str, dict[str, tuple[str, Kind]]] = {
    "payments": {
        "email": ("buyer_contact", "email"),
        "phone": ("buyer_contact", "phone"),
        "name": ("buyer_identity", "text"),
    },
    "orders": {
        "buyer_email": ("buyer_contact", "email"),
        "buyer_phone": ("buyer_contact", "phone"),
        "buyer_name": ("buyer_identity", "text"),
        "buyer_address": ("buyer_identity", "text"),
        "buyer_city": ("buyer_identity", "text"),
        "buyer_state": ("buyer_identity", "text"),
        "buyer_zip": ("buyer_identity", "text"),
    },
    "user_contact": {
        "full_name": ("merchant_contact", "text"),
        "email": ("merchant_contact", "email"),
        "phone": ("merchant_contact", "phone"),
    },
    "user_info": {
        "full_name": ("merchant_contact", "text"),
    },
}

_PHONE_NOISE = re.compile(r"[\s\-.()/]")
_SPACES = re.compile(r"\s+")


def normalise_email(value: str) -> str:
    return value.strip().lower()


def normalise_phone(value: str) -> str:
    """E.164 where the number allows it: `+91` for a bare ten-digit Indian number (also after a
    trunk `0` or a `91` without `+`), `00` read as `+`; other digit strings as they are."""
    text = _PHONE_NOISE.sub("", value.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        return text
    if not text.isdigit():
        return text
    if len(text) == 10:
        return "+91" + text
    if len(text) == 11 and text.startswith("0"):
        return "+91" + text[1:]
    if len(text) == 12 and text.startswith("91"):
        return "+" + text
    return text


def normalise_text(value: str) -> str:
    return _SPACES.sub(" ", value.strip()).casefold()


_NORMALISE = {"email": normalise_email, "phone": normalise_phone, "text": normalise_text}


def is_token(value: object) -> bool:
    """Whether `value` already is a token of this scheme (never hashed again)."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX) and _TOKEN.match(value) is not None


@dataclass(frozen=True)
class PersonalDataPolicy:
    """What to do with each group of personal fields, and the key for `pseudonymize`. `repr`
    never shows the key."""

    modes: Mapping[str, str] = field(default_factory=dict)
    key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for group, mode in self.modes.items():
            if group not in GROUPS or mode not in MODES:
                raise ValueError(f"personal data: {group} = {mode!r} is not one of {', '.join(MODES)}")
        if self.needs_key and (not self.key or len(self.key) < MIN_KEY_LENGTH):
            raise ValueError(f"personal data: pseudonymize needs a key of at least {MIN_KEY_LENGTH} characters")
        register_secret(self.key)
        # (kind, value) → token, shared by every merchant and batch of a run: a repeat buyer is
        # hashed once per run, not once per batch (bounded: cleared when it grows past _CACHE_MAX)
        object.__setattr__(self, "_cache", {})
        object.__setattr__(self, "_key_bytes", self.key.encode() if self.key else b"")

    def mode(self, group: str) -> str:
        return self.modes.get(group, "keep")

    @property
    def needs_key(self) -> bool:
        return "pseudonymize" in self.modes.values()

    @property
    def keeps_everything(self) -> bool:
        return all(self.mode(g) == "keep" for g in GROUPS)

    def columns(self, table: str) -> dict[str, tuple[str, Kind]]:
        """The columns of `table` this policy changes → (mode, kind)."""
        return {col: (self.mode(group), kind) for col, (group, kind) in PERSONAL_COLUMNS.get(table, {}).items()
                if self.mode(group) != "keep"}

    def token(self, value: str, kind: Kind) -> str:
        """The token of one value (a token stays as it is; an empty value stays empty)."""
        cache: dict[tuple[str, str], str] = self._cache  # type: ignore[attr-defined]
        found = cache.get((kind, value))
        if found is not None:
            return found
        if is_token(value):
            return value
        normalised = _NORMALISE[kind](value)
        if not normalised:
            return value
        assert self.key is not None
        digest = hmac.digest(self._key_bytes, normalised.encode(), hashlib.sha256)  # type: ignore[attr-defined]
        token = TOKEN_PREFIX + digest[: TOKEN_HEX_DIGITS // 2].hex()
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[(kind, value)] = token
        return token

    def tokens(self, values: Iterable[str | None], kind: Kind) -> list[str | None]:
        token = self.token
        return [None if v is None else token(v, kind) for v in values]

    def apply(self, table: str, rows: pa.Table) -> pa.Table:
        """`rows` of raw table `table` with this policy's columns pseudonymized or nulled."""
        for column, (mode, kind) in self.columns(table).items():
            index = rows.schema.get_field_index(column)
            if index < 0:
                continue
            data = rows.column(index)
            if mode == "drop":
                replaced: pa.Array | pa.ChunkedArray = pa.nulls(len(data), data.type)
            else:
                replaced = self._pseudonymize(data, kind)
            rows = rows.set_column(index, rows.schema.field(index), replaced)
        return rows

    def _pseudonymize(self, data: pa.ChunkedArray, kind: Kind) -> pa.Array | pa.ChunkedArray:
        if not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
            return data  # an all-NULL column (Arrow's null type): nothing to hash
        encoded = data.combine_chunks().dictionary_encode()
        tokens = pa.array(self.tokens(encoded.dictionary.to_pylist(), kind), type=data.type)
        return pc.take(tokens, encoded.indices)


KEEP_ALL = PersonalDataPolicy()
