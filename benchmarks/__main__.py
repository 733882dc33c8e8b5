"""Run the benchmarks and write RESULTS.md:  python -m benchmarks [--quick] [--rows ...]

scripts/bench is the entry point (it makes the environment first); see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

from benchmarks import quality, report, rows, seed
from benchmarks.harness import BENCH_DIR, Server, log, tempdir

ALL_ROWS = ["flow", "many", "startup", "image", "growth", "memory", "profile", "quality-promote", "report"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes (to iterate; not for the record)")
    p.add_argument("--rows", default=",".join(ALL_ROWS), help=f"comma-separated subset of {','.join(ALL_ROWS)}")
    p.add_argument("--output", help="where the report goes (default benchmarks/RESULTS.md, or RESULTS-quick.md with --quick)")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the saved JSON, run nothing")
    p.add_argument("--merge", action="store_true",
                   help="replace only the rows run now in the saved JSON (e.g. to re-run a row that failed); the report says so")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (server data, repos, profiles)")
    args = p.parse_args(argv)
    stem = "RESULTS-quick" if args.quick else "RESULTS"
    md = Path(args.output) if args.output else BENCH_DIR / f"{stem}.md"
    data_path = md.with_suffix(".json")
    if args.report_only:
        report.write_with_plots(json.loads(data_path.read_text()), md)
        return 0
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = set(wanted) - set(ALL_ROWS)
    if unknown:
        p.error(f"unknown rows: {', '.join(sorted(unknown))}")
    plan = rows.Plan(quick=args.quick)
    data: dict = {"quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  "machine": report.machine(), "versions": report.versions(), "rows": {}, "errors": {}}
    work = tempdir("ci-kit-bench-")
    server = Server(work)
    t0 = time.perf_counter()
    try:
        log(f"devpi-server on {server.url}, data in {server.server_dir}")
        projects = ([seed.many("big", "bench-big", plan.releases)] if "many" in wanted else []) + (
            quality.projects(plan.releases) if {"quality-promote", "report"} & set(wanted) else [])
        if projects:  # seeded by import, before the server starts (seed.py says why)
            log(f"seeding {', '.join(p.name for p in projects)} (devpi-import)")
            try:
                data["seed"] = seed.seed_by_import(server.server_dir, work / "seed-dump", projects)
                data["seed"]["releases"] = plan.releases  # of each project the rows promote from
                log(f"seeded: {data['seed']}")
            except Exception as exc:  # noqa: BLE001 - recorded in the results; the other rows still run
                data["errors"]["seed"] = str(exc)[-3000:]
        data["server_start_s"] = server.start()
        server.index().create_index("ci/floor", volatile=True)
        server.add_user("dv", {"unstable": True, "testing": False})
        for name in wanted:
            log(f"== {name}")
            try:
                if name == "flow":
                    data["rows"]["flow"] = rows.row_flow(server, work, plan)
                elif name == "many":
                    if "seed" not in data:
                        raise RuntimeError("seeding failed; see errors.seed")
                    data["rows"]["many"] = rows.row_many(server, work, plan, data["seed"])
                elif name == "startup":
                    data["rows"]["startup"] = rows.row_startup(plan)
                elif name == "image":
                    data["rows"]["image"] = rows.row_image(server, work, plan)
                elif name == "growth":
                    data["rows"]["growth"] = rows.row_growth(server, work, plan)
                elif name == "memory":
                    data["rows"]["memory"] = rows.row_memory(server, work, plan)
                elif name == "profile":
                    data["rows"]["profile"] = rows.row_profile(server, work, plan)
                elif name == "quality-promote":
                    if "seed" not in data:
                        raise RuntimeError("seeding failed; see errors.seed")
                    data["rows"][name] = quality.row_quality_promote(server, work, plan.rounds, plan.warmup, plan.releases)
                    data["rows"][name]["seed"] = data["seed"]
                elif name == "report":
                    if "seed" not in data:
                        raise RuntimeError("seeding failed; see errors.seed")
                    data["rows"][name] = quality.row_report(server, work, plan.rounds, plan.warmup)
                    data["rows"][name]["seed"] = data["seed"]
            except Exception as exc:  # noqa: BLE001 - record and go on: one broken row must not lose the others
                log(f"{name} failed: {exc}")
                data["errors"][name] = "".join(traceback.format_exception_only(type(exc), exc))[-3000:]
            if not args.merge:
                data_path.write_text(json.dumps(data, indent=1, default=str))  # partial results survive a crash
    finally:
        server.stop()
        data["machine"]["load_after"] = report.loadavg()
        data["wall_s"] = time.perf_counter() - t0
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    prof_dir = BENCH_DIR / ("profiles-quick" if args.quick else "profiles")
    report.save_profiles(data, prof_dir)
    if args.merge and data_path.is_file():
        old = json.loads(data_path.read_text())
        old["rows"].update(data["rows"])
        old["errors"] = {k: v for k, v in old.get("errors", {}).items() if k not in wanted} | data["errors"]
        old.setdefault("merged", []).append(f"{', '.join(wanted)} re-run on {data['started']}")
        data = old
    data_path.write_text(json.dumps(data, indent=1, default=str))
    report.write_with_plots(data, md)
    log(f"wrote {md} ({data['wall_s'] / 60:.1f} min)")
    return 1 if data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
