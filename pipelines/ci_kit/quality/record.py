"""The evaluation record of one test run: the optional evaluate-command, then the file
at $CI_KIT_METRICS_FILE read, checked (schema.py) and its input profile computed.

Called from the test stage once per run, so each run's test record carries the
evaluation made in its own fresh environment against its own installed file; promotion
copies those records byte for byte, so the evaluation travels with the release.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_kit import console
from ci_kit.errors import UsageError
from ci_kit.quality import profile, shift
from ci_kit.quality.schema import FILES, SchemaError, validate

if TYPE_CHECKING:
    from ci_kit.envs import Env
    from ci_kit.quality.gate import Side
    from ci_kit.quality.rules import Rules
    from ci_kit.sandbox import Box

_PYTHON = re.compile(r"python(3(\.\d+)?)?")
MAX_BYTES = 5_000_000  # a record is published on the index: larger files are refused, not truncated


def evaluate(command: str, box: Box, env: Env, child: Mapping[str, str], clone: Path) -> tuple[int, str]:
    """Run evaluate-command in the run's box and environment, after the tests passed.
    `python ...` is the environment's Python; a console script of the environment is found there."""
    argv = shlex.split(command)
    if _PYTHON.fullmatch(argv[0]):
        argv[0] = str(env.python)
    elif (env.bin / argv[0]).exists():
        argv[0] = str(env.bin / argv[0])
    console.step(f"test: evaluate-command: {command}  (in the same environment, against the installed release)")
    try:
        proc = box.run(argv, cwd=clone, env=child)
    except FileNotFoundError:
        return 127, f"command not found: {argv[0]}\n"
    return proc.returncode, proc.stdout


def read(path: Path, clone: Path) -> tuple[dict[str, Any] | None, str]:
    """(evaluation, problem): the checked record, None if the file was not written; the
    problem is one line naming the field, for the run's verdict."""
    if not path.is_file():
        return None, ""
    if path.stat().st_size > MAX_BYTES:
        return None, f"the file is larger than {MAX_BYTES // 1_000_000} MB: record a histogram instead of raw scores"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the file is not JSON ({exc})"
    try:
        evaluation = validate(data)
        kind = next((k for k in FILES if k in evaluation.get("inputs", {})), None)
        if kind:
            name = evaluation["inputs"][kind]
            read_file = profile.profile_parquet if kind == "parquet" else profile.profile_csv
            computed = read_file(profile.inside(clone, name, f"inputs.{kind}"), source=name)
            evaluation = validate({**evaluation, "inputs": computed})  # its column names are checked too
    except SchemaError as exc:
        return None, str(exc)
    return evaluation, ""


def of_run(command: str, box: Box, env: Env, child: Mapping[str, str], clone: Path, *,
           metrics_file: Path, message: str, output: str,
           against: tuple[Rules, Side] | None = None) -> tuple[dict[str, Any] | None, str, str]:
    """The run's evaluation record (quality/, docs/quality.md): evaluate-command in the same
    box and environment once the tests passed, then the file checked. A malformed file
    fails the run with one line naming the field. With `against` (rules, baseline), the
    response shift is measured here for the gate (quality/shift.py says why). Returns
    (record, message, output)."""
    if not message and command:
        erc, eout = evaluate(command, box, env, child, clone)
        output += eout
        message = f"evaluate-command exited {erc}" if erc else ""
    evaluation, bad = read(metrics_file, clone)
    if not message and bad:
        message = f"evaluation file ($CI_KIT_METRICS_FILE): {bad}"
    if evaluation is not None and against is not None and not message:
        try:
            evaluation = shift.measured(against[0], evaluation, against[1])
        except UsageError as exc:  # scipy is missing here: the gate says so at promote, where it is needed
            console.step(f"test: quality: shift not measured ({exc.message})")
    return evaluation, message, output
