"""``mlxbench db import RUN_DIR…``: store run folders in the results database (SQLite or PostgreSQL);
``mlxbench db page SUITE``: the suite's history page from what the database holds.

The folders stay the source of each run: importing one again changes nothing, and a folder of
run folders (``results/``) imports every run in it, so runs copied from other machines merge.
"""

from __future__ import annotations

from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.results.db import connect, default_url
from mlxbench.results.store import is_run_dir


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="store run folders (or folders of them) in the database",
                         description="store run folders (or folders of them) in the database")
    imp.add_argument("paths", nargs="+", metavar="RUN_DIR", help="a run folder, or a folder of run folders")
    page = sub.add_parser("page", help="write a suite's history page (every version, commit and machine imported)",
                          description="write a suite's history page (every version, commit and machine imported)")
    page.add_argument("suite", metavar="SUITE", help="the suite's name, as its runs recorded it")
    page.add_argument("--out", metavar="PATH", help="where to write (default reports/<suite>-history.html)")
    page.add_argument("--metric", action="append", metavar="NAME",
                      help="a figure to chart (repeatable; default: every judged one and the memory layers)")
    for p in (imp, page):
        p.add_argument("--db", metavar="URL", default=None,
                       help=f"sqlite:///PATH or postgresql://USER@HOST/NAME (default: $MLXBENCH_DB or {default_url()})")


def run_folders(paths: list[str]) -> list[Path]:
    """Each path that is a run folder, else every run folder beneath it (a path that is neither is
    kept: importing it says in one line why it is no run)."""
    found: list[Path] = []
    for path in map(Path, paths):
        inside = [] if is_run_dir(path) or not path.is_dir() else sorted(
            p.parent for p in path.rglob("records.jsonl") if is_run_dir(p.parent))
        if path.is_dir() and not inside and not is_run_dir(path) and not (path / "records.jsonl").exists():
            raise UserError(f"{path}: expected a run folder or a folder of run folders, got none in it")
        found += [p for p in inside or [path] if p not in found]
    return found


def main(args) -> int:
    return (_import if args.action == "import" else _page)(args)


def _page(args) -> int:
    from mlxbench.history.page import write_page

    with connect(args.db) as database:
        suites = database.suites()
        if args.suite not in suites:
            held = ", ".join(suites) or "none yet: mlxbench db import RUN_DIR"
            raise UserError(f"{args.suite}: expected a suite the database holds ({held}), got none of that name")
        declared = database.declarations(args.suite)
        unknown = [m for m in args.metric or [] if m not in declared]
        if unknown:
            raise UserError(f"--metric {unknown[0]}: expected a figure {args.suite}'s runs declare "
                            f"({', '.join(declared)})")
        out = Path(args.out or Path("reports") / f"{args.suite}-history.html")
        print(write_page(database, args.suite, out, args.metric))
    return 0


def _import(args) -> int:
    with connect(args.db) as database:
        folders = run_folders(args.paths)
        records = 0
        for folder in folders:
            records += database.import_run(folder)
        print(f"imported {len(folders)} run{'s' * (len(folders) != 1)} ({records} records) into {database.url}")
    return 0
