"""The Markdown each command appends to `--summary FILE` (GitHub's $GITHUB_STEP_SUMMARY,
a Jenkins build description): one section per stage, from the stage's result."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build(m: Any) -> str:
    rows = "\n".join(f"| `{f.filename}` | `{f.sha256}` |" for f in m.files)
    return (f"### ci-kit build: `{m.requirement}` (not uploaded)\n\n"
            f"Commit `{m.commit}`; {len(m.files)} file(s) built and checked.\n\n"
            f"| file | sha256 |\n|---|---|\n{rows}")


def push(o: dict[str, Any], uploaded: list[str]) -> str:
    rows = "\n".join(f"| `{f['filename']}` | `{f['sha256']}` |" for f in o["files"])
    return (f"### ci-kit: `{o['requirement']}` on `{o['index']}`\n\n"
            f"Commit `{o['commit']}`; {len(uploaded)} file(s) uploaded, {len(o['files']) - len(uploaded)} already there.\n\n"
            f"| file | sha256 |\n|---|---|\n{rows}")


def run_report(report: Any, error: str = "") -> str:
    """The test stage's table, from what `ci-kit test --json` prints (report.to_json())."""
    o = report.to_json()
    runs = o["runs"]
    rows = "\n".join(f"| `{r['filename']}` | {r['python']} | {'✅ passed' if r['passed'] else '❌ failed'} | {r['counts']['tests']} | "
                     f"{r['counts']['failures'] + r['counts']['errors']} | {r['counts']['skipped']} | `{Path(r['junit_path']).name}` |"
                     for r in runs)
    head = f"### ci-kit test: `{o['requirement']}` at `{o['commit'][:12]}`\n\n"
    if not o["attached"]:  # `ci-kit test --dist`: the built files, never on an index
        tested = sorted({(r["filename"], r["sha256"]) for r in runs})
        head = (f"### ci-kit test: `{o['requirement']}` at `{o['commit'][:12]}`, the built files (not uploaded)\n\n"
                "Installed from the local files below; no result was attached to any index, so these runs never count "
                "for promotion.\n\n" + "".join(f"- `{name}` sha256 `{sha}`\n" for name, sha in tested) + "\n")
    table = "| file | Python | result | tests | failed | skipped | JUnit |\n|---|---|---|---|---|---|---|\n" + rows
    failing = [f"- `{name}` ({r['kind']}, Python {r['python']})" for r in runs for name in r["failed_tests"]]
    listing = ("\n\nFailed tests:\n\n" + "\n".join(failing[:30]) + (f"\n- … and {len(failing) - 30} more" if len(failing) > 30 else "")
               if failing else "")
    return head + table + listing + (f"\n\n**{error}**" if error else "")


def promote(p: Any) -> str:
    verb = "would be promoted to" if p.dry_run else ("promoted to" if p.changed else "was already on")
    lines = [f"### ci-kit promote: `{p.spec}` {verb} `{p.target}`" + (" (FORCED)" if p.forced else ""), ""]
    lines += [f"- {g}" for g in p.gate]
    return "\n".join(lines)


def image(res: Any) -> str:
    return (f"### ci-kit image: `{res.requirement}`\n\n| | |\n|---|---|\n| image | `{res.reference}` |\n"
            f"| digest | `{res.digest or '(not pushed)'}` |\n| base | `{res.base}` |\n"
            f"| from index | `{res.index}` |\n| lock sha256 | `{res.lock_sha256}` |")
