"""The quality rows (issue 15's budget): what the quality gate adds to `promote` with 1,000
releases on the index, and how long `ci-kit report` takes over 100 evaluated versions.

Both projects are seeded in the run's one devpi-import dump (seed.py), with evaluation
records in the shape the test stage writes: metrics, 1,000 scores on a reference set and
an input profile of 8 columns. The quality table is the example's
(examples/churn-model/pyproject.toml: metric bounds, PSI, undecided share, input checks).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from benchmarks import seed
from benchmarks.harness import CIKIT, EXAMPLE, Server, alternate, paired_diff, run, stats

USER = "q"
GATED = "bench-q"  # 1,000 candidates on q/unstable, 1,000 releases on q/stable (the baseline index)
REPORTED = "bench-r"  # 100 versions for the report
REF = "5eed" * 16
SCORES = 1000
NONE = "no evaluation record, no quality table"
PLAIN = "evaluation record, no quality table"
STORED = "example's quality table, shift stored by the test stage"
MEASURED = "example's quality table, shift measured at promote"


def example_rules() -> dict[str, Any]:
    import tomllib  # the benchmarks run on Python 3.11+

    table = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["ci-kit"]["quality"]
    return dict(table)


def _evaluation(i: int, accuracy: float = 0.8) -> dict[str, Any]:
    """A model's record: scores mostly confident (few in the undecided band), a little
    different per version, and a profile of 8 columns."""
    rnd = random.Random(i)
    scores = [round(min(1.0, max(0.0, (rnd.betavariate(0.6, 0.6)))), 4) for _ in range(SCORES)]
    columns: dict[str, Any] = {f"num{k}": {"missing": 0.01, "quantiles": {"min": 0, "p50": 5 + k, "max": 10 + k}} for k in range(5)}
    columns |= {f"cat{k}": {"missing": 0.0, "categories": ["a", "b", "c"]} for k in range(3)}
    from ci_kit.quality.schema import validate

    return validate({"schema": 1, "metrics": {"held_out_accuracy": accuracy, "held_out_rows": SCORES, "auc": 0.85},
                     "responses": {"kind": "probability", "reference": {"name": "bench", "sha256": REF}, "scores": scores},
                     "inputs": {"columns": columns, "rows": SCORES}})


def projects(n: int) -> list[seed.Project]:
    """bench-q: n releases on stable (0.0.1 … 0.0.n, the newest is the baseline) and n dev
    candidates on unstable: by i % 4, 0 and 2 carry the shift their test stage measured
    against that baseline, 1 an evaluation without it (the gate measures it), 3 no
    evaluation record at all. bench-r: 100 versions on unstable, every tenth also on stable
    with its promotion record."""
    from ci_kit import results
    from ci_kit.quality import shift
    from ci_kit.quality.gate import Side
    from ci_kit.quality.rules import parse

    rules = parse(example_rules())
    base_version = f"0.0.{n}"
    base = Side(base_version, f"{USER}/stable", _evaluation(0))
    stable = [("stable", f"0.0.{i}", seed.passing(evaluation=_evaluation(0) if i == n else None)) for i in range(1, n + 1)]
    cands = []
    for i, v in enumerate(seed.versions(n), start=1):
        ev = _evaluation(i)
        ev = shift.measured(rules, ev, base) if i % 2 == 0 else ev if i % 4 == 1 else None
        cands.append(("unstable", v, seed.passing(evaluation=ev)))
    gated = seed.Project(USER, GATED, stable + cands)

    rel: list[tuple[str, str, Any]] = []
    last_stable: Side | None = None
    for i in range(1, 101):
        v = f"1.0.{i}"
        ev = _evaluation(1000 + i, accuracy=0.8 - 0.002 * (i % 7))
        if last_stable is not None:
            ev = shift.measured(rules, ev, last_stable)
        rel.append(("unstable", v, seed.passing(evaluation=ev)))
        if i % 10 == 1:
            test_and_build = seed.passing(evaluation=ev)

            def with_promotion(fn: str, sha: str, make: Any = test_and_build) -> list[dict[str, Any]]:
                promo = results.promotion_record(filename=fn, sha256=sha, source=f"{USER}/unstable", target=f"{USER}/stable",
                                                 forced=False, commit="0" * 40, at="2020-01-01T00:00:00Z")
                return [*make(fn, sha), promo]

            rel.append(("stable", v, with_promotion))
            last_stable = Side(v, f"{USER}/stable", ev)
    return [gated, seed.Project(USER, REPORTED, rel)]


def bytecode() -> dict[str, Any]:
    """Compile the bench environment's modules to bytecode once, as `pip install` does when
    it installs them. uv does not, and this machine sets PYTHONDONTWRITEBYTECODE=1, so
    without this every run compiles matplotlib, numpy and requests from source again
    (1.6 s of a 100-version report's 4.9 s under cProfile): a cost no installed ci-kit has."""
    import sys
    import sysconfig

    import ci_kit

    dirs = [sysconfig.get_paths()["purelib"], str(Path(ci_kit.__file__).parent)]  # ci-kit itself may be an editable install
    t0 = time.perf_counter()
    ran = run([sys.executable, "-m", "compileall", "-q", "-j", "0", *dirs], check=False)
    return {"compiled": dirs, "seconds": time.perf_counter() - t0, "returncode": ran.returncode,
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "")}


