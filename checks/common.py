"""Expectations shared by the raw and the marts suites: keys, exact money, value sets."""

from __future__ import annotations

from collections.abc import Iterable

from checks.spec import Expect, Severity

# "Amounts are decimal strings with 2 places" (the reference's examples: "9494.00"): a value
# with a third decimal place, or in exponent form, is not an amount. Checked on the exact text
# of the Decimal (great-expectations applies the regex to str(value)); trailing zeros past the
# second place are allowed (10.500 is two-place money in a wider column).
TWO_PLACES_REGEX = r"^-?[0-9]+(?:\.[0-9]{0,2}0*)?$"

CURRENCIES = ["INR"]  # "currency: Type of Currency (INR)" — the reference, payments and payouts


def key_expectations(key: Iterable[str], label: str = "primary key") -> list[Expect]:
    """Every key column not null, and the key unique."""
    key = tuple(key)
    out = [
        Expect(
            "ExpectColumnValuesToNotBeNull", {"column": col}, "error",
            f"{col} is never null ({label})",
            "a row without its key cannot be merged, joined or reported",
        )
        for col in key
    ]
    if len(key) == 1:
        out.append(
            Expect(
                "ExpectColumnValuesToBeUnique", {"column": key[0]}, "error",
                f"{key[0]} is unique ({label})",
                "a duplicated row is counted twice in every sum built on it",
            )
        )
    else:
        out.append(
            Expect(
                "ExpectCompoundColumnsToBeUnique", {"column_list": list(key)}, "error",
                f"({', '.join(key)}) is unique ({label})",
                "a duplicated row is counted twice in every sum built on it",
            )
        )
    return out


def money_expectations(
    col: str,
    *,
    not_null: bool = False,
    non_negative: bool = False,
    not_null_why: str = "the API always sends this amount; null means it sent a non-number or the sync lost it",
    non_negative_why: str = "this amount cannot be negative in Instamojo's domain; a negative one corrupts every total",
    non_negative_severity: Severity = "error",
) -> list[Expect]:
    """Exact decimal with at most two places; optionally never null and never negative."""
    out = [
        Expect(
            "ExpectColumnValuesToBeOfType", {"column": col, "type_": "Decimal"}, "error",
            f"{col} is an exact decimal (DECIMAL in the warehouse, never a float or text)",
            "binary floats cannot hold paise exactly; sums drift and reconciliation lies",
        ),
        Expect(
            "ExpectColumnValuesToMatchRegex", {"column": col, "regex": TWO_PLACES_REGEX}, "error",
            f"{col} has at most two decimal places",
            "rupees have two decimals (paise); a third place means a wrong type or a unit mix-up",
        ),
    ]
    if not_null:
        out.append(
            Expect("ExpectColumnValuesToNotBeNull", {"column": col}, "error", f"{col} is never null", not_null_why)
        )
    if non_negative:
        # min_value 0 reaches great-expectations as 0.0; comparing a Decimal with 0.0 is exact
        out.append(
            Expect("ExpectColumnValuesToBeBetween", {"column": col, "min_value": 0}, non_negative_severity,
                   f"{col} ≥ 0", non_negative_why)
        )
    return out


def in_set(col: str, values: Iterable[str], severity: Severity, why: str) -> Expect:
    """The column holds only these values (NULL is not judged)."""
    values = list(values)
    return Expect(
        "ExpectColumnValuesToBeInSet", {"column": col, "value_set": values}, severity,
        f"{col} is one of {', '.join(values)}", why,
    )


def currency_inr(col: str = "currency") -> Expect:
    return Expect(
        "ExpectColumnValuesToBeInSet", {"column": col, "value_set": CURRENCIES}, "error",
        f"{col} is INR",
        "every sum adds rupees; another currency would be added as if it were INR",
    )
