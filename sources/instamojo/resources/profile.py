"""The merchant's own profile and contact: one object each (`/v2/user-info/`,
`/v2/user-contact/`), merged on the merchant's key every run. They also say which Instamojo
account the token belongs to (see `identity.py`), so they are read first."""

from __future__ import annotations

from typing import Any

from .. import settings as s
from ..errors import ScopeError
from .common import MerchantContext

PROFILE_ENDPOINTS: tuple[tuple[str, s.Endpoint], ...] = (
    ("user_info", s.USER_INFO_ENDPOINT),
    ("user_contact", s.USER_CONTACT_ENDPOINT),
)


def read_profile(ctx: MerchantContext, endpoint: s.Endpoint, resource: str, *, skip: bool) -> dict[str, Any] | None:
    """One single-object endpoint (None when the API refuses the scope; `skip` notes the
    resource as skipped)."""
    with ctx.notes.timer(resource):
        try:
            return ctx.api.get_json(ctx.api.url(endpoint.path), endpoint=endpoint.path)
        except ScopeError as exc:
            if skip:
                ctx.skip_for_scope(resource, exc)
            return None


def emit_profile(ctx: MerchantContext, endpoint: s.Endpoint, doc: dict[str, Any]) -> None:
    """The object as its table's row."""
    with ctx.notes.timer(endpoint.table.name):
        ctx.emit(endpoint.table, ctx.converter(endpoint.table, endpoint.path, id_field="username").convert([doc]))
