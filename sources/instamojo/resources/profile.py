"""The merchant's own profile and contact: one object each (`/v2/user-info/`,
`/v2/user-contact/`), merged on the merchant's key every run."""

from __future__ import annotations

from typing import Any

from .. import settings as s
from ..errors import ScopeError
from .common import MerchantContext


def sync_profile(ctx: MerchantContext, endpoint: s.Endpoint, resource: str) -> dict[str, Any] | None:
    """Read one single-object endpoint and emit its row; returns the object (None when the scope
    was not granted)."""
    with ctx.notes.timer(resource):
        try:
            doc = ctx.api.get_json(ctx.api.url(endpoint.path), endpoint=endpoint.path)
        except ScopeError as exc:
            ctx.skip_for_scope(resource, exc)
            return None
        ctx.emit(endpoint.table, ctx.converter(endpoint.table, endpoint.path, id_field="username").convert([doc]))
        return doc
