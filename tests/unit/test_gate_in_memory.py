"""The promote gate end to end in memory: push, records, gate and copy against FakeIndex.

The same stages the CLI runs (push.push, promote.promote), with the index in a dict: a
pass promotes exactly the gated bytes with their records, a refusal is one line and
changes nothing, records the index did not log as a trusted uploader's never count, and
a release already on the target is verified there, not waved through.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ci_kit import evidence, promote, push, results
from ci_kit.build import BuiltFile, Manifest
from ci_kit.config import Settings
from ci_kit.errors import Collision, GateRefused, Mismatch
from ci_kit.listing import Release
from ci_kit.release import Spec

from .conftest import COMMIT, OTHER_COMMIT
from .fakes import FakeIndex, dist_files, losing_index

SPEC = Spec("churn-model", "1.0.0")


def _push(fake: FakeIndex, settings: Settings, version: str = "1.0.0", wheel_tag: str = "py3-none-any",
          commit: str = COMMIT) -> Release:
    dist = settings.path(settings.build.dist_dir)
    dist.mkdir(exist_ok=True)
    built = []
    for name, data in dist_files("churn-model", version, wheel_tag).items():
        (dist / name).write_bytes(data)
        built.append(BuiltFile(name, hashlib.sha256(data).hexdigest(), len(data)))
    push.push(fake, settings.index, Manifest("churn-model", version, commit, built), settings.path(settings.build.dist_dir))
    rel = fake.release("ci/unstable", "churn-model", version)
    assert rel is not None
    return rel


def _record(f: Any, python: str, *, passed: bool = True, commit: str = COMMIT, tests: int = 3) -> dict[str, Any]:
    return results.test_record(filename=f.basename, sha256=f.sha256, commit=commit, python=python, python_full=f"{python}.1",
                               executable="python", command=["pytest"], retcode=0 if passed else 1, output="",
                               counts={"tests": tests, "failures": 0 if passed else 1}, counted=True, junit="",
                               metrics={}, proof={}, duration=0.1)


def _test(fake: FakeIndex, rel: Release, python: str = "3.12", who: str | None = "ci", **kw: Any) -> None:
    for f in rel.files:
        fake.attach_as(who, f, _record(f, python, **kw))


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(**{"python-versions": "3.12"})


def _stable(fake: FakeIndex) -> Release | None:
    return fake.release("ci/stable", "churn-model", "1.0.0")


def test_passing_records_promote_exactly_the_gated_bytes_with_their_evidence(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    p = promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    assert (p.changed, p.forced, p.already, p.target) == (True, False, False, "ci/stable")
    assert any(line.startswith("churn_model-1.0.0-py3-none-any.whl: passed on Python 3.12: 3 tests; commit c0ffee000000; by ci")
               for line in p.gate)
    there = _stable(fake)
    assert there is not None
    assert {(f.basename, f.sha256) for f in there.files} == {(f.basename, f.sha256) for f in rel.files}
    claimed = []
    for f in there.files:
        kinds = sorted(r.kind for r in evidence.read(fake, there, f, settings.index.trusted).records)
        assert [k for k in kinds if k != "claim"] == ["build", "promotion", "test"]
        claimed += [f.basename] * kinds.count("claim")
    assert claimed == [min(f.basename for f in there.files)]  # the run's one claim, on the first file by name
    writes = len(fake.writes)
    again = promote.promote(fake, settings.index, settings.test.python_versions, SPEC)  # a re-run verifies and changes nothing
    assert (again.changed, again.already) == (False, True) and len(fake.writes) == writes
    assert promote.verified(fake, settings.index, settings.test.python_versions, SPEC) == "ci/stable"


def test_failed_tests_refuse_in_one_line_and_change_nothing(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel, passed=False)
    writes = list(fake.writes)
    with pytest.raises(GateRefused) as info:
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    wheel = rel.files[0] if rel.files[0].kind == "wheel" else rel.files[1]
    assert info.value.message.startswith("churn-model==1.0.0 cannot be promoted: ")
    assert f"{wheel.basename} (sha256 {wheel.sha256[:16]}…) failed its tests on Python 3.12" in info.value.message
    assert "\n" not in info.value.message and info.value.exit_code == 10 and "--force" in info.value.hint
    assert fake.writes == writes and _stable(fake) is None


def test_a_later_failure_withdraws_an_earlier_pass(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    _test(fake, rel, passed=False)
    with pytest.raises(GateRefused, match=r"failed its tests on Python 3\.12"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)


def test_a_run_of_zero_tests_is_no_pass(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel, tests=0)  # ci-kit's own record of such a run says it did not pass
    with pytest.raises(GateRefused, match=r"failed its tests on Python 3\.12"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    for f in rel.files:  # a record that says "passed" with no test counted is not believed either
        fake.attach_as("ci", f, {**_record(f, "3.12", tests=0), "ci_kit": {**_record(f, "3.12", tests=0)["ci_kit"], "passed": True}})
    with pytest.raises(GateRefused, match=r"ran no tests on Python 3\.12"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)


def test_records_not_logged_for_a_trusted_uploader_are_ignored_and_named(fake: FakeIndex, settings: Settings,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         make_settings: Any) -> None:
    rel = _push(fake, settings)
    _test(fake, rel, who=None)  # an open index: anyone may attach; the content says "passed"
    _test(fake, rel, who="mallory")
    with pytest.raises(GateRefused) as info:
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    assert info.value.message.count("has no test result") == 2
    err = capsys.readouterr().err
    assert "4 record(s) ignored" in err and "attached by anonymous, not a trusted uploader" in err
    assert "attached by mallory, not a trusted uploader" in err
    trusting = make_settings(**{"python-versions": "3.12", "trusted-uploaders": "mallory"})
    assert promote.promote(fake, trusting.index, trusting.test.python_versions, SPEC).changed  # named in trusted-uploaders, mallory's records count


def test_malformed_and_misaddressed_records_are_ignored_with_the_reason(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    f, other = rel.files
    fake.attach_as("ci", f, "not json {")
    fake.attach_as("ci", f, {"ci_kit": {**_record(f, "3.12")["ci_kit"], "passed": "true"}})
    fake.attach_as("ci", f, _record(other, "3.12"))  # another file's record attached here
    fake.attach_as("ci", f, {"testenvs": {"py312": {"test": [{"retcode": 0}]}}})  # `devpi test`'s own record
    recs = evidence.read(fake, fake.release("ci/unstable", "churn-model", "1.0.0"), f, settings.index.trusted)
    reasons = [i.split(": ", 1)[1] for i in recs.ignored]
    assert reasons == ["not a JSON object", "ci_kit.passed is not a boolean", f"ci_kit.filename is {other.basename!r}, not {f.basename}",
                       "no ci_kit fields (not written by ci-kit; a `devpi test` record has no test count)"]
    assert [r.kind for r in recs.records] == ["build"]


def test_results_of_another_commit_do_not_count(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel, commit=OTHER_COMMIT)
    with pytest.raises(GateRefused, match=r"has no test result \(results exist only for other commits than c0ffee000000\)"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)


def test_every_configured_python_needs_its_result(fake: FakeIndex, make_settings: Any) -> None:
    settings = make_settings(**{"python-versions": "3.11,3.12"})
    rel = _push(fake, settings)
    _test(fake, rel, python="3.12")
    with pytest.raises(GateRefused, match=r"py3-none-any\.whl .* has no result on Python 3\.11"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    _test(fake, rel, python="3.11")
    assert promote.promote(fake, settings.index, settings.test.python_versions, SPEC).changed


def test_a_platform_wheel_needs_the_sdist_tested_where_the_wheel_does_not_fit(fake: FakeIndex, make_settings: Any) -> None:
    settings = make_settings(**{"python-versions": "3.11,3.12"})
    rel = _push(fake, settings, wheel_tag="cp312-cp312-manylinux_2_17_x86_64")
    _test(fake, rel, python="3.12")
    with pytest.raises(GateRefused) as info:
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    assert info.value.message.endswith("churn_model-1.0.0.tar.gz (sha256 " + rel.file("churn_model-1.0.0.tar.gz").sha256[:16]
                                       + "…) has no result on Python 3.11")
    sdist = rel.file("churn_model-1.0.0.tar.gz")
    fake.attach_as("ci", sdist, _record(sdist, "3.11"))
    assert promote.promote(fake, settings.index, settings.test.python_versions, SPEC).changed


def test_dry_run_and_force(fake: FakeIndex, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _push(fake, settings)
    writes = list(fake.writes)
    dry = promote.promote(fake, settings.index, settings.test.python_versions, SPEC, dry_run=True, force=True)
    assert (dry.changed, dry.dry_run) == (False, True) and fake.writes == writes
    forced = promote.promote(fake, settings.index, settings.test.python_versions, SPEC, force=True)
    assert (forced.changed, forced.forced) == (True, True)
    assert "promote: FORCED past the gate by" in capsys.readouterr().err
    there = _stable(fake)
    assert there is not None
    marks = [r.fields["forced"] for f in there.files for r in evidence.read(fake, there, f, settings.index.trusted).of("promotion", f.sha256)]
    assert marks == [True, True]
    assert promote.promote(fake, settings.index, settings.test.python_versions, SPEC).already  # a recorded forced promotion stands on the target


def test_bytes_swapped_after_the_gate_are_not_copied(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    fake.replace_bytes(rel.files[-1], b"other bytes")
    with pytest.raises(GateRefused, match=r"changed on ci/unstable after the gate: .*; nothing was copied"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    assert _stable(fake) is None


def test_a_release_on_the_target_without_evidence_is_a_mismatch(fake: FakeIndex, settings: Settings) -> None:
    for name, data in dist_files("churn-model", "1.0.0").items():
        fake.put("ci/stable", name, data, "churn-model", "1.0.0")
    with pytest.raises(Mismatch, match=r"churn-model==1\.0\.0 is on ci/stable without passing evidence") as info:
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    assert info.value.exit_code == 14
    assert promote.verified(fake, settings.index, settings.test.python_versions, SPEC) is None


def test_an_interrupted_promotion_gets_its_records_on_the_rerun(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    for f in rel.files:  # the copy happened, the records did not
        fake.put("ci/stable", f.basename, fake.blobs[f.url], "churn-model", "1.0.0")
    promote.promote(fake, settings.index, settings.test.python_versions, SPEC)
    there = _stable(fake)
    assert there is not None
    assert all(evidence.read(fake, there, f, settings.index.trusted).of("promotion", f.sha256) for f in there.files)
    assert promote.promote(fake, settings.index, settings.test.python_versions, SPEC).already


def test_other_bytes_on_the_target_are_a_collision(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    fake.put("ci/stable", rel.files[0].basename, b"older bytes", "churn-model", "1.0.0")
    with pytest.raises(Collision, match="already on ci/stable with different bytes"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)


def test_an_index_others_may_write_is_refused(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    fake.configs["ci/unstable"]["acl_toxresult_upload"] = ["ci", ":ANONYMOUS:"]
    with pytest.raises(GateRefused, match="ci/unstable lets :ANONYMOUS: attach results"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)


def test_a_release_without_complete_build_records_is_refused(fake: FakeIndex, settings: Settings) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    extra = dist_files("churn-model", "1.0.0", "cp312-cp312-win_amd64")
    name = next(n for n in extra if n.endswith(".whl"))
    fake.put("ci/unstable", name, extra[name], "churn-model", "1.0.0")  # uploaded after job 1, by someone else's run
    with pytest.raises(GateRefused, match=f"{name} has no build record from job 1"):
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC)


def test_push_refuses_other_bytes_or_commits_under_the_same_version_and_skips_identical_ones(
        fake: FakeIndex, settings: Settings) -> None:
    _push(fake, settings)
    writes = len(fake.writes)
    _push(fake, settings)  # a re-run: identical bytes, nothing new
    assert len(fake.writes) == writes
    dist = settings.path(settings.build.dist_dir)
    files = [BuiltFile(p.name, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size) for p in sorted(dist.iterdir())]
    with pytest.raises(Collision, match="was built from commit c0ffee000000; this is badc0de00000"):
        push.push(fake, settings.index, Manifest("churn-model", "1.0.0", OTHER_COMMIT, files), settings.path(settings.build.dist_dir))  # same bytes, another commit
    (dist / files[0].filename).write_bytes(b"rebuilt differently")
    changed = [BuiltFile(files[0].filename, hashlib.sha256(b"rebuilt differently").hexdigest(), 19), files[1]]
    with pytest.raises(Collision, match=f"{files[0].filename}: ci/unstable has sha256 {files[0].sha256}, this build"):
        push.push(fake, settings.index, Manifest("churn-model", "1.0.0", COMMIT, changed), settings.path(settings.build.dist_dir))
    assert len(fake.writes) == writes


# -- the quality gate reads only trusted evaluation records -----------------------------------

QUALITY = '{"metrics": {"auc": {"min": 0.6}}}'


def _evaluated(f: Any, auc: float) -> dict[str, Any]:
    rec = _record(f, "3.12")
    rec["ci_kit"]["evaluation"] = {"schema": 1, "metrics": {"auc": auc}}
    return rec


@pytest.mark.parametrize("trusted_auc, forged_auc, promoted", [(0.9, 0.1, True), (0.5, 0.99, False)],
                         ids=["forged-bad-ignored", "forged-good-ignored"])
def test_a_forged_evaluation_neither_blocks_nor_opens_the_quality_gate(
        fake: FakeIndex, make_settings: Any, trusted_auc: float, forged_auc: float, promoted: bool) -> None:
    """An attacker who can attach records (but is not a trusted uploader) writes an
    evaluation after the trusted run: the quality gate judges the trusted one only."""
    settings = make_settings(**{"python-versions": "3.12", "quality": QUALITY})
    rel = _push(fake, settings)
    for f in rel.files:
        fake.attach_as("ci", f, _evaluated(f, trusted_auc))
        fake.attach_as("mallory", f, _evaluated(f, forged_auc))
    if promoted:
        promote.promote(fake, settings.index, settings.test.python_versions, SPEC, quality=settings.quality)
        assert _stable(fake) is not None
    else:
        with pytest.raises(GateRefused, match=r"auc is 0\.5"):
            promote.promote(fake, settings.index, settings.test.python_versions, SPEC, quality=settings.quality)
        assert _stable(fake) is None


def test_records_a_concurrent_write_lost_are_attached_again(settings: Settings, capsys: Any) -> None:
    """The test stage's records survive a server that loses concurrent writes to one
    release: read back after the writes settle, the lost ones are attached again, and the
    gate then finds a passing record for every file."""
    from ci_kit.testfiles import index_source

    fake = losing_index()
    rel = _push(fake, settings)
    fake.losses = 2  # both test records vanish once
    index_source(fake, rel, alongside=True).attach([(f, _record(f, "3.12")) for f in rel.files])  # type: ignore[arg-type]
    assert "were lost by the server" in capsys.readouterr().err
    after = fake.release("ci/unstable", "churn-model", "1.0.0")
    assert after is not None
    for f in after.files:
        assert evidence.read(fake, after, f, frozenset({"ci"})).of("test", f.sha256), f.basename  # type: ignore[arg-type]
    assert promote.promote(fake, settings.index, ["3.12"], SPEC).changed  # type: ignore[arg-type]


def test_a_server_that_keeps_losing_records_is_exit_5_not_a_silent_gap(settings: Settings) -> None:
    from ci_kit.errors import IndexUnreachable
    from ci_kit.testfiles import index_source

    fake = losing_index()
    rel = _push(fake, settings)
    fake.losses = 100
    with pytest.raises(IndexUnreachable, match="kept losing records") as info:
        index_source(fake, rel, alongside=True).attach([(rel.files[0], _record(rel.files[0], "3.12"))])  # type: ignore[arg-type]
    assert info.value.exit_code == 5
