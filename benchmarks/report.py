"""RESULTS.md from the measurements: machine, tool versions, commands, medians, min/max,
ratios, targets, where the time goes, and the growth plots."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.harness import BIN, TOXUV_BIN

# -- what was measured on -------------------------------------------------------------------


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    mem = "?"
    with contextlib.suppress(OSError, StopIteration):
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    distro = "?"
    with contextlib.suppress(OSError, StopIteration):
        distro = next(line.split("=", 1)[1].strip('"') for line in Path("/etc/os-release").read_text().splitlines() if line.startswith("PRETTY_NAME"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "os": distro, "kernel": platform.release(),
            "arch": platform.machine(), "load_before": loadavg()}


def _out(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not installed"


def versions() -> dict[str, str]:
    v: dict[str, str] = {"python (ci-kit, devpi-client, tox)": platform.python_version() + f" ({sys.executable})"}
    for dist in ("ci-kit", "devpi-server", "devpi-client", "devpi-common", "tox", "build", "twine", "uv", "requests",
                 "packaging", "pytest", "pip", "virtualenv", "psutil", "matplotlib", "pyinstrument", "cyclonedx-bom"):
        try:
            v[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            v[dist] = "not installed"
    v["tox-uv (second devpi-client environment)"] = _out(
        [str(TOXUV_BIN / "python"), "-c", "from importlib.metadata import version as v; print('tox-uv', v('tox-uv'), 'tox', v('tox'), 'devpi-client', v('devpi-client'))"])
    v["uv binary"] = _out([str(BIN / "uv"), "--version"])
    v["git"] = _out(["git", "--version"])
    for py in ("3.10", "3.12"):
        v[f"python {py} (growth row)"] = _out(["sh", "-c", f"ls -d ~/.pyenv/versions/{py}.* 2>/dev/null | tail -1"]).rsplit("/", 1)[-1]
    v["hyperfine"] = _out(["hyperfine", "--version"])
    v["setuptools / setuptools_scm (the example's build env)"] = "newest on PyPI at run time (isolated build env)"
    return v


# -- formatting -----------------------------------------------------------------------------


def s(x: float | None, unit: str = "s") -> str:
    if x is None:
        return "—"
    if unit == "s":
        return f"{x:.3f} s" if x < 1 else f"{x:.2f} s"
    if unit == "x":
        return f"{x:.2f}"
    return f"{x:.1f} {unit}"


def mmm(st: dict[str, float], unit: str = "s") -> str:
    if not st or not st.get("n"):
        return "—"
    return f"{s(st['median'], unit)} [{s(st['min'], unit)} – {s(st['max'], unit)}]"


def _image_sizes(im: dict[str, Any]) -> list[tuple[str, list[tuple[str, int]]]]:
    """(product, [(ci-kit's image, bytes), (the naive one, bytes)]) for row 7."""
    out = []
    sizes = im.get("sizes") or {}
    a = [(k, v) for k, v in sizes.items() if k.startswith("churn-a:")]
    b = [(k, v) for k, v in sizes.items() if k.startswith("churn-b:")]
    if a and b:
        out.append(("example (no dependencies)", [a[0], b[0]]))
    for variant, rb in (im.get("rebuild") or {}).items():
        pair = sorted((rb.get("sizes") or {}).items(), key=lambda kv: "-naive" in kv[0])
        if len(pair) == 2:
            out.append((variant, pair))
    return out


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


CATEGORIES = [
    (r"start-up, configuration", "start-up, configuration, login, first index request"),
    (r"-m build ", "build: `python -m build --installer uv` (isolated env for the sdist, another for the wheel)"),
    (r"twine check", "build: `twine check --strict` (a second Python process)"),
    (r"^build: ", "build: sha256 + manifest"),
    (r"^push: ", "push: upload + read back + sha256"),
    (r"fresh clone", "test: fresh `git clone` of the commit"),
    (r"from \S+, sha256", "test: download + sha256 check"),
    (r"uv venv", "test: `uv venv` (per file and Python)"),
    (r"(installing|uv pip install).*\.whl", "test: `uv pip install` wheel[test] + pytest"),
    (r"(installing|uv pip install).*\.tar\.gz", "test: `uv pip install` sdist[test] + pytest (builds a wheel)"),
    (r"/pytest$", "test: pytest run + import proof + result record + attach"),
    (r"^test: ", "test: bookkeeping"),
    (r"^promote: ", "promote: gate + download, hash check, upload to the target + promotion records"),
]


def categorise(steps: list[list[Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for text, secs in steps:
        label = next((lab for rx, lab in CATEGORIES if re.search(rx, text)), "other")
        out[label] = out.get(label, 0.0) + secs
    return out


def breakdown(samples: list[dict[str, Any]], key: str) -> list[tuple[str, float]]:
    per = [categorise(x[key]) for x in samples]
    labels = [lab for _, lab in CATEGORIES if any(lab in p for p in per)] + (["other"] if any("other" in p for p in per) else [])
    return [(lab, statistics.median(p.get(lab, 0.0) for p in per)) for lab in labels]


# -- plots ----------------------------------------------------------------------------------


def plots(growth: dict[str, Any], out_dir: Path, prefix: str = "growth") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    cfg, st, j1, j2 = growth["configs"], growth["stats"], growth["job1"], growth["job2"]
    curves = {
        "size": ("wheel size (MB of incompressible data)", "size_mb",
                 [k for k in cfg if cfg[k]["tests"] == 4 and cfg[k]["pythons"] == 1]),
        "tests": ("number of tests", "tests", [k for k in cfg if cfg[k]["size_mb"] == 0 and cfg[k]["pythons"] == 1]),
        "pythons": ("Python versions tested", "pythons", [k for k in cfg if cfg[k]["size_mb"] == 0 and cfg[k]["tests"] == 4]),
    }
    for key, (xlabel, field, unsorted) in curves.items():
        names = sorted(unsorted, key=lambda k: cfg[k][field])
        if len(names) < 2 or not all(st.get(n, {}).get("n") for n in names):
            continue
        xs = [cfg[n][field] for n in names]
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, data in (("whole flow", st), ("job 1 build-and-push", j1), ("job 2 test-and-promote", j2)):
            med = [data[n]["median"] for n in names]
            lo = [data[n]["median"] - data[n]["min"] for n in names]
            hi = [data[n]["max"] - data[n]["median"] for n in names]
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label=label)
        if key == "tests":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds (median, min–max)")
        ax.set_title(f"ci-kit flow time vs {xlabel}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        name = f"{prefix}-{key}.png"
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        made.append(name)
    return made


def save_profiles(data: dict[str, Any], out_dir: Path) -> None:
    profs = {}
    for row in ("many", "profile"):
        profs.update((data["rows"].get(row) or {}).get("profiles") or {})
    if not profs:
        return
    out_dir.mkdir(exist_ok=True)
    for name, text in profs.items():
        (out_dir / f"{name}.txt").write_text(text)


def top_of(profile: str, lines: int = 40) -> str:
    body = [line for line in profile.splitlines() if line.strip()]
    return "\n".join(body[:lines])


# -- the report -----------------------------------------------------------------------------


def write(data: dict[str, Any], md: Path) -> None:
    rows = data["rows"]
    out: list[str] = []
    w = out.append
    quick = data.get("quick")
    w("# ci-kit benchmarks: results\n")
    w(f"Recorded by `scripts/bench{' --quick' if quick else ''}` on {data['started']} "
      f"(whole run {data.get('wall_s', 0) / 60:.1f} min). How to run and read it: [docs/benchmarks.md](../docs/benchmarks.md).")
    for note in data.get("merged", []):
        w(f"\nRe-run later into this record with `--merge`: {note}; the other rows are from the run above.")
    if quick:
        w("\n**This is a `--quick` run (fewer rounds, smaller sizes): for iterating, not for the record.**")
    w("\nEvery comparison ran A and B in turn, round by round (the order flips every round), against one "
      "devpi-server on 127.0.0.1, after a warm-up round that is not counted; ratios are taken per round and "
      "then summarised, so drift of the machine cancels. Times are wall clock of the whole command "
      "(process start to exit). `median [min – max]` over the counted rounds.\n")
    if data.get("errors"):
        w("## Errors in this run\n")
        for k, v in data["errors"].items():
            w(f"- `{k}`: `{v.strip().splitlines()[-1]}`")
        w("")

    # summary
    w("## Summary\n")
    body = []
    f = rows.get("flow")
    if f:
        st = f["stats"]
        for b, rk in (("B devpi+tox", "ratio_tox"), ("B devpi+tox-uv", "ratio_toxuv")):
            r = f[rk]
            body.append([f"1. whole flow, example ({b.split(' ', 1)[1]})", mmm(st["A ci-kit"]), mmm(st[b]),
                         f"{s(r['median'], 'x')} [{s(r['min'], 'x')} – {s(r['max'], 'x')}]", "A/B ≤ 0.4",
                         verdict(r["median"] <= 0.4)])
        o = f["overhead"]
        above = f.get("overhead_above_builds", {})
        body.append(["2. flow minus its floor", mmm(st["A ci-kit"]), "floor " + mmm(st["floor"]),
                     f"overhead {mmm(o)}" + (f"; above floor + building {s(above['median'])}" if above.get("n") else ""),
                     "overhead ≤ 2 s", verdict(o["median"] <= 2.0)])
    m = rows.get("many")
    if m:
        p = m["promote"]
        a, b = p["stats"]["A ci-kit promote"], p["stats"]["B devpi push"]
        ok = a["median"] <= 1.0 and p["diff"]["median"] <= 0.3
        body.append([f"3. promote, {m['seeded']['releases']} releases on the index", mmm(a), mmm(b),
                     f"{s(p['ratio']['median'], 'x')} (A−B {s(p['diff']['median'])})", "≤ 1 s and ≤ B + 0.3 s", verdict(ok)])
        st = m["status"]
        a, b = st["stats"]["A ci-kit status"], st["stats"]["B devpi list"]
        body.append([f"4. status, {m['seeded']['releases']} releases", mmm(a), mmm(b), s(st["ratio"]["median"], "x"), "≤ 2 s",
                     verdict(a["median"] <= 2.0)])
    su = rows.get("startup")
    if su:
        a, b = su["stats"]["A ci-kit --help"], su["stats"]["B devpi --help"]
        body.append(["5. start-up (`--help`)", mmm(a), mmm(b), s(su["ratio"]["median"], "x"), "≤ 0.25 s", verdict(a["median"] <= 0.25)])
    im = rows.get("image")
    if im and not im.get("skipped"):
        for variant, rb in im.get("rebuild", {}).items():
            a_name, b_name = list(rb["stats"])
            r = rb["ratio"]
            body.append([f"6. image rebuild, new version, same dependencies: {variant}", mmm(rb["stats"][a_name]),
                         "cold " + mmm(rb["stats"][b_name]), f"{s(r['median'], 'x')} [{s(r['min'], 'x')} – {s(r['max'], 'x')}]",
                         "≤ 0.15", verdict(r["median"] <= 0.15)])
        for variant, sizes in _image_sizes(im):
            (_a_ref, a_size), (_b_ref, b_size) = sizes
            body.append([f"7. image size: {variant}", f"{a_size / 1e6:.0f} MB", f"naive {b_size / 1e6:.0f} MB",
                         s(a_size / b_size, "x"), "≤ 1.0", verdict(a_size <= b_size)])
        for key, what in (("cold", "ci-kit image vs a hand-written build, no layer cache"),
                          ("warm", "ci-kit image vs a hand-written build, nothing changed")):
            names = list(im[key]["stats"])
            r = im[key]["ratio"]
            body.append([f"6–7 beside: {what}", mmm(im[key]["stats"][names[0]]), mmm(im[key]["stats"][names[1]]),
                         f"{s(r['median'], 'x')} [{s(r['min'], 'x')} – {s(r['max'], 'x')}]", "(none set)", "see row"])
    else:
        body.append(["6–7. image", "—", "—", "—", "—", "pending (`ci-kit image`)"])
    g = rows.get("growth")
    if g:
        names = list(g["stats"])
        body.append(["8. how cost grows", "; ".join(f"{n} {s(g['stats'][n]['median'])}" for n in names), "—", "—",
                     "(no target)", "see below"])
    mem = rows.get("memory")
    if mem:
        peak = max(mem["job1"]["main_mb"], mem["job2"]["main_mb"])
        extra = ""
        if g:
            gpeak = max(max(v["job1"]["main_mb"], v["job2"]["main_mb"]) for v in g["memory"].values())
            extra = f"; largest over the growth row {gpeak:.0f} MB"
        body.append(["9. peak RSS of the ci-kit process", f"{peak:.0f} MB (example){extra}", "—", "—", "≤ 150 MB",
                     verdict(peak <= 150) + ("" if not g or gpeak <= 150 else " for the example; **missed** for large wheels")])
    from benchmarks import quality

    body += quality.summary(rows)
    w(table(["row", "A: ci-kit", "B: devpi-client", "A/B", "target", "verdict"], body))
    w("")

    # 1 + 2
    if f:
        w("## 1. The whole flow on examples/churn-model\n")
        w("A (two jobs, as CI runs them):\n")
        w("```\n" + "\n".join(
            ["ci-kit build-and-push --output FILE", "ci-kit test-and-promote NAME==VERSION --commit SHA"]) + "\n```\n")
        w("B (devpi-client as its documentation shows; a fresh client directory per round, as a CI job has):\n")
        w("```\n" + "\n".join(["devpi use URL/dv/unstable", "devpi login dv --password ***", "devpi upload",
                               "devpi test --select . NAME==VERSION      # tox; --select . tests the wheel too, as ci-kit does",
                               "devpi push NAME==VERSION dv/testing"]) + "\n```\n")
        w("Each round makes a new commit in each repository (a new setuptools_scm version `+g<sha>`) before A and "
          "before each B; making the commit is not timed. B's temporary copy has a generated `tox.ini` "
          "(py311 env, `deps = pytest`, `extras = test`; tox takes pytest from PyPI because the benchmark's indexes "
          "have no PyPI mirror, just as ci-kit's uv does). B+tox-uv is the same devpi-client with `tox-uv` installed "
          "next to tox. Both test the sdist and the wheel on one Python, like A.\n")
        st = f["stats"]
        body = [[k, mmm(v), ", ".join(s(x["seconds"]) for x in f["samples"][k])] for k, v in st.items()]
        body.insert(1, ["  A job 1 build-and-push", mmm(f["job1"]), ", ".join(s(x["job1"]) for x in f["samples"]["A ci-kit"])])
        body.insert(2, ["  A job 2 test-and-promote", mmm(f["job2"]), ", ".join(s(x["job2"]) for x in f["samples"]["A ci-kit"])])
        w(table(["variant", "median [min – max]", "rounds"], body))
        w("")
        w(table(["ratio (per round)", "median [min – max]", "target"], [
            ["A / B devpi+tox", f"{s(f['ratio_tox']['median'], 'x')} [{s(f['ratio_tox']['min'], 'x')} – {s(f['ratio_tox']['max'], 'x')}]", "≤ 0.4"],
            ["A / B devpi+tox-uv", f"{s(f['ratio_toxuv']['median'], 'x')} [{s(f['ratio_toxuv']['min'], 'x')} – {s(f['ratio_toxuv']['max'], 'x')}]", "≤ 0.4"],
        ]))
        w("\nB's steps (median seconds):\n")
        keys = list(next(iter(f["b_steps"].values())))
        w(table(["variant", *keys], [[k, *(s(v[x]) for x in keys)] for k, v in f["b_steps"].items()]))
        w("\n## 2. The flow's floor\n")
        w("The parts no flow can avoid, measured alone in the same rounds: the example's tests run in an "
          "environment that already has the product and pytest (`pytest -q`, as many times as ci-kit runs them: "
          "once for the wheel, once for the sdist), plus uploading the round's two files once over one "
          "logged-in HTTP session. Building is *not* part of this floor (see the breakdown below for its cost).\n")
        w(table(["part", "median [min – max]"], [
            ["tests in a ready env (×2)", mmm(f["floor_tests"])], ["upload of the 2 files", mmm(f["floor_upload"])],
            ["floor", mmm(st["floor"])], ["A ci-kit (whole flow)", mmm(st["A ci-kit"])],
            ["**overhead = A − floor** (per round)", mmm(f["overhead"])]]))
        if f.get("floor_build", {}).get("n"):
            w("\nWhat the floor leaves out, measured alone in the same rounds: building. Any flow that uploads "
              "what it built and tests the sdist's own bytes pays for it: the sdist and the wheel built side by side "
              "from two clones (`python -m build --sdist|--wheel --installer uv`, what job 1 runs), and a wheel built "
              "from the sdist (`uv build --wheel SDIST`, what installing the sdist costs job 2). With them, the limit "
              "of row 2's overhead for this product is their sum; what ci-kit adds above floor + building is the last line.\n")
            w(table(["part", "median [min – max]"], [
                ["sdist + wheel built side by side", mmm(f["floor_build"])],
                ["a wheel built from the sdist", mmm(f["floor_sdist_wheel"])],
                ["**ci-kit's overhead above floor + building** (per round)", mmm(f["overhead_above_builds"])]]))
        w("\n### Where A's time goes (from ci-kit's own progress timestamps, median of the counted rounds)\n")
        for key, title in (("steps1", "job 1 `build-and-push`"), ("steps2", "job 2 `test-and-promote`")):
            bd = breakdown(f["samples"]["A ci-kit"], key)
            w(f"{title}:\n")
            w(table(["step", "seconds"], [[lab, s(v)] for lab, v in bd] + [["total of the steps", s(sum(v for _, v in bd))]]))
            w("")

    # 3 + 4
    if m:
        sd = m["seeded"]
        w(f"## 3. Promote with {sd['releases']} releases of the project on the index\n")
        w(f"Seeded `bench-big` on `big/unstable` with {sd['releases']} tiny generated wheels, each with one passing "
          f"test record in ci-kit's shape (`ci_kit.results.test_record`) attached, by writing a devpi export dump "
          f"({s(sd['dump_s'])}) and importing it with `devpi-import` into the server directory before the server "
          f"started ({s(sd['import_s'])}; total {s(sd['total_s'])}). Why not over HTTP: uploading them through devpi's "
          "upload API with 8 threads got slower and slower on this machine (about 26 uploads/s at first, 1.5/s after "
          "600, devpi-server's log showing 0.6–1 s per commit) and then failed with `database is locked` (HTTP 500) "
          "after 80 s; the import writes the project in one transaction. "
          "Each round promotes a different seeded release (dev versions, so both go to "
          "`big/testing`; the seeded user's indexes are volatile so that they can be deleted). Afterwards the project, the indexes and the user were deleted: "
          + ", ".join(f"`{c}`" for c in m["cleanup"]) + " (the whole server is discarded at the end in any case).\n")
        if m.get("writes"):
            w(f"One more write to this project over HTTP, as `ci-kit push` and every attached record make it "
              f"(3 times, median): upload of a tiny wheel {s(m['writes']['upload']['median'])}, attaching a record "
              f"{s(m['writes']['attach']['median'])}.\n")
        w("```\nA: ci-kit promote bench-big==VERSION            (CI_KIT_PASSWORD in the environment; logs in every run)\n"
          "B: devpi push bench-big==VERSION big/testing    (after devpi use + devpi login once, as at a laptop)\n```\n")
        p = m["promote"]
        w(table(["variant", "median [min – max]", "rounds"],
                [[k, mmm(v), ", ".join(s(x["seconds"]) for x in p["samples"][k])] for k, v in p["stats"].items()]
                + [["A − B (per round)", mmm(p["diff"]), ""], ["A / B (per round)", mmm(p["ratio"], "x"), ""]]))
        w(f"\n## 4. Status of a project with {sd['releases']} releases\n")
        w("```\nA: ci-kit status bench-big     (newest 10 versions x 3 indexes, with results per Python)\n"
          "B: devpi list bench-big        (the files of the newest version on the current index)\n"
          "   devpi list --all bench-big  (every file of every version; for reference, not the target)\n```\n")
        st = m["status"]
        w(table(["variant", "median [min – max]", "rounds", "output lines"],
                [[k, mmm(v), ", ".join(s(x["seconds"]) for x in st["samples"][k]), str(st["samples"][k][0]["lines"])]
                 for k, v in st["stats"].items()] + [["A / B (per round)", mmm(st["ratio"], "x"), "", ""]]))
        w("")

    if su:
        w("## 5. Start-up\n")
        w("```\nA: ci-kit --help\nB: devpi --help\n(reference: python -c pass, the same interpreter)\n```\n")
        w(table(["command", "median [min – max]"], [[k, mmm(v)] for k, v in su["stats"].items()]
                + [["A / B (per round)", mmm(su["ratio"], "x")]]))
        if su.get("hyperfine"):
            w("\nCross-check with hyperfine (`-N`, 3 warm-ups):\n")
            w(table(["command", "median", "min", "max"], [[h["command"], s(h["median"]), s(h["min"]), s(h["max"])] for h in su["hyperfine"]]))
        w("")

    if im and not im.get("skipped"):
        w("## 6–7. The image of a promoted release\n")
        w("A builds the pinned image of the flow's promoted release with ci-kit; B does the obvious hand-written "
          "equivalent with the same base (by digest), the same engine and the same registry: a one-stage Dockerfile "
          "that pip-installs the release from the index, a smoke run, a push. A does more (a hash-locked install, "
          "an SBOM, two stages, non-root, labels, an import check) — this row shows what that costs. Both push to a "
          "docker-registry of the benchmark's own on 127.0.0.1 (removed afterwards, as are the tagged images). "
          "Row 6 builds with `--no-cache` every round; row 7 re-runs with nothing changed (the engine's layer cache "
          "and the registry already hold everything).\n")
        w("```\nA: ci-kit image NAME==VERSION --push REGISTRY/bench/churn-a --image-base BASE@sha256:... "
          "--smoke 'churn-predict --tenure 3 --monthly 95.5 --support-calls 4' [--no-cache]\n"
          "B: docker build --network host -t REGISTRY/bench/churn-b:VERSION [--no-cache] CONTEXT\n"
          "   docker run --rm --network host REGISTRY/bench/churn-b:VERSION --tenure 3 --monthly 95.5 --support-calls 4\n"
          "   docker push REGISTRY/bench/churn-b:VERSION\n```\n")
        w("B's Dockerfile:\n\n```dockerfile\n" + im["dockerfile_b"] + "```\n")
        for key, title in (("cold", "6. no layer cache"), ("warm", "7. nothing changed")):
            st = im[key]
            w(f"{title}:\n")
            w(table(["variant", "median [min – max]", "rounds"],
                    [[k, mmm(v), ", ".join(s(x["seconds"]) for x in st["samples"][k])] for k, v in st["stats"].items()]
                    + [["A / B (per round)", mmm(st["ratio"], "x"), ""]]))
            w("")
        for key in ("cold", "warm"):
            a_name = next(iter(im[key]["samples"]))
            if im[key]["samples"][a_name] and "steps" in im[key]["samples"][a_name][0]:
                w(f"Where `{a_name}` spends its time (its own progress lines, last counted round; lines under 0.1 s left out):\n")
                w("```\n" + "\n".join(f"{secs:6.2f} s  {text[:150]}" for text, secs in im[key]["samples"][a_name][-1]["steps"] if secs >= 0.1) + "\n```\n")
        if im.get("sizes"):
            w("Image sizes (engine's view): " + ", ".join(f"`{k}` {v / 1e6:.0f} MB" for k, v in im["sizes"].items()) + "\n")
        if im.get("rebuild"):
            w("### 6. Rebuild for a new version with the same dependencies\n")
            w("Each round releases a new version of the product with the same dependencies (a new commit, then the "
              "whole flow, not timed), then times A: `ci-kit image NAME==VERSION --push ... --smoke ...` with the engine's "
              "layer cache holding the previous version's image, and B: the cold build of the same release, the same "
              "command with `--no-cache`. A always goes first (B's fresh layers would otherwise serve A). Both take "
              "the dependency wheels from the same local caches (ci-kit's kept wheels, pip's cache): the network is not "
              "what is measured. Two products: the example as it is (it has no dependencies at all), and the example "
              "declaring the stack a served model usually has (numpy, pandas, scikit-learn and what they pull in, from PyPI).\n")
            for variant, rb in im["rebuild"].items():
                w(f"{variant} (dependencies: {', '.join(rb['dependencies']) or 'none'}):\n")
                w(table(["variant", "median [min – max]", "rounds"],
                        [[k, mmm(v), ", ".join(s(x["seconds"]) for x in rb["samples"][k])] for k, v in rb["stats"].items()]
                        + [["A / B (per round)", mmm(rb["ratio"], "x"), ""]]))
                w("")
                for key in rb["samples"]:
                    if rb["samples"][key]:
                        w(f"Where `{key}` spends its time (its own progress lines, last counted round; lines under 0.1 s left out):\n")
                        w("```\n" + "\n".join(f"{secs:6.2f} s  {text[:150]}" for text, secs in rb["samples"][key][-1]["steps"]
                                                if secs >= 0.1) + "\n```\n")
            sizes = _image_sizes(im)
            if sizes:
                w("### 7. Image size\n")
                w(table(["product", "ci-kit image", "naive single-stage image", "ratio"],
                        [[v, f"`{a[0]}` {a[1] / 1e6:.0f} MB", f"`{b[0]}` {b[1] / 1e6:.0f} MB", s(a[1] / b[1], "x")] for v, (a, b) in sizes]))
                w("")
    else:
        w("## 6–7. Image rows\n")
        if im and im.get("skipped"):
            w(f"Not run on this machine: {im['skipped']}.\n")
        w("They measure `ci-kit image` against a hand-written `docker build` + `docker run` + `docker push` of the "
          "same release (6: without the layer cache, 7: again with nothing changed); they need a Docker engine, "
          "Debian's docker-registry and the base image of scripts/make-base-image.\n")

    if g:
        w("## 8. How cost grows\n")
        w("ci-kit's whole flow (both jobs) on changed temporary copies of the example, all configurations in turn "
          "round by round: incompressible data files (`os.urandom`) added to the package (they land in both the "
          "wheel and the sdist), generated trivial tests added to the suite, and `python-versions` of 1 "
          "(the running 3.11) or 3 (3.10, 3.11, 3.12; the sdist is tested on the first only).\n")
        body = []
        for n, st in g["stats"].items():
            sizes = g["samples"][n][0]["file_sizes"]
            wheel = next((v for k, v in sizes.items() if k.endswith(".whl")), 0)
            body.append([n, f"{wheel / 1e6:.2f} MB", mmm(st), mmm(g["job1"][n]), mmm(g["job2"][n]),
                         f"{g['memory'][n]['job1']['main_mb']:.0f} / {g['memory'][n]['job2']['main_mb']:.0f} MB"])
        w(table(["configuration", "wheel", "whole flow", "job 1", "job 2", "peak RSS ci-kit job 1 / job 2"], body))
        for png in g.get("plots", []):
            w(f"\n![{png}]({png})")
        w("")

    if mem:
        w("## 9. Memory\n")
        w("Peak resident set size sampled every 20 ms with psutil over each job of the example's flow "
          f"({len(mem['runs'])} runs): the ci-kit process itself, the largest single child (build backends, "
          "uv, pytest, git), and the largest sum of all children at one moment.\n")
        w(table(["job", "ci-kit process", "largest child", "children together", "whole tree"],
                [[j, *(f"{mem[j][k]:.0f} MB" for k in ("main_mb", "largest_child_mb", "children_sum_mb", "tree_sum_mb"))]
                 for j in ("job1", "job2")]))
        w("")

    out += quality.section(rows)
    pr = rows.get("profile")
    if pr or m:
        w("## Profiles and single steps\n")
        if pr:
            w("Each step of the flow run alone, 3 times, median (warm caches):\n")
            w(table(["step", "seconds"], [[lab, s(v)] for lab, v in pr["steps"]]))
            w("")
        if pr and pr.get("proposals"):
            w("Two changes to the core measured the way the comparisons are (alternating, warm-up, per-round difference):\n")
            body = []
            for name, p in pr["proposals"].items():
                (a, sa), (b, sb) = list(p["stats"].items())
                body.append([name, f"{a}: {mmm(sa)}", f"{b}: {mmm(sb)}", f"{mmm(p['diff'])}"])
            w(table(["what", "now", "proposed", "saving per round (now − proposed)"], body))
            w("")
        w("pyinstrument wall-clock profiles (time in a child process shows as waiting in `subprocess`); "
          "the full text is in `benchmarks/profiles/`.\n")
        for name, text in ((pr or {}).get("profiles", {}) | (m or {}).get("profiles", {})).items():
            w(f"<details><summary>{name}</summary>\n\n```\n{top_of(text)}\n```\n</details>\n")

    w("## Machine and versions\n")
    mc = data["machine"]
    w(table(["", ""], [["CPU", f"{mc['cpu']} ({mc['cores']} cores)"], ["memory", mc["memory"]], ["OS", f"{mc['os']}, kernel {mc['kernel']} ({mc['arch']})"],
                       ["load average before / after", f"{mc['load_before']} / {mc.get('load_after', '?')}"],
                       ["other work on the machine", "yes: other jobs ran at the same time, so numbers are noisy"],
                       ["devpi-server start (`ci-kit server start`)", s(data.get("server_start_s"))]]))
    w("")
    w(table(["tool", "version"], [[k, v] for k, v in data["versions"].items()]))
    w("")
    notes = md.parent / "analysis.md"
    if notes.is_file() and not quick:
        w(notes.read_text())
    md.write_text("\n".join(out) + "\n")


def write_with_plots(data: dict[str, Any], md: Path) -> None:
    g = data["rows"].get("growth")
    if g:
        g["plots"] = plots(g, md.parent, "growth-quick" if data.get("quick") else "growth")
    write(data, md)
