"""`make bench-pii`: what `pseudonymize` costs on the Arrow fast path.

The sandbox's payments (100,000 by default, a realistic mix of repeat buyers) as API pages of 500,
converted to Arrow the way a sync converts them (`ArrowConverter.convert_pages`, batches of
20,000 rows), once with every personal field kept and once with every group pseudonymized (the
conversion plus `PersonalDataPolicy.apply`, as `MerchantSync._emit` does). Best of three runs
each; printed as rows/s and the overhead. Nothing is loaded: this times only the part of the
source that changes.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import orjson


def _pages(payments: int, page_size: int) -> tuple[list[bytes], int]:
    from instamojo_sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(profile="bench", payments=payments)) as sb:
        records = sb.truth(sb.merchants[0], "payments")
    pages = [orjson.dumps({"payments": records[i:i + page_size], "success": True})
             for i in range(0, len(records), page_size)]
    buyers = len({r["email"] for r in records})
    return pages, buyers


def _best(run, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    """Measure and print the cost of pseudonymizing payments on the fast path."""
    from sources.instamojo.convert import ArrowConverter
    from sources.instamojo.personal import GROUPS, PersonalDataPolicy
    from sources.instamojo.schema import PAYMENTS

    parser = argparse.ArgumentParser(prog="bench-pii", description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    pages, buyers = _pages(args.payments, 500)
    per_batch = 20_000 // 500
    batches = [pages[i:i + per_batch] for i in range(0, len(pages), per_batch)]
    converter = ArrowConverter(PAYMENTS, merchant="bench", endpoint="/v2/payments/", synced_at=datetime.now(UTC))
    tables: list = []

    def convert() -> None:
        tables[:] = [converter.convert_pages(batch, "payments") for batch in batches]

    def pseudonymize() -> None:
        # a fresh policy each time: its token cache starts empty, as at the start of a sync
        policy = PersonalDataPolicy(dict.fromkeys(GROUPS, "pseudonymize"), "bench-key-" + "0" * 32)
        for table in tables:
            policy.apply("payments", table)

    keep = _best(convert, args.repeat)
    extra = _best(pseudonymize, args.repeat)
    rows = sum(t.num_rows for t in tables)
    print(f"{rows:,} payments ({buyers:,} distinct buyers), batches of 20,000 rows, best of {args.repeat}:")
    print(f"  conversion (keep)           {keep:7.3f} s  {rows / keep:12,.0f} rows/s")
    print(f"  + pseudonymize (3 columns)  {extra:7.3f} s  {rows / (keep + extra):12,.0f} rows/s overall "
          f"(+{extra / keep * 100:.0f}% of the conversion, {extra / rows * 1e6:.2f} µs per payment)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
