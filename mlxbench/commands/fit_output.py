"""What ``mlxbench fit`` prints and writes: the answer in one line, every candidate, the rules of
thumb measured beside it, and the HTML page with the Pareto front."""

from __future__ import annotations

from pathlib import Path

from mlxbench.errors import UserError
from mlxbench.estimate.model import gb, weights_bytes
from mlxbench.run import advisor
from mlxbench.suite.case import settings_label
from mlxbench.workloads import resolve


def measure_rules(workload: str, search: advisor.Search, measurer, fixed: dict, budget: float) -> dict:
    """Each rule of thumb's pick, measured (or reused, if the search already measured it), by rule name."""
    params = {**resolve(workload).defaults(), **fixed}
    rules = search.space.rules_of_thumb
    best = search.best.settings if search.best else None
    picks = rules(best, weights_bytes(workload, params), budget, fixed) if rules else {}
    out = {}
    for name, settings in picks.items():
        family = {k: v for k, v in settings.items() if k != search.space.axis}
        trial = search.trial(family, settings[search.space.axis])
        if not trial.measured:  # the rule does not look at the estimate: measure what it picked anyway
            trial = search.trials[search.key(settings)] = measurer(settings)
        trial.tags.append(name)
        out[name] = trial
    return out


def answer_line(best: advisor.Trial | None, budget: float, objective: str) -> str:
    if best is None:
        return f"nothing measured fits in {gb(budget)}"
    headroom = budget - (best.footprint_bytes or 0)
    speed = best.runoff_speed or best.speed
    return (f"fastest under {gb(budget)}: {settings_label(best.settings)} — {speed:,.1f} {objective}, "
            f"peak {gb(best.footprint_bytes or 0)} (MLX {gb(best.mlx_peak_bytes or 0)}), "
            f"headroom {gb(headroom)} ({headroom / budget:.0%})")


def _row(t: advisor.Trial) -> str:
    speed = "—" if t.speed is None else f"{t.speed:,.1f}"
    measured = "—" if not t.mlx_peak_bytes else gb(t.mlx_peak_bytes)
    error = (f"{(t.estimate_bytes - t.mlx_peak_bytes) / t.mlx_peak_bytes:+.0%}"
             if t.estimate_bytes and t.mlx_peak_bytes else "—")
    tags = f"  [{', '.join(t.tags)}]" if t.tags else ""
    return (f"  {settings_label(t.settings):<64} {t.status[:36]:<8} {speed:>10}  est {gb(t.estimate_bytes):>8}  "
            f"meas {measured:>8} ({error}){tags}")


def report(args, search: advisor.Search, best, rules: dict, run_dir: Path, measurer) -> int:
    space = search.space
    print()
    print(answer_line(best, search.budget_bytes, space.objective_label))
    trials = list(search.trials.values())
    print(f"\n{sum(t.measured for t in trials)} candidates measured, {search.searched} of them by the search "
          f"(the rest for the rules of thumb; {measurer.reused} reused from the run), "
          f"{sum(not t.measured for t in trials)} skipped without running:")
    for t in trials:
        print(_row(t))
    if search.runoff:
        print(f"\nwithin {advisor.RUNOFF_BAND:.0%} of each other: measured again in "
              f"{len(search.runoff[0].runoff_speeds)} alternating rounds, the best median named the answer:")
        for t in sorted(search.runoff, key=lambda t: -t.runoff_speed):
            rounds = ", ".join(f"{v:,.1f}" for v in t.runoff_speeds)
            print(f"  {settings_label(t.settings):<64} median {t.runoff_speed:>10,.1f}  (rounds: {rounds})")
    for name, t in rules.items():
        gap = f"{t.speed / best.speed - 1:+.0%} vs the answer's first measurement" \
            if best and t.speed and t.status == "ok" else t.status
        print(f"\n{name} would have picked {settings_label(t.settings)}: {gap}")
    print(f"\nresults: {run_dir}")
    if args.report:
        print(f"report:  {write_page(args, search, best, run_dir)}")
    if best is None:
        raise no_answer(search, run_dir)
    return 0


def no_answer(search: advisor.Search, run_dir: Path) -> UserError:
    """Why there is no answer, from what the candidates did: the budget is blamed only when a candidate
    ran out of memory or measured over it, never when nothing was tried or every candidate failed."""
    measured = [t for t in search.trials.values() if t.measured]
    over = [t for t in measured if t.status.startswith("oom") or (t.status == "ok" and t.speed is not None)]
    if over:
        return UserError(f"--budget {gb(search.budget_bytes)}: no measured candidate stayed under the budget "
                         f"less its {search.margin:.0%} margin; see {run_dir}")
    if not measured:
        return UserError(f"fit: no candidate was measured (every one skipped or none in the search space: "
                         f"see --max-batch and --set); see {run_dir}")
    first = (measured[0].status.splitlines() or [""])[0][:200]
    return UserError(f"fit: every measured candidate failed, none for lack of memory (first: "
                     f"{settings_label(measured[0].settings)}: {first}); see {run_dir}")


def write_page(args, search: advisor.Search, best, run_dir: Path) -> Path:
    from mlxbench.report.fit import render_fit

    candidates = [{"label": settings_label(t.settings), "tags": t.tags, "status": t.status, "speed": t.speed,
                   "estimate_bytes": t.estimate_bytes, "mlx_peak_bytes": t.mlx_peak_bytes,
                   "footprint_bytes": t.footprint_bytes} for t in search.trials.values()]
    page = render_fit({"title": f"Fastest {args.workload} of {args.model} under {gb(search.budget_bytes)}",
                       "run_id": run_dir.name, "answer": answer_line(best, search.budget_bytes,
                                                                     search.space.objective_label),
                       "objective": search.space.objective_label, "budget": gb(search.budget_bytes),
                       "margin": f"{search.margin:.0%}", "candidates": candidates})
    path = Path("reports") / f"{run_dir.parent.name}-{run_dir.name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
