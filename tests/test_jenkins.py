"""The Jenkins shared library (jenkins/): compiled by Jenkins' Groovy, linted by CodeNarc's
Jenkinsfile rules, and run end to end by a small pipeline harness (tests/jenkins/).

Tools: Debian's `groovy` (2.4.21, run on the JDK 17 under /usr/lib/jvm) and npm-groovy-lint 15
in .tools/node (scripts/setup-jenkins-tools installs both). Without them these tests skip,
except under CI_KIT_REQUIRE_ALL=1, where they fail.

Four layers:
  * static: every Groovy file compiles; lint; help pages and docs list every parameter; no
    `sh` string can interpolate Groovy values; one place binds each credential;
  * the harness with a stand-in ci-kit (tests/jenkins/fake-ci-kit): the wiring of each step
    and template (parameters, nodes, parallel, junit per branch, lock, credentials, retries,
    multibranch triggers and tags, the library in the sandbox), in seconds;
  * the harness's own strictness: constructs a controller rejects (steps outside a node, no
    agent, undeclared parameters, non-serialisable locals across steps, steps in closures CPS
    does not transform or in @NonCPS methods, calls outside script-security's allow-list) are
    rejected, and those it accepts (@NonCPS, each/collect closures) run;
  * the harness with the real ci-kit against a real devpi-server: both job templates end to
    end, passing and failing tests, and a multibranch job 1 on a tagged commit.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, clean_env, git, make_repo, make_user, require

JENKINS = ROOT / "jenkins"
HARNESS = ROOT / "tests" / "jenkins"
FAKE_CI_KIT = HARNESS / "fake-ci-kit"
SECRET = "s3cret-Jenkins-7Hq!x"  # the fast tests' credential; the e2e tests use fresh_user's
REGISTRY_SECRET = "r3gistry-T0ken-p9Z#w"  # the fast tests' registry credential (ciKitImage's registryCredentialsId)
STEPS = ["ciKitBuildAndPush", "ciKitTestAndPromote", "ciKitImage", "ciKitPipeline"]
GROOVY_FILES = sorted([*JENKINS.rglob("*.groovy"), *JENKINS.glob("Jenkinsfile*")])


# --------------------------------------------------------------------------- tools

def _jdk17() -> str | None:
    home = os.environ.get("JAVA_HOME", "")
    for cand in [home, *sorted(glob.glob("/usr/lib/jvm/java-17-openjdk-*")), "/usr/lib/jvm/openjdk-17"]:
        if cand and os.path.exists(os.path.join(cand, "bin", "java")):
            out = subprocess.run([os.path.join(cand, "bin", "java"), "-version"], capture_output=True, text=True)
            if re.search(r'version "17\.', out.stderr):
                return cand
    return None


@pytest.fixture(scope="session")
def java_env() -> dict[str, str]:
    jdk = _jdk17()
    require(jdk, "no JDK 17 under /usr/lib/jvm (scripts/setup-jenkins-tools)")
    return {**clean_env(), "JAVA_HOME": jdk}


@pytest.fixture(scope="session")
def groovy(java_env) -> str:
    exe = shutil.which("groovy")
    require(exe, "groovy is not installed (scripts/setup-jenkins-tools: apt-get install groovy)")
    out = subprocess.run([exe, "--version"], env=java_env, capture_output=True, text=True, timeout=120)
    require("Groovy Version: 2.4." in out.stdout, f"groovy is not Jenkins' 2.4 line: {out.stdout or out.stderr}")
    return exe


@pytest.fixture(scope="session")
def groovy_lint() -> str:
    exe = os.environ.get("NPM_GROOVY_LINT") or str(ROOT / ".tools/node/node_modules/.bin/npm-groovy-lint")
    if not os.path.exists(exe):
        exe = shutil.which("npm-groovy-lint") or ""
    require(exe and os.path.exists(exe), "npm-groovy-lint is not installed (scripts/setup-jenkins-tools)")
    version = json.loads(Path(exe).resolve().parents[1].joinpath("package.json").read_text())["version"]
    require(version.startswith("15."), f"npm-groovy-lint {version} is not version 15")
    return exe


# --------------------------------------------------------------------------- harness driver

class Build:
    """One harness run: the report of tests/jenkins/run.groovy plus helpers to read it."""

    def __init__(self, report: dict, workspace: Path, artifacts: Path):
        self.report, self.workspace, self.artifacts = report, workspace, artifacts
        self.result = report["result"]
        self.calls = report["calls"]

    def steps(self, name: str) -> list[dict]:
        return [c for c in self.calls if c["step"] == name]

    def sh(self, verb: str) -> list[dict]:
        """The `sh` calls that run `ci-kit VERB`."""
        return [c for c in self.steps("sh") if re.search(rf'" {re.escape(verb)}( |$)', c["script"])]

    def explain(self) -> str:
        return f"result {self.result}, error {self.report['error']}\n--- log ---\n{self.report['log']}"


def run_build(groovy_exe: str, env: dict[str, str], tmp: Path, name: str, *, jenkinsfile: Path | None = None,
              script: str | None = None, agent_env: dict[str, str], credentials: dict, scm: dict | None,
              params: dict | None = None, timeout: float = 900, job: str | None = None,
              branch: str | None = None, jobs: list[str] | None = None, trusted_library: bool = True,
              job_parameters: list[str] | None = None, library: Path = JENKINS, agent_failures: int = 0) -> Build:
    """One build of job `job` (full name; default `name`). branch: a multibranch project's branch job
    (BRANCH_NAME, the branch source's checkout); jobs: the jobs that exist, for `build`;
    trusted_library False: the library is a folder-level one, run in the sandbox; job_parameters:
    parameters the job defines in its configuration (a Jenkinsfile's own are always known)."""
    workspace, artifacts = tmp / f"{name}-ws", tmp / f"{name}-artifacts"
    config = {
        "library": str(library), "stubs": str(HARNESS / "stubs"), "workspace": str(workspace),
        "artifacts": str(artifacts), "report": str(tmp / f"{name}-report.json"), "jobName": job or name,
        "env": agent_env, "credentials": credentials, "scm": scm, "params": params or {},
        "branchName": branch, "jobs": jobs, "trustedLibrary": trusted_library,
        "jobParameters": job_parameters or [], "agentFailures": agent_failures,
    }
    if jenkinsfile is not None:
        config["jenkinsfile"] = str(jenkinsfile)
    else:
        config["script"] = script
    cfg = tmp / f"{name}-config.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.run([groovy_exe, "-cp", str(HARNESS), str(HARNESS / "run.groovy"), str(cfg)], env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"harness crashed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return Build(json.loads(Path(config["report"]).read_text()), workspace, artifacts)


def branch_of(call: dict) -> str | None:
    """The parallel branch a recorded call ran in."""
    return next((label for label in call["context"] if label.startswith("parallel:")), None)


def assert_no_secret_leak(build: Build, secret: str) -> None:
    """(3): the credential's value is never in the text of a `sh` step, nor (unmasked) in any output."""
    shs = build.steps("sh")
    assert shs, "no sh step ran"
    for call in shs:
        assert secret not in call["script"], call
        assert secret not in json.dumps(call["args"]), call
    assert not build.report["secretInShText"]
    assert not build.report["secretInOutput"], "a process printed the secret"
    assert secret not in build.report["log"]


def ci_kit_calls_are_credentialed(build: Build) -> None:
    """Every ci-kit call runs inside withCredentials, reads the secret from the environment only."""
    for call in build.steps("sh"):
        assert "withCredentials:ci-kit-devpi" in call["context"], call
        assert call["script"].startswith('"$CIKIT_BIN" '), call


# --------------------------------------------------------------------------- static checks

def test_every_groovy_file_compiles_with_jenkins_groovy(groovy, java_env, tmp_path):
    assert len(GROOVY_FILES) >= 7, GROOVY_FILES
    cmd = [groovy, "-cp", str(HARNESS), str(HARNESS / "compile.groovy"), str(JENKINS), str(HARNESS / "stubs")]
    proc = subprocess.run([*cmd, *map(str, GROOVY_FILES)], env=java_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(GROOVY_FILES)} compiled, 0 failed" in proc.stdout
    assert "Groovy 2.4." in proc.stdout

    broken = tmp_path / "broken.groovy"  # the check can fail
    broken.write_text("def call(Map args = [:]) {\n    sh('x'\n}\n")
    proc = subprocess.run([*cmd, str(broken)], env=java_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "FAILED" in proc.stdout, proc.stdout


def test_groovy_lint_reports_no_errors(groovy_lint, java_env, tmp_path):
    report = tmp_path / "lint.json"
    proc = subprocess.run(
        [groovy_lint, "--noserver", "--config", "recommended-jenkinsfile", "--failon", "error",
         "--output", str(report), *map(str, GROOVY_FILES)],
        env={**java_env, "PATH": f"{java_env['JAVA_HOME']}/bin:{java_env['PATH']}"},
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert report.exists(), proc.stdout + proc.stderr
    result = json.loads(report.read_text())
    linted = set(result["files"])
    assert {str(f) for f in GROOVY_FILES} <= linted | {os.path.relpath(f, ROOT) for f in linted}, linted
    errors = [(path, e) for path, f in result["files"].items() for e in f.get("errors", []) if e["severity"] == "error"]
    assert not errors, errors
    assert result["summary"]["totalFoundErrorNumber"] == 0, result["summary"]
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sh_strings_are_single_quoted_and_reference_no_secret():
    """No Groovy interpolation can reach a shell command: the commands are built from single-quoted
    literals only, and the password variable is named once, in the credential binding."""
    sources = {p: p.read_text() for p in GROOVY_FILES}
    for path, text in sources.items():
        for m in re.finditer(r"\bsh\s*\(", text):
            call = text[m.end():text.index(")\n", m.end())]
            script = re.search(r"script:\s*(.*)", call, flags=re.DOTALL)
            expr = script.group(1) if script else call
            assert '"' not in re.sub(r"'[^']*'", "", expr), f"{path}: sh with a double-quoted part: {call}"
        for m in re.finditer(r"(?:String \w+ = |\w+ \+= )(.*)", text):
            if "CIKIT_BIN" in m.group(1) or "--" in m.group(1):
                assert m.group(1).strip().startswith("'"), f"{path}: command built from a GString: {m.group(0)}"
        assert not re.search(r'\bsh\s*\(?\s*"', text), f"{path}: sh with a GString"
    for variable in ("CI_KIT_PASSWORD", "CI_KIT_REGISTRY_PASSWORD"):  # the index's, the registry's
        binding = [p for p, t in sources.items() if variable in t]
        assert binding == [JENKINS / "src/cikit/CiKit.groovy"], (variable, binding)
    text = sources[JENKINS / "src/cikit/CiKit.groovy"]
    assert text.count("'CI_KIT_PASSWORD'") == 1 and text.count("'CI_KIT_REGISTRY_PASSWORD'") == 1
    assert text.count("withCredentials([steps.usernamePassword(") == 1  # one binding helper for both
    flat = " ".join(text.split())
    assert "usernameVariable: userVariable, passwordVariable: passwordVariable" in flat
    assert "withUsernamePassword(steps, credentialsId, 'CI_KIT_USER', 'CI_KIT_PASSWORD', body)" in flat
    # least privilege: the index credential is chosen in two places only, tests and promotion
    assert "withIndexCredential(steps, cfg, cfg.credentialsId, extraEnv, body)" in flat
    assert "withIndexCredential(steps, cfg, promotionCredentialsId(cfg), extraEnv, body)" in flat
    assert "return cfg.promoteCredentialsId ?: cfg.credentialsId" in flat
    step = sources[JENKINS / "vars/ciKitTestAndPromote.groovy"]
    assert step.count("CiKit.withPromotion(") == 1 and "cfg.promoteCredentialsId" not in step
    assert step.index("CiKit.withPromotion(") > step.index("private Map promoteOnce(")  # the promotion only
    assert ("withUsernamePassword(steps, cfg.registryCredentialsId, 'CI_KIT_REGISTRY_USER', 'CI_KIT_REGISTRY_PASSWORD', body)"
            in flat)


@pytest.fixture(scope="session")
def parameters(groovy, java_env, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("params")
    cfg = tmp / "cfg.json"
    cfg.write_text(json.dumps({"mode": "parameters", "library": str(JENKINS), "stubs": str(HARNESS / "stubs"),
                               "workspace": str(tmp / "ws"), "report": str(tmp / "params.json")}))
    proc = subprocess.run([groovy, "-cp", str(HARNESS), str(HARNESS / "run.groovy"), str(cfg)], env=java_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tmp / "params.json").read_text())


def test_every_step_has_help_and_docs_for_every_parameter(parameters):
    params = parameters["parameters"]
    assert sorted(params) == sorted(STEPS)
    docs = (ROOT / "docs" / "jenkins.md").read_text()
    for step in STEPS:
        assert (JENKINS / "vars" / f"{step}.groovy").exists()
        help_page = (JENKINS / "vars" / f"{step}.txt").read_text()
        section = docs.split(f"### `{step}`", 1)[1].split("\n### ", 1)[0]
        for name, default in params[step].items():
            assert f"<code>{name}</code>" in help_page, f"{step}.txt does not document {name}"
            row = re.search(rf"^\| `{name}` \|(.*)$", section, flags=re.MULTILINE)
            assert row, f"docs/jenkins.md: no row for {step}'s {name}"
            shown = "null" if default is None else json.dumps(default).replace('"', "'")
            if isinstance(default, bool):
                shown = str(default).lower()
            assert f"`{shown}`" in row.group(1), f"docs/jenkins.md: {step}.{name}: default {shown} not in {row.group(0)}"
    for plugin in ["Pipeline", "Credentials Binding", "Lockable Resources", "JUnit"]:
        assert plugin in docs


# --------------------------------------------------------------------------- harness + stand-in ci-kit

@pytest.fixture
def fake(groovy, java_env, tmp_path):
    """A product repository, an agent whose `ci-kit` is the stand-in, the credential store."""
    repo = make_repo(tmp_path / "repo")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ci-kit").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CI_KIT}" "$@"\n')
    (bindir / "ci-kit").chmod(0o755)
    log = tmp_path / "fake-ci-kit.jsonl"
    agent_env = {**clean_env(), "PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_CI_KIT_LOG": str(log),
                 "FAKE_CI_KIT_EXPECT_PASSWORD": SECRET}

    def run(name, **kw):
        kw.setdefault("agent_env", agent_env)
        kw.setdefault("job_parameters", [])
        kw.setdefault("credentials", {"ci-kit-devpi": {"username": "alice", "password": SECRET}})
        kw.setdefault("scm", {"url": str(repo), "branch": "*/main"})
        return run_build(groovy, java_env, tmp_path, name, **kw)

    def invocations():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    run.repo, run.agent_env, run.invocations = repo, agent_env, invocations
    return run


def test_job1_template_builds_records_and_triggers_job2(fake):
    assert "@Library('ci-kit') _" in (JENKINS / "Jenkinsfile.build-and-push").read_text()
    b = fake("build-and-push", jenkinsfile=JENKINS / "Jenkinsfile.build-and-push", job="team/build-and-push",
             jobs=["team/build-and-push", "team/test-and-promote"])
    assert b.result == "SUCCESS", b.explain()
    commit = git("rev-parse", "HEAD", cwd=fake.repo)
    [checkout] = b.steps("checkout")
    assert checkout["commit"] == commit and checkout["tags"] is True
    assert {"$class": "CloneOption", "noTags": False, "shallow": False, "depth": 0, "reference": "",
            "honorRefspec": False} in checkout["args"][0]["extensions"]
    [push] = b.sh("build-and-push")
    assert push["node"] == "(any)"  # agent any
    assert push["script"] == '"$CIKIT_BIN" build-and-push --output "$CIKIT_OUTPUT"'
    assert push["context"] == ["stage:Build and push", "withCredentials:ci-kit-devpi"]
    [trigger] = b.steps("build")
    assert trigger["job"] == "test-and-promote" and trigger["wait"] is False
    assert trigger["resolvedJob"] == "team/test-and-promote"  # next to job 1
    assert trigger["parameters"] == {"REQUIREMENT": "churn-model==0.1.dev1", "COMMIT": commit, "INDEX_URL": "",
                                     "UNSTABLE_INDEX": "alice/unstable"}
    assert b.report["description"] == f"churn-model==0.1.dev1 @ {commit}"
    assert "ci-kit-build-and-push.txt" in b.report["artifacts"]
    assert "requirement=churn-model==0.1.dev1" in (b.artifacts / "ci-kit-build-and-push.txt").read_text()
    [inv] = fake.invocations()
    assert inv["password_ok"] and inv["user"] == "alice" and SECRET not in json.dumps(inv["argv"])
    assert_no_secret_leak(b, SECRET)


def job2_params(fake) -> dict:
    return {"REQUIREMENT": "churn-model==0.1.dev1", "COMMIT": git("rev-parse", "HEAD", cwd=fake.repo),
            "INDEX_URL": "http://127.0.0.1:9", "UNSTABLE_INDEX": "alice/unstable"}


def test_job2_template_tests_in_parallel_and_promotes_inside_the_lock(fake):
    """Each Python is a parallel branch on a node of its own (its own workspace and checkout), with
    its own `junit` whose suites name the Python and the file kind; the promotion runs after, on a
    node, inside the lock, and only it may hold the promotion credential."""
    assert "@Library('ci-kit') _" in (JENKINS / "Jenkinsfile.test-and-promote").read_text()
    b = fake("test-and-promote", jenkinsfile=JENKINS / "Jenkinsfile.test-and-promote", params=job2_params(fake))
    assert b.result == "SUCCESS", b.explain()
    commit = job2_params(fake)["COMMIT"]
    assert not b.report["droppedParams"]
    checkouts = b.steps("checkout")  # one per branch, one for the promotion (its [tool.ci-kit])
    assert len(checkouts) == 3 and all(c["commit"] == commit and c["branch"] == commit for c in checkouts)
    assert len({c["workspace"] for c in checkouts if c["context"][-1].startswith("parallel:")}) == 2
    [par] = b.steps("parallel")
    assert par["args"] == [["Python 3.11", "Python 3.12"]]
    assert par["node"] is None  # agent none: no executor waits during the tests
    tests = b.sh("test")
    assert sorted(branch_of(c) for c in tests) == ["parallel:Python 3.11", "parallel:Python 3.12"]
    assert all(c["status"] == 0 and c["node"] == "(any)" for c in tests)
    assert all(c["context"][-1] == "withCredentials:ci-kit-devpi" for c in tests)
    junits = sorted(b.steps("junit"), key=lambda j: j["files"])
    kinds = {"3.11": ("sdist", "wheel"), "3.12": ("wheel",)}  # --only-python: the sdist once, in the first branch
    assert [j["files"] for j in junits] == [
        [f"ci-kit-results/py{py}/junit-py{py}-{kind}.xml" for kind in kinds[py]] for py in ("3.11", "3.12")]
    for junit, py in zip(junits, ("3.11", "3.12"), strict=False):
        assert f"parallel:Python {py}" in junit["context"]
        assert junit["totalCount"] == 2 * len(kinds[py]) and junit["failCount"] == 0
        # ci-kit's files as they are: their suites (named by ci-kit) say which run they are
        assert sorted(junit["suites"]) == [f"churn-model Python {py} {kind}" for kind in kinds[py]]
    [promote] = b.sh("promote")
    assert promote["context"][-2:] == ["lock:ci-kit-promote-churn-model", "withCredentials:ci-kit-devpi"], promote
    assert promote["node"] == "(any)"
    # order: each branch's test, then its junit; all of them, then lock, promote, lock released
    for junit in junits:
        assert next(c["n"] for c in tests if branch_of(c) == branch_of(junit)) < junit["n"]
    order = [max(c["n"] for c in (*tests, *junits)), *(c["n"] for c in (*b.steps("lock"), promote,
                                                                          *b.steps("lock-released")))]
    assert order == sorted(order)
    assert b.report["description"] == "churn-model==0.1.dev1 -> alice/testing"
    # after the promotion, in the lock but without the promotion credential: the report, archived
    [report] = b.sh("report")
    assert report["n"] > promote["n"] and report["status"] == 0 and report["node"] == "(any)"
    assert report["context"][-2:] == ["lock:ci-kit-promote-churn-model", "withCredentials:ci-kit-devpi"], report
    archived = [a for a in b.steps("archiveArtifacts") if "report-" in json.dumps(a["args"])]
    assert len(archived) == 1 and archived[0]["n"] > report["n"]
    assert "ci-kit report: churn-model" in (b.artifacts / "report-churn-model.html").read_text()
    assert [p["args"] for p in b.steps("post")] == [["success"]]
    invs = fake.invocations()
    assert [i["argv"][0] for i in invs].count("test") == 2
    [report_inv] = [i for i in invs if i["argv"][0] == "report"]
    assert report_inv["argv"] == ["report", "churn-model", "--html", "report-churn-model.html"]
    test_inv = [i for i in invs if i["argv"][0] == "test"]
    assert sorted(i["argv"][i["argv"].index("--only-python") + 1] for i in test_inv) == ["3.11", "3.12"]
    assert all(i["password_ok"] and "CI_KIT_INDEX_URL" in i["ci_kit_env"] for i in invs)
    assert all(i["argv"][i["argv"].index("--commit") + 1] == commit for i in test_inv)
    assert_no_secret_leak(b, SECRET)
    ci_kit_calls_are_credentialed(b)


def test_job2_promotion_credential_is_bound_only_around_promote(fake):
    """promoteCredentialsId: the test branches (which run the product's code) bind only credentialsId;
    the promotion credential exists only in the promotion's withCredentials."""
    promote_secret = "pr0mote-Only-5kd!"
    fake.agent_env["FAKE_CI_KIT_EXPECT_PROMOTE_PASSWORD"] = promote_secret
    credentials = {"ci-kit-devpi": {"username": "alice", "password": SECRET},
                   "ci-kit-promote": {"username": "promoter", "password": promote_secret}}
    script = ("@Library('ci-kit') _\n"
              "ciKitTestAndPromote(pythonVersions: ['3.11', '3.12'], promoteCredentialsId: 'ci-kit-promote',"
              " agentLabel: 'linux && python', retries: 1)\n")
    b = fake("least-privilege", script=script, params=job2_params(fake), credentials=credentials,
             job_parameters=["REQUIREMENT", "COMMIT", "INDEX_URL", "UNSTABLE_INDEX"])
    assert b.result == "SUCCESS", b.explain()
    for call in b.sh("test"):
        assert "withCredentials:ci-kit-devpi" in call["context"] and "withCredentials:ci-kit-promote" not in call["context"]
        assert call["node"] == "linux && python"
    [promote] = b.sh("promote")
    assert "withCredentials:ci-kit-promote" in promote["context"]
    assert "withCredentials:ci-kit-devpi" not in promote["context"]
    assert [r["count"] for r in b.steps("retry")] == [2, 2, 2]  # two branches and the promotion
    bindings = [w for w in b.steps("withCredentials") if "ci-kit-promote" in json.dumps(w["args"])]
    assert len(bindings) == 1 and "lock:ci-kit-promote-churn-model" in bindings[0]["context"]
    invs = fake.invocations()
    assert {i["user"] for i in invs if i["argv"][0] == "test"} == {"alice"}
    assert [i["user"] for i in invs if i["argv"][0] == "promote"] == ["promoter"]
    assert all(i["password_ok"] for i in invs)
    for secret in (SECRET, promote_secret):
        assert_no_secret_leak(b, secret)


@pytest.mark.parametrize("retries, result", [(1, "SUCCESS"), (0, "FAILURE")])
def test_job2_retries_a_branch_whose_agent_is_lost(fake, retries, result):
    """retries: a test branch whose node fails (a lost agent) runs again, on a fresh node, and the
    release is promoted; without retries the build fails and nothing is promoted."""
    script = ("@Library('ci-kit') _\n"
              f"ciKitTestAndPromote(pythonVersions: ['3.11', '3.12'], retries: {retries})\n")
    b = fake(f"retry-{retries}", script=script, params=job2_params(fake), agent_failures=1,
             job_parameters=["REQUIREMENT", "COMMIT", "INDEX_URL", "UNSTABLE_INDEX"])
    assert b.result == result, b.explain()
    assert "the agent went offline" in b.report["log"]
    if retries:
        assert len(b.steps("retrying")) == 1 and len(b.sh("test")) == 2 and b.sh("promote")
    else:
        assert not b.steps("retrying") and not b.sh("promote")
        assert "the agent went offline" in b.report["error"]["message"]


def test_job2_template_with_a_failing_python_fails_and_never_promotes(fake):
    fake.agent_env["FAKE_CI_KIT_FAIL_PYTHON"] = "3.12"
    b = fake("test-and-promote", jenkinsfile=JENKINS / "Jenkinsfile.test-and-promote", params=job2_params(fake))
    assert b.result == "FAILURE", b.explain()
    junits = {branch_of(j): j for j in b.steps("junit")}
    assert junits["parallel:Python 3.12"]["failCount"] == 1 and junits["parallel:Python 3.12"]["totalCount"] == 2  # the wheel
    assert junits["parallel:Python 3.11"]["failCount"] == 0
    assert {c["outcome"] for c in junits["parallel:Python 3.12"]["cases"]} == {"passed", "failed"}
    assert not b.sh("promote") and not b.steps("lock")
    assert "ci-kit test failed (Python 3.12: exit 9)" in b.report["error"]["message"]
    assert [p["args"] for p in b.steps("post")] == [["failure"]]
    assert "promote" not in [i["argv"][0] for i in fake.invocations()]
    assert_no_secret_leak(b, SECRET)


def test_missing_credential_fails_before_ci_kit_runs(fake):
    b = fake("build-and-push", jenkinsfile=JENKINS / "Jenkinsfile.build-and-push", credentials={})
    assert b.result == "FAILURE"
    assert "Could not find credentials entry with ID 'ci-kit-devpi'" in b.report["error"]["message"]
    assert not b.steps("sh") and not fake.invocations()


def test_unknown_step_parameter_is_an_error_naming_it(fake):
    b = fake("typo", script="@Library('ci-kit') _\nciKitBuildAndPush(credentialId: 'x')\n")
    assert b.result == "FAILURE"
    assert "unknown parameter(s) [credentialId]" in b.report["error"]["message"]
    assert "credentialsId" in b.report["error"]["message"]
    assert not b.steps("sh")


def test_ci_kit_pipeline_runs_both_jobs_and_the_image_in_one_build(fake):
    script = ("@Library('ci-kit') _\n"
              "ciKitPipeline(pythonVersions: ['3.11'], testCommand: 'pytest -q', image: true,"
              " imagePush: '127.0.0.1:5000/churn-model', stableIndex: 'alice/stable')\n")
    b = fake("pipeline", script=script)
    assert b.result == "SUCCESS", b.explain()
    assert [(s["args"][0], s["status"]) for s in b.steps("stage")] == [
        ("Build and push", "run"), ("Test and promote", "run"), ("Image", "run")]
    # build, the one test branch, the promotion and the image each check out on their own node;
    # all but the first (the job's scm, with tags) ask for the very commit that was built
    checkouts = b.steps("checkout")
    assert len(checkouts) == 4 and not b.steps("build")
    commit = git("rev-parse", "HEAD", cwd=fake.repo)
    assert all(c["commit"] == commit for c in checkouts)
    assert [c["branch"] == commit for c in checkouts] == [False, True, True, True], checkouts
    assert [c["context"][0] for c in checkouts] == ["stage:Build and push", "stage:Test and promote",
                                                    "stage:Test and promote", "stage:Image"]
    assert all(c["node"] == "(any)" for c in b.steps("sh"))
    [image] = b.sh("image")
    assert image["script"] == '"$CIKIT_BIN" image "$CIKIT_REQUIREMENT" --push "$CIKIT_IMAGE_PUSH" --output "$CIKIT_OUTPUT"'
    invs = {i["argv"][0]: i for i in fake.invocations()}
    assert invs["image"]["argv"][:4] == ["image", "churn-model==0.1.dev1", "--push", "127.0.0.1:5000/churn-model"]
    assert "CI_KIT_TEST_COMMAND" in invs["test"]["ci_kit_env"] and "CI_KIT_STABLE_INDEX" in invs["test"]["ci_kit_env"]
    assert_no_secret_leak(b, SECRET)
    ci_kit_calls_are_credentialed(b)


def test_ci_kit_image_binds_the_registry_credential_only_when_asked(fake):
    """registryCredentialsId: the "Username with password" credential reaches ci-kit as
    CI_KIT_REGISTRY_USER / CI_KIT_REGISTRY_PASSWORD in its environment only (no `sh` text, no
    argument holds it); without it neither variable is set, even with the credential in the store."""
    fake.agent_env["FAKE_CI_KIT_EXPECT_REGISTRY_PASSWORD"] = REGISTRY_SECRET
    credentials = {"ci-kit-devpi": {"username": "alice", "password": SECRET},
                   "ci-kit-registry": {"username": "robot-push", "password": REGISTRY_SECRET}}
    call = ("@Library('ci-kit') _\n"
            "node { ciKitImage(requirement: 'churn-model==0.1.dev1', push: '127.0.0.1:5000/churn-model'%s) }\n")
    image_sh = '"$CIKIT_BIN" image "$CIKIT_REQUIREMENT" --push "$CIKIT_IMAGE_PUSH" --output "$CIKIT_OUTPUT"'

    b = fake("image-login", script=call % ", registryCredentialsId: 'ci-kit-registry'", credentials=credentials)
    assert b.result == "SUCCESS", b.explain()
    [image] = b.sh("image")
    assert image["script"] == image_sh
    assert image["context"] == ["withCredentials:ci-kit-devpi", "withCredentials:ci-kit-registry"]
    [binding] = [w for w in b.steps("withCredentials") if "ci-kit-registry" in json.dumps(w["args"])]
    assert binding["args"][0] == [{"__step": "usernamePassword", "credentialsId": "ci-kit-registry",
                                   "usernameVariable": "CI_KIT_REGISTRY_USER",
                                   "passwordVariable": "CI_KIT_REGISTRY_PASSWORD"}]
    [inv] = fake.invocations()
    assert inv["argv"][0] == "image"
    assert {"CI_KIT_REGISTRY_USER", "CI_KIT_REGISTRY_PASSWORD"} <= set(inv["ci_kit_env"])
    assert inv["registry_user"] == "robot-push" and inv["registry_password_ok"], inv
    assert inv["password_ok"] and inv["user"] == "alice"
    assert REGISTRY_SECRET not in json.dumps(inv["argv"])
    assert b.report["returned"] == {"image": "127.0.0.1:5000/churn-model@sha256:" + "1" * 64}
    for secret in (REGISTRY_SECRET, SECRET):
        assert_no_secret_leak(b, secret)
    ci_kit_calls_are_credentialed(b)

    b = fake("image-agent-login", script=call % "", credentials=credentials)
    assert b.result == "SUCCESS", b.explain()
    [image] = b.sh("image")
    assert image["script"] == image_sh and image["context"] == ["withCredentials:ci-kit-devpi"]
    [_, inv] = fake.invocations()
    assert not {"CI_KIT_REGISTRY_USER", "CI_KIT_REGISTRY_PASSWORD"} & set(inv["ci_kit_env"]), inv
    assert inv["registry_user"] is None and not inv["registry_password_ok"]
    for secret in (REGISTRY_SECRET, SECRET):
        assert_no_secret_leak(b, secret)

    b = fake("image-no-such-credential", script=call % ", registryCredentialsId: 'nope'", credentials=credentials)
    assert b.result == "FAILURE"
    assert "Could not find credentials entry with ID 'nope'" in b.report["error"]["message"]
    assert not b.steps("sh") and len(fake.invocations()) == 2


def test_ci_kit_pipeline_job_selects_stages(fake):
    b = fake("pipeline-job1", script="@Library('ci-kit') _\nciKitPipeline(job: 'build-and-push', triggerJob: 'j2')\n")
    assert b.result == "SUCCESS", b.explain()
    assert [(s["args"][0], s["status"]) for s in b.steps("stage")] == [
        ("Build and push", "run"), ("Test and promote", "skipped"), ("Image", "skipped")]
    assert b.steps("build")[0]["job"] == "j2"
    b = fake("pipeline-bad", script="@Library('ci-kit') _\nciKitPipeline(job: 'deploy')\n")
    assert b.result == "FAILURE" and "job: 'deploy' is not one of" in b.report["error"]["message"]


@pytest.mark.parametrize("credential, secret", [("ci-kit-devpi", SECRET), ("ci-kit-registry", REGISTRY_SECRET)],
                         ids=["index", "registry"])
def test_harness_catches_an_interpolated_secret(fake, credential, secret):
    """The check of (3) is not vacuous: a Groovy-interpolated secret in `sh` is caught, the
    index's as well as the registry's."""
    script = (f"node {{ withCredentials([usernamePassword(credentialsId: '{credential}', usernameVariable: 'U',"
              " passwordVariable: 'P')]) {\n    sh \"echo ${env.P} > /dev/null\"\n} }\n")
    credentials = {"ci-kit-devpi": {"username": "alice", "password": SECRET},
                   "ci-kit-registry": {"username": "robot-push", "password": REGISTRY_SECRET}}
    b = fake("leak", script=script, credentials=credentials)
    assert b.result == "SUCCESS", b.explain()
    assert b.report["secretInShText"] and b.steps("sh")[0]["secretInText"]
    assert secret not in b.report["log"]  # masked, as Jenkins does


def test_harness_lock_excludes_and_parallel_runs_sh_concurrently(fake):
    """What the lock assertions rely on: lock() really excludes, parallel() really overlaps."""
    script = """
parallel(
    a: { node { lock('r') { sh 'echo a-in; sleep 1; echo a-out' } } },
    b: { node { lock('r') { sh 'echo b-in; sleep 1; echo b-out' } } },
    c: { node { sh 'sleep 1; echo c-done' } },
)
"""
    b = fake("locks", script=script)
    assert b.result == "SUCCESS", b.explain()
    lines = [line.split("] ", 1)[1] for line in b.report["log"].splitlines()
             if re.match(r"\[[abc]\] [abc]-(in|out|done)$", line)]
    ins = [line for line in lines if line.endswith(("-in", "-out"))]
    assert ins in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"]), lines
    assert lines.index("c-done") < len(lines) - 1, "the unlocked branch did not overlap the locked ones"


# --------------------------------------------------------------------------- end to end: real ci-kit, real devpi

@pytest.fixture
def agent(groovy, java_env, fresh_user, cikit, tmp_path):
    """A Jenkins agent's view: the real ci-kit on PATH, the index URL and index names in the
    environment, and the user's password only in the credential store (never in the env)."""
    require(all(shutil.which(f"python{v}") or glob.glob(os.path.expanduser(f"~/.pyenv/versions/{v}.*/bin/python{v}"))
                for v in ("3.11", "3.12")), "the job 2 template tests on Python 3.11 and 3.12")
    agent_env = {**clean_env(), **fresh_user.env, "PATH": f"{Path(cikit).parent}:{os.environ['PATH']}"}
    for var in ("CI_KIT_USER", "CI_KIT_PASSWORD", "CI_KIT_PASSWORD_FILE"):
        agent_env.pop(var, None)
    credentials = {"ci-kit-devpi": {"username": fresh_user.user, "password": fresh_user.password}}

    def run(name, repo, **kw):
        return run_build(groovy, java_env, tmp_path, name, agent_env=agent_env, credentials=credentials,
                         scm={"url": str(repo), "branch": "*/main"}, **kw)

    return run


def run_both_jobs(agent, repo):
    b1 = agent("build-and-push", repo, jenkinsfile=JENKINS / "Jenkinsfile.build-and-push")
    assert b1.result == "SUCCESS", b1.explain()
    [trigger] = b1.steps("build")
    b2 = agent("test-and-promote", repo, jenkinsfile=JENKINS / "Jenkinsfile.test-and-promote",
               params=trigger["parameters"])
    return b1, trigger["parameters"], b2


@pytest.mark.slow
def test_e2e_passing_tests_are_promoted(agent, fresh_user, product_repo):
    b1, params, b2 = run_both_jobs(agent, product_repo)
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    assert params["COMMIT"] == commit and params["REQUIREMENT"].startswith("churn-model==")
    assert params["UNSTABLE_INDEX"] == f"{fresh_user.user}/unstable"
    assert b2.result == "SUCCESS", b2.explain()

    junits = sorted(b2.steps("junit"), key=lambda j: j["files"])  # one per branch, each on its node
    assert [j["files"] for j in junits] == [[f"ci-kit-results/py3.11/junit-py3.11-{kind}.xml" for kind in ("sdist", "wheel")],
                                            ["ci-kit-results/py3.12/junit-py3.12-wheel.xml"]]  # the sdist once
    for junit, py in zip(junits, ("3.11", "3.12"), strict=False):
        assert branch_of(junit) == f"parallel:Python {py}"
        assert junit["totalCount"] > 0 and junit["failCount"] == 0
        kinds = ("sdist", "wheel") if py == "3.11" else ("wheel",)
        # the real ci-kit names each run's suite: the reports tell the Python and the file kind apart
        assert sorted(junit["suites"]) == [f"churn-model Python {py} {k}" for k in kinds], junit["suites"]
        for f in junit["files"]:  # ci-kit's own XML, archived (the promotion's clean checkout may reuse the workspace)
            assert (b2.artifacts / f).read_text().lstrip().startswith("<?xml")

    [promote] = b2.sh("promote")
    assert promote["status"] == 0
    assert promote["context"][-2:] == [f"lock:ci-kit-promote-{params['REQUIREMENT'].split('==')[0]}",
                                       "withCredentials:ci-kit-devpi"]
    returned = b2.report["description"]
    assert returned == f"{params['REQUIREMENT']} -> {fresh_user.user}/testing", returned

    assert "changed=true" in (b2.artifacts / "ci-kit-promote.txt").read_text()
    # the real `ci-kit report` after the promotion, its page archived
    [report] = b2.sh("report")
    assert report["status"] == 0 and report["n"] > promote["n"]
    page = (b2.artifacts / "report-churn-model.html").read_text()
    assert "churn-model: model quality per version" in page and params["REQUIREMENT"].split("==")[1] in page

    idx = fresh_user.index()
    version = params["REQUIREMENT"].split("==")[1]
    testing = idx.release(f"{fresh_user.user}/testing", "churn-model", version)
    unstable = idx.release(f"{fresh_user.user}/unstable", "churn-model", version)
    assert {f.sha256 for f in testing.files} == {f.sha256 for f in unstable.files}

    # "Rebuild" of job 2 with the same parameters: a success that changes nothing
    again = agent("test-and-promote-again", product_repo, jenkinsfile=JENKINS / "Jenkinsfile.test-and-promote",
                  params=params)
    assert again.result == "SUCCESS", again.explain()
    assert "changed=false" in (again.artifacts / "ci-kit-promote.txt").read_text()
    for b in (b1, b2, again):
        assert_no_secret_leak(b, fresh_user.password)
        ci_kit_calls_are_credentialed(b)


@pytest.mark.slow
def test_e2e_failing_tests_are_not_promoted(agent, fresh_user, tmp_path):
    repo = make_repo(tmp_path / "failing")
    tests = sorted((repo / "tests").glob("test_*.py"))
    assert tests, "the example has no tests"
    with tests[0].open("a") as f:
        f.write("\n\ndef test_ci_kit_jenkins_deliberate_failure():\n    assert 1 == 2\n")
    git("commit", "-qam", "a failing test", cwd=repo)

    b1, params, b2 = run_both_jobs(agent, repo)
    assert b2.result == "FAILURE", b2.explain()
    junits = b2.steps("junit")
    assert len(junits) == 2 and all(j["failCount"] > 0 for j in junits)
    assert all(any(c["outcome"] == "failed" for c in j["cases"]) for j in junits)
    # the real pytest outcome is in the XML Jenkins read (as a test case or in a failure's text)
    assert any("test_ci_kit_jenkins_deliberate_failure" in (b2.artifacts / f).read_text()
               for j in junits for f in j["files"])
    assert all(c["status"] != 0 for c in b2.sh("test"))
    assert not b2.sh("promote") and not b2.steps("lock")
    assert "is not promoted" in b2.report["error"]["message"]

    idx = fresh_user.index()
    version = params["REQUIREMENT"].split("==")[1]
    assert idx.release(f"{fresh_user.user}/testing", "churn-model", version) is None
    assert idx.release(f"{fresh_user.user}/stable", "churn-model", version) is None
    for b in (b1, b2):
        assert_no_secret_leak(b, fresh_user.password)


@pytest.mark.slow
def test_e2e_multibranch_tagged_commit_builds_its_final_version_and_is_promoted_to_stable(agent, fresh_user,
                                                                                          product_repo):
    """Job 1 as the `main` branch job of a multibranch project, on a commit tagged v1.0.0: its checkout
    fetches the tag (a multibranch source would not), so setuptools_scm builds 1.0.0, not a dev
    version; job 1 starts job 2 next to the multibranch project; job 2 promotes 1.0.0 to stable."""
    git("tag", "v1.0.0", cwd=product_repo)
    jobs = ["churn-model/build", "churn-model/build/main", "churn-model/test-and-promote"]
    b1 = agent("mb-build-and-push", product_repo, jenkinsfile=JENKINS / "Jenkinsfile.build-and-push",
               job="churn-model/build/main", branch="main", jobs=jobs)
    assert b1.result == "SUCCESS", b1.explain()
    [checkout] = b1.steps("checkout")
    assert checkout["tags"] is True and checkout["refspec"] == "+refs/heads/main:refs/remotes/origin/main"
    [trigger] = b1.steps("build")
    assert trigger["resolvedJob"] == "churn-model/test-and-promote"
    params = trigger["parameters"]
    assert params["REQUIREMENT"] == "churn-model==1.0.0", params
    b2 = agent("mb-test-and-promote", product_repo, jenkinsfile=JENKINS / "Jenkinsfile.test-and-promote",
               job="churn-model/test-and-promote", params=params)
    assert b2.result == "SUCCESS", b2.explain()
    assert b2.report["description"] == f"churn-model==1.0.0 -> {fresh_user.user}/stable"
    idx = fresh_user.index()
    stable = idx.release(f"{fresh_user.user}/stable", "churn-model", "1.0.0")
    unstable = idx.release(f"{fresh_user.user}/unstable", "churn-model", "1.0.0")
    assert stable is not None and {f.sha256 for f in stable.files} == {f.sha256 for f in unstable.files}
    for b in (b1, b2):
        assert_no_secret_leak(b, fresh_user.password)
        ci_kit_calls_are_credentialed(b)


def test_promotion_lock_is_named_after_the_normalised_project(groovy, java_env):
    """Two spellings of one project (one typed by hand) must serialise on one lock."""
    script = ("['Churn_Model==1.0', 'churn-model==1.0+g1', ' churn..model ==2', 'CHURN-MODEL==3'].each { "
              "println(cikit.CiKit.projectName(it)) }")
    proc = subprocess.run([groovy, "-cp", str(JENKINS / "src"), "-e", script], env=java_env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["churn-model"] * 4


# --------------------------------------------------------------------------- the harness is as strict as Jenkins

STRICT = [
    # (id, script, accepted?, what the error says)
    ("sh-outside-node", "sh 'true'\n", False, "Required context class hudson.FilePath is missing"),
    ("junit-outside-node", "junit(testResults: 'x.xml', allowEmptyResults: true)\n", False,
     "surround the junit step"),
    ("archive-outside-node", "archiveArtifacts(artifacts: 'x', allowEmptyArchive: true)\n", False,
     "surround the archiveArtifacts step"),
    ("dir-outside-node", "dir('x') { echo 'in x' }\n", False, "surround the dir step"),
    ("checkout-outside-node", "checkout(scm)\n", False, "surround the checkout step"),
    ("sh-in-node", "node { sh 'true' }\n", True, None),
    ("declarative-without-agent",
     "pipeline {\n  stages { stage('s') { steps { echo 'x' } } }\n}\n", False, 'Missing required section "agent"'),
    ("declarative-agent-none-sh",
     "pipeline {\n  agent none\n  stages { stage('s') { steps { sh 'true' } } }\n}\n", False,
     "Required context class hudson.FilePath is missing"),
    ("declarative-stage-agent",
     "pipeline {\n  agent none\n  stages { stage('s') { agent { label 'linux' }\n steps { sh 'true' } } }\n}\n", True, None),
    ("matcher-across-step",
     "node {\n  def m = ('v1.2.3' =~ /v(\\d+)/)\n  m.find()\n  sh 'true'\n}\n", False,
     "java.io.NotSerializableException: java.util.regex.Matcher"),
    ("matcher-in-closure-across-step",
     "node {\n  def m = ('v1.2.3' =~ /v(\\d+)/)\n  dir('x') { sh 'true' }\n}\n", False,
     "NotSerializableException: java.util.regex.Matcher"),
    ("matcher-in-noncps-method",
     ("@NonCPS\nString major(String v) {\n  def m = (v =~ /v(\\d+)/)\n  return m.find() ? m.group(1) : null\n}\n"
      "node {\n  String major = major('v1.2.3')\n  sh \"test ${major} = 1\"\n}\n"), True, None),
    ("step-in-noncps-method",
     "@NonCPS\nvoid hello() {\n  echo 'hello'\n}\nnode { hello() }\n", False, "called from @NonCPS method"),
    ("step-in-sort-closure",
     "node {\n  ['b', 'a'].sort { x, y -> sh 'true'; x <=> y }\n}\n", False,
     "inside a closure called by org.codehaus.groovy.runtime.DefaultGroovyMethods.sort"),
    ("step-in-toSorted-closure",
     "node {\n  ['b', 'a'].toSorted { x, y -> echo(x); x <=> y }\n}\n", False, "wound up catching echo"),
    ("step-in-java-comparator",
     "node {\n  List l = ['b', 'a']\n  Collections.sort(l, { x, y -> echo(x); x <=> y })\n}\n", False,
     "inside a closure called by java.util.Collections.sort"),
    ("java-forEach", "node {\n  ['a'].forEach { echo(it) }\n}\n", False, "forEach"),
    ("step-in-each-closure", "node {\n  ['a', 'b'].each { sh \"echo ${it}\" }\n}\n", True, None),
    ("step-in-collect-closure-on-map", "node {\n  [a: 1].collect { k, v -> echo(k) }\n}\n", True, None),
    ("new-file", "node {\n  def f = new File('x.txt')\n  echo(f.path)\n}\n", False,
     "Scripts not permitted to use new java.io.File java.lang.String"),
    ("new-linkedhashmap-of-map", "Map m = new LinkedHashMap([a: 1])\necho(m.toString())\n", False,
     "Scripts not permitted to use new java.util.LinkedHashMap java.util.Map"),
    ("allowed-methods",
     ("Map m = new HashMap([a: 1])\nm.put('b', 2)\nList l = new ArrayList(m.keySet())\n"
      "echo(l.sort().join(',') + ' ' + 'A_b'.toLowerCase().replaceAll('_', '-'))\n"), True, None),
    ("static-not-allowed", "echo(System.getenv('HOME'))\n", False,
     "Scripts not permitted to use staticMethod java.lang.System getenv java.lang.String"),
]


@pytest.mark.parametrize("script, accepted, message", [s[1:] for s in STRICT], ids=[s[0] for s in STRICT])
def test_harness_accepts_and_rejects_what_jenkins_does(fake, script, accepted, message):
    """Each construct is run in the harness and accepted or rejected as a controller would: steps that
    need a workspace outside a node, Declarative without agent, a non-serializable local in scope
    when a step runs, steps in closures CPS does not transform or in @NonCPS methods, methods outside
    script-security's default allow-list (a Jenkinsfile always runs sandboxed), and @NonCPS itself."""
    b = fake("strict", script=script)
    if accepted:
        assert b.result == "SUCCESS", b.explain()
    else:
        assert b.result == "FAILURE", b.explain()
        assert message in b.report["error"]["message"], b.report["error"]["message"]


def test_readme_job2_one_liner_declares_its_parameters_and_runs(fake):
    """The README's one-line Jenkinsfile for job 2 runs as is: it declares the parameters job 1 passes
    and takes its nodes itself. The one-liner it replaced (ciKitTestAndPromote alone) loses them."""
    readme = (ROOT / "README.md").read_text()
    [snippet] = re.findall(r"```groovy\n(@Library\('ci-kit'\) _\nciKitPipeline\(job: 'test-and-promote'.*?)```",
                           readme, flags=re.DOTALL)
    b = fake("readme-job2", script=snippet, params=job2_params(fake))
    assert b.result == "SUCCESS", b.explain()
    assert not b.report["droppedParams"] and len(b.sh("test")) == 2 and b.sh("promote")

    old = "@Library('ci-kit') _\nciKitTestAndPromote(credentialsId: 'ci-kit-devpi', pythonVersions: ['3.11', '3.12'])\n"
    b = fake("old-one-liner", script=old, params=job2_params(fake))
    assert b.result == "FAILURE" and "no requirement" in b.report["error"]["message"]
    assert sorted(b.report["droppedParams"]) == ["COMMIT", "INDEX_URL", "REQUIREMENT", "UNSTABLE_INDEX"]


@pytest.mark.parametrize("template", ["Jenkinsfile.build-and-push", "Jenkinsfile.test-and-promote"])
def test_templates_run_with_the_library_in_the_sandbox(fake, template):
    """As a folder-level (untrusted) library, the steps run inside the script sandbox: every call they
    make is on script-security's default allow-list (no `new LinkedHashMap(Map)`)."""
    b = fake(f"untrusted-{template}", jenkinsfile=JENKINS / template, trusted_library=False,
             params=job2_params(fake) if "test" in template else None)
    assert b.result == "SUCCESS", b.explain()
    b = fake("untrusted-pipeline", trusted_library=False,
             script="@Library('ci-kit') _\nciKitPipeline(pythonVersions: ['3.11'], image: true)\n")
    assert b.result == "SUCCESS", b.explain()


def test_harness_sandbox_applies_to_an_untrusted_library_only(fake, tmp_path):
    """The check is not vacuous: a library construct outside the allow-list fails when the library is
    folder-level, and runs when it is a global trusted library."""
    library = tmp_path / "lib"
    shutil.copytree(JENKINS, library)
    (library / "vars" / "copyMap.groovy").write_text(
        "Map call(Map m) {\n    return new LinkedHashMap(m)\n}\n")
    script = "@Library('ci-kit') _\necho(copyMap([a: 1]).toString())\n"
    for trusted, result in ((True, "SUCCESS"), (False, "FAILURE")):
        b = fake(f"sandbox-{trusted}", script=script, trusted_library=trusted, library=library)
        assert b.result == result, b.explain()
    assert "new java.util.LinkedHashMap java.util.Map" in b.report["error"]["message"]


def test_multibranch_job1_triggers_job2_next_to_the_project_with_tags(fake):
    """Job 1 as a branch job of a multibranch project (team/churn-model/main): its checkout fetches
    tags (a multibranch source fetches none), so a tagged commit gets its final version; job 2's plain
    name resolves next to the multibranch project, not inside it."""
    git("tag", "v1.0.0", cwd=fake.repo)
    jobs = ["team/churn-model", "team/churn-model/main", "team/test-and-promote"]
    b = fake("mb-job1", jenkinsfile=JENKINS / "Jenkinsfile.build-and-push", job="team/churn-model/main",
             branch="main", jobs=jobs)
    assert b.result == "SUCCESS", b.explain()
    [checkout] = b.steps("checkout")
    assert checkout["tags"] is True and checkout["refspec"] == "+refs/heads/main:refs/remotes/origin/main"
    assert {"$class": "GitSCMSourceDefaults", "includeTags": False} in checkout["args"][0]["extensions"]
    [trigger] = b.steps("build")
    assert trigger["job"] == "../test-and-promote" and trigger["resolvedJob"] == "team/test-and-promote"
    assert trigger["parameters"]["REQUIREMENT"] == "churn-model==1.0.0"
    b2 = fake("mb-job2", jenkinsfile=JENKINS / "Jenkinsfile.test-and-promote", job="team/test-and-promote",
              params=trigger["parameters"])
    assert b2.result == "SUCCESS", b2.explain()
    assert b2.report["description"] == "churn-model==1.0.0 -> alice/testing"

    # what the issue saw: the plain name from a branch job, and a checkout without tags
    b = fake("mb-plain-name", job="team/churn-model/main", branch="main", jobs=jobs, script=(
        "node {\n  checkout(scm)\n  sh 'test -z \"$(git tag)\"'\n}\n"
        "build(job: 'test-and-promote', wait: false)\n"))
    assert b.result == "FAILURE" and "No item named test-and-promote found" in b.report["error"]["message"]
    assert b.steps("build")[0]["resolvedJob"] == "team/churn-model/test-and-promote"


@pytest.mark.slow
def test_e2e_stealing_product_finds_no_credential_through_the_templates(groovy, java_env, cikit, devpi, tmp_path):
    """Issue 11 through Jenkins: the job templates with a product whose test (and setup.py)
    hunts for the password; the credential is bound as Jenkins binds it. The sentinel is
    nowhere: not in what the thief found, not in any record, file or build log."""
    from test_secrets import _thief_repo

    require(shutil.which("python3.12") or glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python3.12")),
            "the job 2 template tests on Python 3.11 and 3.12")
    import secrets as _secrets
    import tempfile

    sentinel = "SENTINEL" + _secrets.token_hex(12)
    user = f"jthief{os.getpid()}"
    idx = make_user(devpi.url, user, sentinel)
    loot = Path(tempfile.mkdtemp(prefix="ci-kit-loot-", dir="/tmp"))
    loot.chmod(0o1777)
    try:
        repo = _thief_repo(tmp_path / "thief", loot, guess="/nonexistent", guess_home="/root", fail=False, build=True)
        agent_env = {**clean_env(), **devpi.env, "CI_KIT_USER": user, "PATH": f"{Path(cikit).parent}:{os.environ['PATH']}"}
        for var in ("CI_KIT_PASSWORD", "CI_KIT_PASSWORD_FILE"):
            agent_env.pop(var, None)
        credentials = {"ci-kit-devpi": {"username": user, "password": sentinel}}

        def agent(name, **kw):
            return run_build(groovy, java_env, tmp_path, name, agent_env=agent_env, credentials=credentials,
                             scm={"url": str(repo), "branch": "*/main"}, **kw)

        b1 = agent("build-and-push", jenkinsfile=JENKINS / "Jenkinsfile.build-and-push")
        assert b1.result == "SUCCESS", b1.explain()
        [trigger] = b1.steps("build")
        b2 = agent("test-and-promote", jenkinsfile=JENKINS / "Jenkinsfile.test-and-promote", params=trigger["parameters"])
        assert b2.result == "SUCCESS", b2.explain()
        stolen = sorted(loot.glob("loot-test-*.json"))
        assert len(stolen) >= 2, "the stealing test did not run"
        for p in [*stolen, *loot.glob("loot-build-*.json")]:
            assert sentinel not in p.read_text(), f"the product's code found the credential ({p.name})"
        assert sentinel not in b1.report["log"] + b2.report["log"]
        for owner_index in (f"{user}/unstable", f"{user}/testing"):
            for rel in idx.releases(owner_index, "churn-model").values():
                for link in rel.results:
                    assert sentinel not in json.dumps(idx.read_result(link))
        for p in tmp_path.rglob("*"):  # workspaces, archived artifacts, JUnit; not the harness's credential store
            if p.is_file() and not p.is_symlink() and not p.name.endswith("-config.json"):
                assert sentinel.encode() not in p.read_bytes(), p
    finally:
        shutil.rmtree(loot, ignore_errors=True)
