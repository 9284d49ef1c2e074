"""A comparison of two runs as text, Markdown, and rows for the HTML report."""

from __future__ import annotations

from mlxbench.results import metrics as m


def _figure(value, scale: float) -> str:
    return value if isinstance(value, str) else m.number(None if value is None else value / scale)


def _test(x: dict) -> str:
    if x["test"] == "mann-whitney":
        return f"p {x['p']:.3f}"
    return {"ranges": "ranges", "exact": "exact", "status": "status"}.get(x["test"], "—")


def rows(comparison: dict, significant_only: bool = False) -> list[list[str]]:
    """One display row per compared figure: case, metric, base, new, ratio, change, test, verdict.

    A case's name is written on its first row only, so the rows read as groups.
    """
    out = []
    for case in comparison["cases"]:
        where = case["variant"] + (f" [{case['sweep']}]" if case["sweep"] else "")
        for x in case["metrics"]:
            if significant_only and not x["significant"]:
                continue
            ratio = "—" if x["ratio"] is None else f"×{x['ratio']:.3f}"
            metric = x["metric"] + (f" ({x['unit']})" if x["unit"] else "")
            out.append([where, metric, _figure(x["base"], x["scale"]), _figure(x["new"], x["scale"]),
                        ratio, m.percent(x["change"]), _test(x), x["verdict"]])
            where = ""
    return out


HEADINGS = ["case", "metric", "base", "new", "ratio", "change", "test", "verdict"]


def _named(found: list[dict]) -> str:
    return "; ".join(sorted({f"{r['metric']} ({r['variant']}{', ' + r['sweep'] if r['sweep'] else ''})"
                             for r in found}))


def summary_line(comparison: dict) -> str:
    """The verdict in one line; never 'no regression' without saying what could not be judged."""
    regressions, unjudged = comparison["regressions"], comparison["cannot_judge"]
    if regressions:
        text = (f"{len(regressions)} significant regression{'s' if len(regressions) > 1 else ''}: "
                + _named(regressions))
    else:
        text = f"no significant regression ({len(comparison['improvements'])} significant improvements)"
    if unjudged:
        text += f"; {len(unjudged)} figure{'s' if len(unjudged) > 1 else ''} could not be judged: " + _named(unjudged)
    return text


def rule_lines(comparison: dict) -> list[str]:
    """How each figure was judged, the notes of those judged by a fallback, and what was not judged."""
    lines = [f"significant: |change| > {comparison['threshold_pct']:g}% and, for timings, Mann-Whitney "
             f"p < {comparison['significance_p']:g} (ranges that do not overlap where too few samples "
             "make that p unreachable); exact figures: the threshold alone"]
    notes = {f"{x['metric']}: {x['note']}" for c in comparison["cases"] for x in c["metrics"]
             if x["test"] in ("ranges", "none") and x["note"]}
    lines += sorted(notes)
    lines.append("timings: the test sees the spread within each run, not the machine's drift between the two "
                 "runs, which on a drifting machine can pass the threshold alone (docs/speed.md measures how "
                 "often); for a small change, measure both sides interleaved in one invocation: variants with "
                 "`mlxbench run --rounds N`, commits or versions with `mlxbench history`")
    if comparison["not_judged"]:
        lines.append("not judged: " + ", ".join(f"{x['metric']} ({x['why']})" for x in comparison["not_judged"]))
    return lines


def format_text(comparison: dict, base_label: str = "base", new_label: str = "new") -> str:
    table = [HEADINGS] + rows(comparison)
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADINGS))]
    lines = [f"base: {base_label}", f"new:  {new_label}", *rule_lines(comparison), ""]
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
    marks = {"regression": "🔴 regression", "improvement": "🟢 improvement", "changed": "changed", "same": "",
             "cannot judge": "⚪ cannot judge"}
    lines = ["| " + " | ".join(h.capitalize() for h in HEADINGS) + " |", "|" + "---|" * 2 + "---:|" * 6]
    lines += ["| " + " | ".join(r[:-1] + [marks.get(r[-1], r[-1])]) + " |" for r in table]
    return lines


def format_markdown(comparison: dict, base_label: str = "base", new_label: str = "new") -> str:
    """For a pull request: the significant changes, then every figure folded away."""
    changed = rows(comparison, significant_only=True)
    everything = rows(comparison)
    lines = [f"**{summary_line(comparison)}**", "", f"Base `{base_label}` → new `{new_label}`.", "",
             *[f"- {line}" for line in rule_lines(comparison)], ""]
    lines += _markdown_rows(changed) if changed else ["No significant change."]
    lines += [f"- {line}" for line in _one_sided_lines(comparison) if line]
    lines += ["", f"<details><summary>All {len(everything)} figures compared</summary>", "",
              *_markdown_rows(everything), "", "</details>"]
    return "\n".join(lines)
