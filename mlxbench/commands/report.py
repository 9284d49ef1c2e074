"""``mlxbench report RUN``: render a run's records as one self-contained HTML file, Markdown, CSV, or
llama-bench's formats (its markdown table, JSON, JSON lines, SQL).

Nothing is re-run: the figures are the ones the run recorded.
"""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path

from mlxbench import options
from mlxbench.errors import UserError
from mlxbench.results.run import load_run

LLAMA_BENCH_FORMATS = ("llama-bench", "json", "jsonl", "sql")


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="a run directory (results/<suite>/<run id>) or a pytest-benchmark --benchmark-json file")
    parser.add_argument("--format", choices=("html", "md", "csv", *LLAMA_BENCH_FORMATS), default="html",
                        help="html (default): a file under reports/; md: the savings tables; llama-bench: "
                             "llama-bench's markdown table; csv, json, jsonl, sql: every case with llama-bench's "
                             "field names where one exists, then mlxbench's own. All but html: printed, or "
                             "written to --out")
    parser.add_argument("--out", type=options.non_empty, metavar="PATH",
                        help="where to write (default for html: reports/<suite>-<run id>.html)")
    parser.add_argument("--compare", type=options.non_empty, metavar="NEW",
                        help="add a comparison with another run (html only)")
    parser.add_argument("--threshold", type=options.percentage, default=5.0, metavar="PCT",
                        help="smallest change in %% the comparison counts (default %(default)g)")
    parser.add_argument("--open", action="store_true", help="open the HTML report in the default browser")


def main(args) -> int:
    run = load_run(args.run)
    if args.format == "md":
        from mlxbench.report.text import to_markdown
        return _emit(to_markdown(run), args.out)
    if args.format == "csv" or args.format in LLAMA_BENCH_FORMATS:
        from mlxbench.report import llama_bench
        writer = {"csv": llama_bench.to_csv, "llama-bench": llama_bench.to_markdown, "json": llama_bench.to_json,
                  "jsonl": llama_bench.to_jsonl, "sql": llama_bench.to_sql}[args.format]
        return _emit(writer(run), args.out)

    out = write_html(run, args.out, compare=args.compare, threshold=args.threshold)
    print(out)
    if args.open:
        webbrowser.open(out.resolve().as_uri())
    return 0


def write_html(run, out: str | None = None, compare: str | None = None, threshold: float = 5.0) -> Path:
    """Render ``run`` (a loaded run or its path) as HTML; the file written (default under reports/)."""
    from mlxbench.report.html import render_run

    if isinstance(run, (str, Path)):
        run = load_run(run)
    comparison = None
    if compare:
        from mlxbench.results.compare import compare_runs

        comparison = compare_runs(run, load_run(compare), threshold)
    page = render_run(run, comparison, compare_label=str(compare or ""))
    path = Path(out) if out else Path("reports") / f"{_safe(run.name)}-{_safe(run.run_id)}.html"
    _write(path, page)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in str(name))


def _write(out: Path, text: str) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UserError(f"{out}: expected a writable path, got {err.strerror}") from err


def _emit(text: str, out: str | None) -> int:
    if out:
        _write(Path(out), text)
        print(out)
    else:
        sys.stdout.write(text)
    return 0
