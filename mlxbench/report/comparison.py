"""A comparison of two runs as text, Markdown, and rows for the HTML report."""

from __future__ import annotations

from mlxbench.results import metrics as m


def _figure(value, metric: str) -> str:
    return value if isinstance(value, str) else m.display(value, metric)


def _unit(metric: str) -> str:
    if metric.endswith("_bytes"):
        return "MB"
    return "s" if metric.endswith("_s") and not metric.endswith("_per_s") else ""


def rows(comparison: dict, significant_only: bool = False) -> list[list[str]]:
    """One display row per compared figure: case, metric, base, new, ratio, change, p, verdict.

    A case's name is written on its first row only, so the rows read as groups.
    """
    out = []
    for case in comparison["cases"]:
        where = case["variant"] + (f" [{case['sweep']}]" if case["sweep"] else "")
        for x in case["metrics"]:
            if significant_only and not x["significant"]:
                continue
            p = "—" if x["p"] is None else f"{x['p']:.3f}"
            ratio = "—" if x["ratio"] is None else f"×{x['ratio']:.3f}"
            metric = x["metric"] + (f" ({_unit(x['metric'])})" if _unit(x["metric"]) else "")
            out.append([where, metric, _figure(x["base"], x["metric"]), _figure(x["new"], x["metric"]),
                        ratio, m.percent(x["change"]), p, x["verdict"]])
            where = ""
    return out


HEADINGS = ["case", "metric", "base", "new", "ratio", "change", "p", "verdict"]


def summary_line(comparison: dict) -> str:
    regressions = comparison["regressions"]
    if not regressions:
        return f"no significant regression ({len(comparison['improvements'])} significant improvements)"
    named = sorted({f"{r['metric']} ({r['variant']}{', ' + r['sweep'] if r['sweep'] else ''})"
                    for r in regressions})
    return f"{len(regressions)} significant regression{'s' if len(regressions) > 1 else ''}: " + "; ".join(named)


def format_text(comparison: dict, base_label: str = "base", new_label: str = "new") -> str:
    table = [HEADINGS] + rows(comparison)
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADINGS))]
    lines = [f"base: {base_label}", f"new:  {new_label}",
             f"significant: |change| > {comparison['threshold_pct']:g}% and, for timings, "
             f"Mann-Whitney p < {comparison['significance_p']:g}", ""]
    for i, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += _one_sided_lines(comparison) + ["", summary_line(comparison)]
    return "\n".join(lines)


def _one_sided_lines(comparison: dict) -> list[str]:
    lines = []
    for key, words in (("only_in_base", "only in base"), ("only_in_new", "only in new")):
        for r in comparison[key]:
            lines.append(f"{words}: {r['variant']}{' [' + r['sweep'] + ']' if r['sweep'] else ''} "
                         f"({r['case_id']}, {r['status']})")
    return [""] + lines if lines else []


def _markdown_rows(table: list[list[str]]) -> list[str]:
    marks = {"regression": "🔴 regression", "improvement": "🟢 improvement", "changed": "changed", "same": ""}
    lines = ["| " + " | ".join(h.capitalize() for h in HEADINGS) + " |", "|" + "---|" * 2 + "---:|" * 6]
    lines += ["| " + " | ".join(r[:-1] + [marks.get(r[-1], r[-1])]) + " |" for r in table]
    return lines


def format_markdown(comparison: dict, base_label: str = "base", new_label: str = "new") -> str:
    """For a pull request: the significant changes, then every figure folded away."""
    changed = rows(comparison, significant_only=True)
    everything = rows(comparison)
    lines = [f"**{summary_line(comparison)}**", "",
             f"Base `{base_label}` → new `{new_label}`; significant: |change| > {comparison['threshold_pct']:g}% "
             f"and, for timings, Mann-Whitney p < {comparison['significance_p']:g}.", ""]
    lines += _markdown_rows(changed) if changed else ["No significant change."]
    lines += [f"- {line}" for line in _one_sided_lines(comparison) if line]
    lines += ["", f"<details><summary>All {len(everything)} figures compared</summary>", "",
              *_markdown_rows(everything), "", "</details>"]
    return "\n".join(lines)
