"""Concurrent promotions of one release elect one promoter (claims.py), in memory.

Another run's copy and claim are put on the target as the index would hold them when
that run got there first: the run under test loses and waits for that promotion, takes over a claim
that went stale or was given up, ignores an untrusted one, and gives up its own claim
when it times out. Time is a fake clock (the server's and ours), so waits are instant.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from ci_kit import claims, evidence, promote, results, status
from ci_kit.config import Settings
from ci_kit.errors import PromotionPending
from ci_kit.listing import Release
from ci_kit.release import Spec

from .fakes import FakeIndex
from .test_gate_in_memory import _push, _test

SPEC = Spec("churn-model", "1.0.0")
OTHER = "f" * 32  # the other run's id
CI = "https://ci.invalid/runs/7"


class Clock:
    """time for claims.py and the fake server's log: advances only when slept on."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0
        self.slept = 0
        self.on_sleep: Any = None

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.slept += 1
        if self.on_sleep is not None:
            self.on_sleep(self.slept)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def clock(fake: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(claims, "time", c)
    fake.clock = c.time
    return c


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(**{"python-versions": "3.12"})


def _raced(fake: FakeIndex, rel: Release) -> Release:
    """The other run's copy: the same bytes on stable, nothing recorded yet."""
    for f in rel.files:
        fake.put("ci/stable", f.basename, fake.blobs[f.url], rel.name, rel.version)
    there = fake.release("ci/stable", rel.name, rel.version)
    assert there is not None
    return there


def _claim(fake: FakeIndex, there: Release, *, who: str | None = "ci", op: str = "claim", run: str = OTHER) -> None:
    f = min(there.files, key=lambda x: x.basename)
    record = results.claim_record(filename=f.basename, sha256=f.sha256, target="ci/stable", run=run, op=op)
    record["ci_kit"].update(by="release-bot", ci=CI)
    fake.attach_as(who, f, record)


def _its_records(fake: FakeIndex, rel: Release) -> None:
    """What the other run writes once elected: the evidence and its promotion record."""
    there, rel = fake.release("ci/stable", rel.name, rel.version), fake.release("ci/unstable", rel.name, rel.version)
    assert there is not None and rel is not None
    for f in rel.files:
        t = there.file(f.basename)
        assert t is not None
        for link in rel.results_for(f):
            fake.attach_result(t, fake.read_result_bytes(link))
        fake.attach_result(t, results.promotion_record(filename=f.basename, sha256=f.sha256, source="ci/unstable",
                                                       target="ci/stable", forced=False, commit="", at="2027-01-15T08:00:00Z"))


def _kinds(fake: FakeIndex, settings: Settings, kind: str) -> list[dict[str, Any]]:
    there = fake.release("ci/stable", "churn-model", "1.0.0")
    assert there is not None
    return [r.fields for f in there.files for r in evidence.read(fake, there, f, settings.index.trusted).of(kind, f.sha256)]


def _promote(fake: FakeIndex, settings: Settings) -> promote.Promotion:
    return promote.promote(fake, settings.index, settings.test.python_versions, SPEC)


def test_the_first_claim_wins_and_a_later_run_waits_for_its_promotion(fake: FakeIndex, settings: Settings, clock: Clock,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    _claim(fake, _raced(fake, rel))  # the other run copied and claimed first
    clock.on_sleep = lambda n: _its_records(fake, rel) if n == 3 else None  # ... and records while this run waits
    p = _promote(fake, settings)
    assert (p.changed, p.already, p.forced) == (False, True, False), p
    assert p.to_json()["changed"] is False
    assert f"already promoted by release-bot ({CI})" in p.gate
    err = capsys.readouterr().err
    assert f"release-bot ({CI}) claimed this promotion first; waiting for its records on ci/stable" in err
    assert f"already promoted by release-bot ({CI})" in err
    assert len(_kinds(fake, settings, "promotion")) == 2  # one per file: the winner's only
    mine = [c for c in _kinds(fake, settings, "claim") if c["run"] != OTHER]
    assert [c["op"] for c in mine] == ["claim"]  # it claimed (and lost), never wrote a record


def test_a_claim_older_than_the_expiry_is_stale_and_ignored(fake: FakeIndex, settings: Settings, clock: Clock) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    there = _raced(fake, rel)
    clock.t -= claims.EXPIRY + 5
    _claim(fake, there)  # a run that died after claiming, EXPIRY + 5 s ago by the server's clock
    clock.t += claims.EXPIRY + 5
    p = _promote(fake, settings)
    assert (p.changed, p.already) == (True, False)  # this run promoted: it wrote the records
    assert clock.slept == 0  # no wait at all
    assert len(_kinds(fake, settings, "promotion")) == 2


def test_a_live_claim_of_a_dead_run_is_outwaited_then_taken_over(fake: FakeIndex, settings: Settings, clock: Clock) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    _claim(fake, _raced(fake, rel))  # claimed just now, and never finishes
    started = clock.t
    p = _promote(fake, settings)
    assert (p.changed, p.already) == (True, False)  # this run promoted: it wrote the records
    assert claims.EXPIRY <= clock.t - started <= claims.EXPIRY + 2  # once its claim lapsed, not before
    assert len(_kinds(fake, settings, "promotion")) == 2


def test_a_claim_given_up_lets_the_next_run_go_ahead_at_once(fake: FakeIndex, settings: Settings, clock: Clock) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    there = _raced(fake, rel)
    _claim(fake, there)
    _claim(fake, there, op="release")  # that run failed after claiming, and said so
    p = _promote(fake, settings)
    assert (p.changed, p.already, clock.slept) == (True, False, 0)


@pytest.mark.parametrize("who", ["mallory", None], ids=["untrusted", "anonymous"])
def test_a_claim_by_an_untrusted_uploader_is_ignored(fake: FakeIndex, settings: Settings, clock: Clock,
                                                    who: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    _claim(fake, _raced(fake, rel), who=who)  # first in the index's order, but not by a trusted uploader
    p = _promote(fake, settings)
    assert (p.changed, p.already, clock.slept) == (True, False, 0)
    assert "claimed this promotion first" not in capsys.readouterr().err
    assert len(_kinds(fake, settings, "promotion")) == 2


def test_a_run_that_times_out_waiting_says_so_in_one_line_and_gives_its_claim_up(
        fake: FakeIndex, settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claims, "WAIT", 20.0)  # shorter than EXPIRY: the other claim stays live throughout
    rel = _push(fake, settings)
    _test(fake, rel)
    _claim(fake, _raced(fake, rel))
    with pytest.raises(PromotionPending) as exc:
        _promote(fake, settings)
    assert exc.value.exit_code == 16
    assert f"release-bot ({CI}) (claimed at " in exc.value.message and "did not appear there within 20s" in exc.value.message
    assert "\n" not in exc.value.message and "run promote again" in exc.value.hint
    assert _kinds(fake, settings, "promotion") == []
    mine = [c["op"] for c in _kinds(fake, settings, "claim") if c["run"] != OTHER]
    assert mine == ["claim", "release"]


def test_dry_run_claims_nothing(fake: FakeIndex, settings: Settings, clock: Clock) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    fake.writes.clear()
    p = promote.promote(fake, settings.index, settings.test.python_versions, SPEC, dry_run=True)
    assert p.dry_run and fake.writes == []


def test_status_shows_no_claim_as_a_promotion(fake: FakeIndex, settings: Settings, clock: Clock) -> None:
    rel = _push(fake, settings)
    _test(fake, rel)
    there = _raced(fake, rel)
    _claim(fake, there)
    _claim(fake, there, run="e" * 32)
    row = status.project_status(fake, settings.index, "churn-model")["versions"][0]  # type: ignore[arg-type]
    assert row["promoted"] == [] and "incomplete_promotions" not in row and "ignored_records" not in row, row


def test_the_election_is_the_first_live_claim_in_commit_order() -> None:
    a, b, c = (claims.Claim(run, "claim", "x", "", at) for run, at in (("a", 100.0), ("b", 101.0), ("c", 99.0)))
    assert claims.winner([a, b, c], now=120) == a  # commit order, not the time a claim names
    assert claims.winner([a, b, c], now=100 + claims.EXPIRY + 0.5) == b  # a lapsed
    assert claims.winner([a, b, claims.Claim("b", "release", "x", "", 102.0), c], now=120) == a
    assert claims.winner([claims.Claim("a", "release", "x", "", 102.0), a, b], now=120) == b  # given up
    assert claims.winner([], now=0) is None
