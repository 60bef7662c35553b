"""The results table (terminal + Markdown), results.json, and PNG plots per scenario."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks import burst, overload, refusal, runtime, waiting_room
from benchmarks.load import CLIENT_LIMIT_SHARE, Attack, generator_runs
from benchmarks.table import Row, fmt, generator_text, minmax, verdict


def generator_rows(scenarios: dict[str, Any]) -> list[Row]:
    """Per scenario: the load generator's CPU per request (median and max over its attacks) and
    its largest share of a core; the steps where it used more than half a core are flagged
    client-limited."""
    out: list[Row] = []
    for name, result in scenarios.items():
        runs = [r for r in generator_runs(result) if r.get("requests")]
        if not runs:
            out.append(
                (
                    "load generator",
                    f"{name}: no load generator (in-process, or requests one at a time)",
                    "-",
                    "",
                    "",
                    "",
                )
            )
            continue
        per = [float(r["generator_cpu_ms_per_request"]) for r in runs]
        share = max(float(r["generator_cpu_share"]) for r in runs)
        limited = sorted(
            {
                f"{r.get('target_rate', 0):g}/s" if r.get("target_rate") else str(r.get("name"))
                for r in runs
                if r.get("client_limited")
            }
        )
        gens = sorted({str(r.get("generator", "vegeta")) for r in runs})
        out.append(
            (
                "load generator",
                f"{name}: {' + '.join(gens)} CPU per request (median · max) · max share of a core",
                f"{fmt(float(np.median(per)), ' ms', 3)}",
                f"max {fmt(max(per), ' ms', 3)} · {100 * share:.0f} % of a core",
                f"≤ {100 * CLIENT_LIMIT_SHARE:.0f} % of a core",
                ("client-limited @ " + ", ".join(limited)) if limited else "ok",
            )
        )
    return out


def rows(results: dict[str, Any]) -> list[Row]:  # noqa: PLR0912, PLR0915 - one table
    smoke = results["profile"]["smoke"]
    out: list[Row] = []
    s = results["scenarios"]
    if "catalogue" in s:
        for endpoint, sweep in s["catalogue"].items():
            best = sweep["max_sustainable_rate"]
            step = next((x for x in sweep["steps"] if x["target_rate"] == best), None)
            last = sweep["steps"][-1]
            limited = sweep.get("best_step_client_limited", False)
            out.append(
                (
                    "1 catalogue",
                    f"{endpoint}: max rate with p99 ≤ 100 ms",
                    fmt(best, "/s"),
                    f"steps {', '.join(str(x['target_rate']) for x in sweep['steps'])}",
                    "≥ 3,000 reads/s",
                    verdict(best >= 3000, smoke, limited),
                )
            )
            if step:
                out.append(
                    (
                        "1 catalogue",
                        f"{endpoint} @ {best}/s: reads/s · p99 · server CPU per read",
                        f"{fmt(step['ok_rate']['median'], '/s')} · "
                        f"{fmt(step['p99_ms']['median'], ' ms', 1)} · "
                        f"{fmt(step['server_cpu_ms_per_request']['median'], ' ms', 2)}",
                        f"p99 {minmax(step['p99_ms'], ' ms', 1)[1]}",
                        "",
                        "",
                    )
                )
                if "generator_cpu_ms_per_request" in step:
                    out.append(
                        (
                            "1 catalogue",
                            f"{endpoint} @ {best}/s: load generator",
                            generator_text(step),
                            "",
                            "",
                            "client-limited" if step.get("client_limited") else "",
                        )
                    )
            if not last["sustainable"]:
                out.append(
                    (
                        "1 catalogue",
                        f"{endpoint} @ {last['target_rate']}/s (first failing) p99",
                        *minmax(last["p99_ms"], " ms", 1),
                        "",
                        "client-limited" if last.get("client_limited") else "",
                    )
                )
    if "spread" in s:
        sweep = s["spread"]
        best = sweep["max_sustainable_rate"]
        step = next((x for x in sweep["steps"] if x["target_rate"] == best), None)
        if step:
            out.append(
                (
                    "2 spread-out",
                    f"bookings/s @ {best}/s offered (p99 ≤ 100 ms)",
                    *minmax(step["ok_rate"], "/s"),
                    "≥ 1,000/s, p99 ≤ 100 ms",
                    verdict(
                        step["ok_rate"]["median"] >= 1000, smoke, step.get("client_limited", False)
                    ),
                )
            )
            for q in ("p50_ms", "p99_ms", "p999_ms"):
                out.append(
                    ("2 spread-out", f"@ {best}/s {q[:-3]}", *minmax(step[q], " ms", 1), "", "")
                )
            out.append(
                (
                    "2 spread-out",
                    f"@ {best}/s server CPU per booking",
                    *minmax(step["server_cpu_ms_per_request"], " ms", 2),
                    "",
                    "",
                )
            )
            if "db_cpu_ms_per_request" in step:
                out.append(
                    (
                        "2 spread-out",
                        f"@ {best}/s PostgreSQL CPU per booking",
                        *minmax(step["db_cpu_ms_per_request"], " ms", 2),
                        "",
                        "",
                    )
                )
            out.append(
                (
                    "2 spread-out",
                    f"@ {best}/s errors (all runs)",
                    ", ".join(f"{k}: {v}" for k, v in step["errors"].items()) or "none",
                    "",
                    "",
                    "",
                )
            )
        else:
            out.append(
                (
                    "2 spread-out",
                    "no sustainable step",
                    "0",
                    "",
                    "≥ 1,000/s",
                    verdict(False, smoke),
                )
            )
        last = sweep["steps"][-1]
        if not last["sustainable"]:
            out.append(
                (
                    "2 spread-out",
                    f"@ {last['target_rate']}/s (first failing) ok/s · p99",
                    f"{fmt(last['ok_rate']['median'], '/s')} · "
                    f"{fmt(last['p99_ms']['median'], ' ms', 0)}",
                    "",
                    "",
                    "",
                )
            )
            out.append(
                (
                    "2 spread-out",
                    f"@ {last['target_rate']}/s errors",
                    ", ".join(f"{k}: {v}" for k, v in list(last["errors"].items())[:4]) or "none",
                    "",
                    "",
                    "",
                )
            )
        inv = sweep["inventory"]
        out.append(
            (
                "2 spread-out",
                "inventory (SQL): oversold · consistent",
                f"{inv['oversold']} · {inv['consistent']}",
                "",
                "0 oversold",
                "met" if inv["oversold"] == 0 and inv["consistent"] else "NOT met",
            )
        )
    if "holds" in s:
        sweep = s["holds"]
        best = sweep["max_sustainable_rate"]
        step = next((x for x in sweep["steps"] if x["target_rate"] == best), None)
        spread_best = (s.get("spread") or {}).get("max_sustainable_rate")
        if step:
            out.append(
                (
                    "2b holds",
                    f"bookings/s @ {best}/s offered (p99 ≤ 100 ms), every one a hold",
                    *minmax(step["ok_rate"], "/s"),
                    f"as 2 ({spread_best}/s)" if spread_best else "as 2",
                    verdict(
                        spread_best is None or best >= spread_best,
                        smoke,
                        step.get("client_limited", False),
                    ),
                )
            )
            out.append(("2b holds", f"@ {best}/s p99", *minmax(step["p99_ms"], " ms", 1), "", ""))
            out.append(
                (
                    "2b holds",
                    f"@ {best}/s server CPU per booking",
                    *minmax(step["server_cpu_ms_per_request"], " ms", 2),
                    "",
                    "",
                )
            )
            if "db_cpu_ms_per_request" in step:
                out.append(
                    (
                        "2b holds",
                        f"@ {best}/s PostgreSQL CPU per booking",
                        *minmax(step["db_cpu_ms_per_request"], " ms", 2),
                        "",
                        "",
                    )
                )
        inv = sweep["inventory"]
        out.append(
            (
                "2b holds",
                "inventory (SQL): oversold · consistent · bookings by status",
                f"{inv['oversold']} · {inv['consistent']} · "
                + ", ".join(f"{k} {v}" for k, v in sorted(sweep.get("held", {}).items())),
                "",
                "0 oversold",
                "met" if inv["oversold"] == 0 and inv["consistent"] else "NOT met",
            )
        )
    if "flash_sale" in s:
        f = s["flash_sale"]
        out.append(
            (
                "3 flash sale",
                f"tickets/s until sold out ({f['per_run'][0]['capacity']} seats, "
                f"{f['shards']} shards)",
                *minmax(f["tickets_per_s"], "/s"),
                "≥ 1,000 tickets/s",
                verdict(f["tickets_per_s"]["median"] >= 1000, smoke),
            )
        )
        out.append(
            (
                "3 flash sale",
                "p50 · p99 (all responses)",
                f"{fmt(f['p50_ms']['median'], ' ms', 1)} · {fmt(f['p99_ms']['median'], ' ms', 1)}",
                f"p99 {fmt(f['p99_ms']['min'], '', 0)}-{fmt(f['p99_ms']['max'], ' ms', 0)}",
                "",
                "",
            )
        )
        out.append(
            (
                "3 flash sale",
                "exactly capacity sold, 0 oversold (SQL)",
                str(f["all_runs_exact"]),
                f"oversold {f['oversold_total']}",
                "0 oversold",
                "met" if f["all_runs_exact"] and f["oversold_total"] == 0 else "NOT met",
            )
        )
        out.append(
            (
                "3 flash sale",
                "tickets whose 201 reached the client / sold (all runs)",
                f"{sum(r['tickets_in_201s'] for r in f['per_run']):,} / "
                f"{sum(r['sold'] for r in f['per_run']):,}",
                "rest: client timed out, booking made",
                "",
                "",
            )
        )
    if "booking_to_confirmed" in s:
        c = s["booking_to_confirmed"]
        target = "p99 ≤ 250 ms @ 500/s"
        if not c.get("available"):
            out.append(
                ("4 -> confirmed", "not available: " + c["reason"], "-", "", target, "not measured")
            )
        else:
            out.append(
                (
                    "4 -> confirmed",
                    f"201 received -> order CONFIRMED p99 @ {c['rate']}/s",
                    *minmax(c["confirm_p99_ms"], " ms"),
                    target,
                    verdict(c["confirm_p99_ms"]["median"] <= 250 and c["rate"] >= 500, smoke),
                )
            )
            out.append(("4 -> confirmed", "p50", *minmax(c["confirm_p50_ms"], " ms"), "", ""))
            out.append(
                (
                    "4 -> confirmed",
                    "confirmed / accepted (all runs)",
                    f"{sum(r['confirmed'] for r in c['per_run'])} / "
                    f"{sum(r['accepted'] for r in c['per_run'])}",
                    "",
                    "",
                    "",
                )
            )
            out.append(
                ("4 -> confirmed", "booking POST p99", *minmax(c["p99_ms"], " ms", 1), "", "")
            )
            for key, label in (
                ("consume_order_cpu_ms_per_event", "consume_order CPU per event"),
                ("dispatcher_cpu_ms_per_event", "dispatcher (KafkaSource stand-in) CPU per event"),
            ):
                if key in c:
                    out.append(("4 -> confirmed", label, *minmax(c[key], " ms", 2), "", ""))
    if "cold_start" in s:
        for fn, d in s["cold_start"].items():
            if fn == "under_load":
                continue
            out.append(
                (
                    "5 cold start",
                    f"{fn}: start → /healthz 200",
                    *minmax(d["healthz_s"], " s", 3),
                    "≤ 0.3 s",
                    verdict(d["healthz_s"]["median"] <= 0.3, smoke),
                )
            )
            out.append(
                (
                    "5 cold start",
                    f"{fn}: start → {d['route']} 200",
                    *minmax(d["first_route_s"], " s", 3),
                    "",
                    "",
                )
            )
            out.append(
                (
                    "5 memory",
                    f"{fn}: worker RSS (PSS) after warm-up",
                    f"{fmt(d['worker_rss_mb']['median'], ' MB')} "
                    f"({fmt(d['worker_pss_mb']['median'], ' MB')})",
                    f"{fmt(d['worker_rss_mb']['min'])}-{fmt(d['worker_rss_mb']['max'], ' MB')}",
                    "≤ 80 MB",
                    verdict(d["worker_rss_mb"]["median"] <= 80, smoke),
                )
            )
        for fn, m in s["cold_start"].get("under_load", {}).items():
            out.append(
                (
                    "5 memory",
                    f"{fn}: worker RSS after the load scenarios",
                    fmt(m["worker_rss_mb"], " MB"),
                    f"arbiter {fmt(m['arbiter_rss_mb'], ' MB')}",
                    "≤ 80 MB",
                    verdict(m["worker_rss_mb"] <= 80, smoke),
                )
            )
    if "ticket_pdf" in s:
        t = s["ticket_pdf"]
        out.append(
            (
                "5 ticket PDF",
                "CPU per ticket page (4-ticket documents; median of 3)",
                fmt(t["ms_per_page"], " ms", 2),
                f"1-ticket document {fmt(t['ms_per_single_ticket_document'], ' ms', 2)}",
                "≤ 3 ms",
                verdict(t["ms_per_page"] <= 3, smoke),
            )
        )
    if "containers" in s:
        c = s["containers"]
        out.append(
            (
                "5 images",
                "make images, warm (nothing changed)",
                fmt(c["warm_build_s"], " s"),
                "",
                "",
                "",
            )
        )
        for fn, d in c["images"].items():
            out.append(
                (
                    "5 images",
                    f"{fn}: image size (own layer)",
                    f"{fmt(d['size_mb'], ' MB')} ({fmt(d['own_mb'] * 1000, ' kB')})",
                    f"shared {fmt(d['shared_mb'], ' MB')}",
                    "≤ 200 MB",
                    verdict(d["size_mb"] <= 200, smoke),
                )
            )
            cold = d["cold_start"]
            out.append(
                (
                    "5 images",
                    f"{fn}: docker run → {cold['route']} 200",
                    *minmax(cold["first_route_s"], " s", 3),
                    "≤ 1 s",
                    verdict(cold["first_route_s"]["median"] <= 1, smoke),
                )
            )
        gz = c["compressed_mb"]
        out.append(
            ("5 images", f"{gz['image']} gzip-compressed", fmt(gz["gzip_mb"], " MB"), "", "", "")
        )

    if "token" in s:
        t = s["token"]
        out.append(
            (
                "6 token",
                "JwtVerifier.verify (in process, every call verifies)",
                *minmax(t["micro"]["verify_us"], " µs"),
                "",
                "",
            )
        )
        out.append(
            (
                "6 token",
                "  of which not signature (decode only)",
                *minmax(t["micro"]["decode_without_signature_us"], " µs"),
                "",
                "",
            )
        )
        if "verify_remembered_us" in t["micro"]:
            out.append(
                (
                    "6 token",
                    "  the same token again (remembered per process)",
                    *minmax(t["micro"]["verify_remembered_us"], " µs"),
                    "",
                    "",
                )
            )
        for name, sweep in t["http"].items():
            step = sweep["steps"][0]
            out.append(
                (
                    "6 token",
                    f"{name} @ {step['target_rate']}/s: server CPU/request · p50",
                    f"{fmt(step['server_cpu_ms_per_request']['median'], ' ms', 2)} · "
                    f"{fmt(step['p50_ms']['median'], ' ms', 1)}",
                    f"p99 {fmt(step['p99_ms']['median'], ' ms', 1)}",
                    "",
                    "",
                )
            )
    out += overload.report_rows(s, smoke)
    if "waiting_room" in s:
        out += waiting_room.report_rows(s["waiting_room"], smoke)
    if "burst" in s:
        out += burst.report_rows(s["burst"], smoke)
    if "runtime" in s:
        out += runtime.report_rows(s["runtime"], smoke)
    if "refusal" in s and s["refusal"].get("available", True):
        out += refusal.report_rows(s["refusal"], smoke)
    out += generator_rows(s)
    return out


def table(results: dict[str, Any]) -> str:
    header: Row = ("scenario", "figure", "median", "min-max", "target", "verdict")
    data = [header, *rows(results)]
    widths = [min(70, max(len(r[i]) for r in data)) for i in range(6)]
    lines = []
    for i, r in enumerate(data):
        lines.append("  ".join(c[:70].ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    m = results["machine"]
    k = results["knobs"]
    smoke = results["profile"]["smoke"]
    lines = [
        f"# Boxoffice benchmark {results['started_at']}"
        + (" (SMOKE: harness check, not a measurement)" if smoke else ""),
        "",
        f"Command: `{results['command']}` · duration {results['elapsed_s']:.0f} s",
        "",
        "## Machine",
        "",
        f"- {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, {m['os']}, "
        f"kernel {m['kernel']}",
        f"- Python {m['python']}, PostgreSQL {m['postgresql']}, Kafka {m['kafka']}, "
        f"Keycloak {m['keycloak']}, vegeta {m['vegeta']}, oha {m.get('oha', '-')}",
        f"- git {m['git_commit']}{' (uncommitted changes)' if m['git_dirty'] else ''}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}",
        "- the load generator, PostgreSQL, Kafka, Keycloak and the functions share these CPUs; "
        "`machine busy` in results.json is the share of all CPUs busy during each attack",
        "",
        "## Tuning knobs",
        "",
        *[f"- `{name}` = {value}" for name, value in k.items()],
        "",
        "## Results",
        "",
        "| scenario | figure | median | min-max | target | verdict |",
        "|---|---|---|---|---|---|",
        *["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows(results)],
        "",
        f"Each figure is the median of {results['profile']['runs']} run(s) after a warm-up, "
        "with the min-max over the runs. Rates are offered at a constant rate (open model: "
        "oha with `--latency-correction` for the high-rate GETs, vegeta for the rest); a step "
        "is *sustainable* when the median p99 ≤ 100 ms, ≤ 0.1 % of requests fail for the "
        "system's sake (timeouts, 5xx, 429, for oha also requests not answered or not sent by "
        "the end) and the generator kept up the rate. A step where the generator used more "
        f"than {100 * CLIENT_LIMIT_SHARE:.0f} % of a core is *client-limited*: the generator "
        "competed with the system for the CPUs, so the step is no clean evidence of what the "
        "system sustains (marked in the verdict).",
        "",
    ]
    gen = results.get("generator_cpu_share")
    if gen:
        lines += [
            f"Load generator CPU: median {100 * gen['median']:.1f} % of one core per attack "
            f"(max {100 * gen['max']:.1f} %)"
            + (
                f"; at most {gen['max_ms_per_request']:.3f} ms per request."
                if gen.get("max_ms_per_request") is not None
                else "."
            ),
            "",
        ]
    prof = results["scenarios"].get("profile")
    if prof and prof.get("available"):
        lines += [
            "## Profile of the purchase path (py-spy, create_booking worker)",
            "",
            f"{prof['rate']}/s spread-out for {prof['duration_s']:g} s; "
            f"{prof['summary']['samples']} samples, of which "
            f"{prof['summary']['idle_samples']} idle and "
            f"{prof['summary'].get('no_python_frame_samples', 0)} in threads with no Python frame "
            "(granian's Rust threads). "
            f"Flame graph: `{prof['flamegraph']}`.",
            "",
            "| share of busy samples | where |",
            "|---|---|",
        ]
        lines += [
            f"| {100 * v:.1f} % | {k} |"
            for k, v in prof["summary"]["busy_share_by_category"].items()
        ]
        lines += ["", "Top leaf functions:", ""]
        lines += [f"- {100 * v:.1f} % `{k}`" for k, v in prof["summary"]["top_leaf_functions"][:10]]
        lines.append("")
    elif prof:
        lines += [f"Profile: not available: {prof.get('reason')}", ""]
    if results.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in results["notes"]], ""]
    lines += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(lines)


def plot(label: str, attacks: list[Attack], out: Path) -> str | None:
    if not attacks:
        return None
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(13, 4.5))
    for a in attacks:
        if not a.requests:
            continue
        qs = np.array([0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100.0])
        values = np.percentile(a.latency * 1000, qs)
        xs = 1 / (1 - np.minimum(qs, 99.999) / 100)
        lat.plot(xs, values, marker="o", ms=3, label=f"{a.rate:g}/s")
        width = 1.0 if a.duration >= 10 else 0.25
        end = a.ts.max() + a.latency.max()
        bins = np.arange(0, end + width, width)
        done = a.ts + a.latency
        ok, _ = np.histogram(done[a.ok], bins)
        bad, _ = np.histogram(done[~a.ok], bins)
        (line,) = thr.step(bins[:-1], ok / width, where="post", label=f"{a.rate:g}/s 2xx")
        if bad.any():
            thr.step(
                bins[:-1],
                bad / width,
                where="post",
                ls="--",
                color=line.get_color(),
                label=f"{a.rate:g}/s other",
            )
    lat.set_xscale("log")
    lat.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000]
    lat.set_xticks(ticks, ["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
    lat.axhline(100, color="grey", lw=0.8, ls=":")
    lat.set_xlabel("percentile")
    lat.set_ylabel("latency (ms)")
    lat.set_title(f"{label}: latency distribution (run 1 per rate)")
    lat.legend(fontsize=7)
    thr.set_xlabel("seconds since the attack started")
    thr.set_ylabel("responses per second")
    thr.set_title(f"{label}: throughput over time")
    thr.legend(fontsize=7)
    fig.tight_layout()
    name = f"{label}.png"
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def to_json(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): to_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [to_json(v) for v in data]
    if isinstance(data, np.integer):
        return int(data)
    if isinstance(data, np.floating | float):
        f = float(data)
        return None if math.isnan(f) else f
    if isinstance(data, np.bool_):
        return bool(data)
    return data


def write(results: dict[str, Any], plots_by_label: dict[str, list[Attack]], out: Path) -> str:
    plots = [p for label, attacks in plots_by_label.items() if (p := plot(label, attacks, out))]
    (out / "results.json").write_text(json.dumps(to_json(results), indent=2) + "\n")
    (out / "report.md").write_text(markdown(results, plots))
    return table(results)
