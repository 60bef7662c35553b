"""The results table's rows and how figures are written in them: shared by the report
(benchmarks/report.py) and the scenarios that add their own rows (`report_rows`), which must not
import the report (it imports them)."""

from __future__ import annotations

import math
from typing import Any

Row = tuple[str, str, str, str, str, str]  # scenario, figure, median, min-max, target, verdict


def fmt(x: float, unit: str = "", digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}{unit}"


def minmax(d: dict[str, float], unit: str = "", digits: int = 0) -> tuple[str, str]:
    return fmt(
        d["median"], unit, digits
    ), f"{fmt(d['min'], '', digits)}-{fmt(d['max'], unit, digits)}"


def verdict(ok: bool, smoke: bool, client_limited: bool = False) -> str:
    """met / NOT met; `client_limited`: the load generator used more than half a core in the
    step in question, so the figure is no clean evidence of the system's limit."""
    if smoke:
        return "n/a (smoke)" + (" client-limited" if client_limited else "")
    return ("met" if ok else "NOT met") + (" (client-limited)" if client_limited else "")


def generator_text(step: dict[str, Any]) -> str:
    """`oha 12 % of a core, 0.021 ms/request` of an aggregated step."""
    share = step["generator_cpu_share"]["median"]
    per = step.get("generator_cpu_ms_per_request", {}).get("median", float("nan"))
    name = step.get("generator", "vegeta")
    return f"{name} {100 * share:.0f} % of a core, {fmt(per, '', 3)} ms/req"
