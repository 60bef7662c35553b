"""Invariant checker for operators: `python -m boxoffice.processes.verify` (locally `stack/boxo
verify`).

Reads a Boxoffice database in one REPEATABLE READ, READ ONLY transaction and checks what must
always hold (seats sold = seats allocated to live bookings, no shard over capacity, every booking
announced through the outbox, one order with the right tickets per confirmed booking, per-customer
ticket counts...; the list is `boxoffice.adapters.invariants.CHECKS`). Prints one line per check
with the number of offending rows and the first few ids, and exits 0 when every check holds, 1 on
any violation, 2 when the database cannot be read. It never writes, so it is safe against
production (in the cluster: the chart's `boxoffice-verify` CronJob, docs/deploy.md).

    python -m boxoffice.processes.verify                 # $BOXOFFICE_DATABASE_URL
    python -m boxoffice.processes.verify --database-url postgresql://...  [--limit 10] [--json]

Outbox rows are expected only while younger than BOXOFFICE_OUTBOX_RETENTION_DAYS (housekeeping
prunes published ones past it); give the checker the same value as housekeeping.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import psycopg

from boxoffice.adapters.invariants import run_checks
from boxoffice.config import env_value
from boxoffice.errors import ConfigurationError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.verify", description=__doc__
    )
    parser.add_argument("--database-url", help="default: $BOXOFFICE_DATABASE_URL")
    parser.add_argument("--limit", type=int, default=5, help="offending ids shown per check")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--outbox-retention-days", type=int, help="default: $BOXOFFICE_OUTBOX_RETENTION_DAYS"
    )
    args = parser.parse_args(argv)
    try:
        url = args.database_url or env_value("BOXOFFICE_DATABASE_URL")
        retention = args.outbox_retention_days or _days(
            env_value("BOXOFFICE_OUTBOX_RETENTION_DAYS")
        )
    except ConfigurationError as exc:
        print(f"verify: {exc.detail}", file=sys.stderr)
        return 2
    try:
        results = run_checks(url, limit=max(1, args.limit), outbox_retention_days=retention)
    except psycopg.Error as exc:
        print(f"verify: cannot read the database: {exc}".strip(), file=sys.stderr)
        return 2
    broken = [r for r in results if not r.ok]
    if args.json:
        doc = {
            "ok": not broken,
            "checks": [
                {
                    "name": r.check.name,
                    "invariant": r.check.invariant,
                    "violations": r.violations,
                    "examples": r.examples,
                }
                for r in results
            ],
        }
        print(json.dumps(doc, indent=2))
    else:
        width = max(len(r.check.name) for r in results)
        for r in results:
            if r.ok:
                print(f"ok    {r.check.name:<{width}}  {r.check.invariant}")
            else:
                shown = ", ".join(r.examples)
                more = (
                    f" (+{r.violations - len(r.examples)} more)"
                    if r.violations > len(r.examples)
                    else ""
                )
                print(f"FAIL  {r.check.name:<{width}}  {r.violations} violation(s): {shown}{more}")
                print(f"      {'':<{width}}  invariant: {r.check.invariant}")
        print(
            f"verify: {len(results) - len(broken)} of {len(results)} checks hold"
            + (f"; {len(broken)} broken" if broken else "")
        )
    return 1 if broken else 0


def _days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigurationError(f"BOXOFFICE_OUTBOX_RETENTION_DAYS must be >= 1, got {raw!r}")
    return days


if __name__ == "__main__":
    sys.exit(main())
