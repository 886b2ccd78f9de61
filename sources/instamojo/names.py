"""The one rule for a merchant's name in this project.

A name is what the operator calls a merchant (`make authorize MERCHANT=acme`): it names the
merchant's token file and appears in every row, in log lines and in SQL parameters. So it is
short and plain, checked wherever a name enters (configuration, the token store, the command
line, authorize), and a bad one is refused with the reason before anything is done with it.
"""

from __future__ import annotations

import re

MERCHANT_NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit (e.g. acme or acme_retail)"
_MERCHANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class MerchantNameError(ValueError):
    """A merchant name breaks the rule; the message quotes it (escaped) and says where it came from."""


def check_merchant_name(name: object, where: str = "") -> str:
    """`name` if it follows the rule, else `MerchantNameError` naming it and `where` it was found."""
    if isinstance(name, str) and _MERCHANT_NAME.fullmatch(name) and ".." not in name:
        return name
    origin = f" (from {where})" if where else ""
    raise MerchantNameError(f"merchant name {name!r}{origin} is not usable: use {MERCHANT_NAME_RULE}")


def is_merchant_name(name: object) -> bool:
    try:
        check_merchant_name(name)
    except MerchantNameError:
        return False
    return True