def row_quality_promote(server: Server, work: Path, rounds: int, warmup: int, n: int) -> dict[str, Any]:
    """promote of one candidate, in turn: a candidate without an evaluation record and no
    quality table (promote as the "many" row measures it); one with a record but no table
    (the baseline is still read, for the log); the example's table with the shift stored by
    the test stage (what a promote right after its tests finds); the example's table and
    no stored shift (the gate imports numpy and scipy.special and measures)."""
    cwd = work / "quality-laptop"
    cwd.mkdir(exist_ok=True)
    compiled = bytecode()
    before = _load()
    plain = server.env(user=USER)
    gated = {**plain, "CI_KIT_QUALITY": json.dumps(example_rules())}
    vs = list(enumerate(seed.versions(n), start=1))[n // 2:]  # (i, version), from the middle of the project
    pools = {"stored": iter(v for i, v in vs if i % 2 == 0), "measured": iter(v for i, v in vs if i % 4 == 1),
             "none": iter(v for i, v in vs if i % 4 == 3)}

    def go(env: dict[str, str], pool: str) -> Any:
        def one(_round: int) -> dict[str, Any]:
            v = next(pools[pool])
            ran = run([CIKIT, "promote", f"{GATED}=={v}"], env=env, cwd=cwd)
            quality = [line for line in ran.stderr.splitlines() if "quality:" in line]
            return {"seconds": ran.seconds, "version": v, "quality": quality}
        return one

    samples = alternate({NONE: go(plain, "none"), PLAIN: go(plain, "stored"), STORED: go(gated, "stored"),
                         MEASURED: go(gated, "measured")}, rounds, warmup, "quality-promote")
    a = samples[NONE]
    return {"samples": samples, "stats": {k: stats([s["seconds"] for s in v]) for k, v in samples.items()},
            "added": {k: paired_diff(samples[k], a) for k in (PLAIN, STORED, MEASURED)}, "releases": n, "bytecode": compiled,
            "load": f"{before} before, {_load()} after"}


def row_report(server: Server, work: Path, rounds: int, warmup: int) -> dict[str, Any]:
    """`ci-kit report bench-r` over its 100 versions (matplotlib installed), the page written each round."""
    cwd = work / "report-laptop"
    cwd.mkdir(exist_ok=True)
    compiled = bytecode()
    before = _load()
    env = {**server.env(user=USER), "CI_KIT_QUALITY": json.dumps(example_rules())}

    def one(r: int) -> dict[str, Any]:
        html = cwd / f"report-{r}.html"
        ran = run([CIKIT, "report", REPORTED, "--html", str(html)], env=env, cwd=cwd)
        page = html.read_text()
        return {"seconds": ran.seconds, "bytes": len(page), "images": page.count("<img ")}

    samples = alternate({"ci-kit report, 100 versions": one}, rounds, warmup, "report")
    return {"samples": samples, "stats": {k: stats([s["seconds"] for s in v]) for k, v in samples.items()}, "bytecode": compiled,
            "load": f"{before} before, {_load()} after"}


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- RESULTS.md ----------------------------------------------------------------------------


def summary(rows: dict[str, Any]) -> list[list[str]]:
    """The summary table's lines for these rows (report.write calls it)."""
    from benchmarks.report import mmm, s, verdict

    body = []
    q = rows.get("quality-promote")
    if q:
        added = q["added"][STORED]
        body.append([f"10. quality gate in promote ({q['releases']} releases on unstable and on stable)",
                     f"with the example's table {mmm(q['stats'][STORED])}", f"without {mmm(q['stats'][NONE])}",
                     f"added {mmm(added)} (shift measured at promote instead: {s(q['added'][MEASURED]['median'])})",
                     "added ≤ 0.2 s", verdict(added["median"] <= 0.2)])
    r = rows.get("report")
    if r:
        st = next(iter(r["stats"].values()))
        body.append(["11. `ci-kit report`, 100 evaluated versions", mmm(st), "—", "—", "≤ 3 s", verdict(st["median"] <= 3.0)])
    return body


def section(rows: dict[str, Any]) -> list[str]:
    """The rows' own section of RESULTS.md."""
    from benchmarks.report import mmm, table

    q, r = rows.get("quality-promote"), rows.get("report")
    if not (q or r):
        return []
    out = ["## 10–11. Model quality: the gate in promote, and the report\n",
           ("Seeded in the run's devpi-import dump (seed.py) with evaluation records as the test stage writes them: "
           f"metrics, {SCORES} scores on one reference set and an 8-column input profile per release. The quality table "
           "is examples/churn-model's (metric bounds, PSI with max-shift, undecided share, input checks), given as "
           "`CI_KIT_QUALITY`. The bench environment's modules were compiled to bytecode first, as `pip install` does "
           "(this machine sets PYTHONDONTWRITEBYTECODE=1; without it every run compiles matplotlib and numpy from "
           "source).\n")]
    if q:
        out.append(f"`ci-kit promote bench-q==VERSION` with {q['releases']} candidates on `q/unstable` and {q['releases']} "
                   f"releases on `q/stable` (the newest is the baseline), a different candidate each time, the four "
                   f"variants in turn (load average {q.get('load', '?')}):\n")
        out.append(table(["variant", "median [min – max]", "added to the first (per round)"],
                         [[k, mmm(v), mmm(q["added"][k]) if k in q["added"] else "—"] for k, v in q["stats"].items()]))
        out.append("\nThe second variant still reads the baseline (for the log line); the third is what a promote right after "
                   "its test stage finds (quality/shift.py); the fourth imports numpy and scipy.special to measure PSI.\n")
    if r:
        out.append("`ci-kit report bench-r --html FILE`: 100 versions on `q/unstable`, every tenth also on `q/stable` "
                   f"with its promotion record; matplotlib installed (load average {r.get('load', '?')}):\n")
        out.append(table(["command", "median [min – max]", "page", "images"],
                         [[k, mmm(v), f"{r['samples'][k][0]['bytes'] / 1000:.0f} kB", str(r["samples"][k][0]["images"])]
                          for k, v in r["stats"].items()]))
        out.append("")
    return out
