"""What one test run shows, read from what it left behind: its verdict (exit code and the
JUnit XML ci-kit asked for), the Python that really ran, where the product's modules were
imported from (the probe plugin's report), and the metrics the tests wrote. No process
is started here besides asking an environment's interpreter about itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ci_kit import envs
from ci_kit.contract import Counts

PYTEST_NO_TESTS = 5  # pytest's exit code for "no tests collected"


def failure_message(rc: int, counts: Counts | None, *, require_junit: bool, ran: str, py: str, tox: bool,
             proof: dict[str, str]) -> str:
    """Why the run is not a pass ("" if it is): the verdict on exit code and JUnit, then
    the Python that ran, then where the product was imported from."""
    message = verdict(rc, counts, require_junit)
    if not message and ran and ".".join(ran.split(".")[:2]) != py:
        message = f"the tests ran on Python {ran}, not {py}" + (" (check the tox env's base_python)" if tox else "")
    if not message and proof.get("problem"):
        message = proof["problem"]
    return message



def verdict(rc: int, counts: Counts | None, require_junit: bool) -> str:
    """Why a run is not a pass ("" if it is): a pass needs exit 0 and, unless JUnit is
    waived, the JUnit XML ci-kit asked for showing at least one test and no failure."""
    if rc == PYTEST_NO_TESTS or (counts is not None and counts["tests"] == 0 and rc == 0):
        return "no tests found"
    if rc != 0:
        return "tests failed" if counts and (counts["failures"] or counts["errors"]) else f"test command exited {rc}"
    if counts is None and require_junit:
        return ("the test command wrote no JUnit XML, so ci-kit cannot tell that tests ran "
                "(ci-kit asks pytest for it; set require-junit = false for a command that cannot write it)")
    return ""


def python_that_ran(env: envs.Env, probe: dict[str, Any]) -> str:
    """The full version of the Python the tests ran on: the probe's word when it ran in
    this environment, else the environment's interpreter; "" when there is none."""
    if _ran_in(env, probe) and probe.get("python"):
        return str(probe["python"])
    if not env.python.exists():
        return ""
    return env.full_version()


def read_probe(probe_out: Path) -> dict[str, Any]:
    """What the pytest plugin recorded inside the test run; {} when pytest did not run it."""
    try:
        data = json.loads(probe_out.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ran_in(env: envs.Env, probe: dict[str, Any]) -> bool:
    return str(probe.get("executable", "")).startswith(str(env.path) + os.sep)


def import_proof(env: envs.Env, data: dict[str, Any], clone: Path) -> dict[str, str]:
    """Where the product's modules were imported from during the test run."""
    if not data:
        return {"method": "none", "note": "the test command did not run pytest; import location not recorded"}
    # When the plugin ran in this environment's interpreter, it has said where that installs;
    # otherwise (another interpreter, an older record) the environment's Python is asked,
    # so the modules are always checked against this environment.
    site = (data.get("site_packages") if _ran_in(env, data) else None) or env.site_packages()
    proof: dict[str, str] = {"method": "pytest plugin", "installed_version": data.get("version", "")}
    for mod, file in data.get("modules", {}).items():
        proof[mod] = file
        if not any(file.startswith(s + os.sep) for s in site):
            where = "the checkout" if file.startswith(str(clone)) else (file or "nowhere")
            proof["problem"] = (f"the tests imported {mod} from {where}, not from the installed package; "
                                "for a package at the repository root run pytest with --import-mode=append "
                                "(test-command = \"pytest --import-mode=append\"), or use a src/ layout")
    return proof
