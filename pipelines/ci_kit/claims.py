"""One promoter per release: an election in the order the index commits records.

Two runs may promote the same release at once (a branch and its tag pushed together;
act ignores GitHub's concurrency group, Jenkins has none). The copy is safe by itself
(identical bytes, promote.py), but each run would also attach its own promotion record,
and the history would show two promotions. devpi has no compare-and-set, so before
writing its records on the target a run attaches a small `claim` record to the release's
first file there (by name), reads the file's records back, and only the first live claim
in the index's order writes them. The others wait, bounded, for that promotion to show
on the target and end green, `changed: false` ("already promoted by ...").

Why this elects exactly one run (devpi-server 6.x, read in its source):

- A record is a toxresult link appended to the version's `+elinks` list
  (`LinkStore._add_link_to_file_entry` does `linkdicts.append(...)`, called from
  `new_reflink` via `store_toxresult` in the POST view), inside the request's write
  transaction (`tween_keyfs_transaction`), together with its log entry (`add_log`:
  who, and `when` from the server's own clock).
- With devpi's default storage (SQLite) a write transaction takes the database's write
  lock when it begins (`begin immediate` in `keyfs_sqlite.get_connection(write=True)`,
  opened by `Transaction.__init__`) and reads the version data only after that: writes
  are serialised from read to commit, so the list is extended, never rewritten from an
  older copy, and its order is the commit order. Links are only removed when their file
  is (`remove_links`), which a non-volatile target never does.
- The JSON API lists `+links` in that list's order (`_make_view_verdata`), and our read
  comes after our own write's serial (serials.py: read-your-writes, also on a replica,
  which applies the primary's changes in serial order). So every claim a run can see
  ahead of its own was committed before it, and no claim committed later can appear
  ahead of it: all runs see the same first claim.

Where it is weaker, and what then happens (never worse than without claims: the copy
is idempotent and `_record` skips a promotion record already there):

- devpi-postgresql takes its lock (`pg_advisory_xact_lock`) only when it commits, after
  the request read the version data, so records posted at the same instant lose all but
  the last (the later commit writes its own copy of the list; measured with devpi-server
  6.20.3 and devpi-postgresql 3.0.1: of 24 records posted at once to one release, 1 or 2
  stayed; on SQLite all 24). A run whose own claim is missing from the listing claims
  again, so runs still agree on the first claim they can all see; but a run that saw
  its claim first before another's commit dropped it, and that other run, both promote,
  as before this module.
- A claim is live for EXPIRY seconds of the index's clock (its log time against our own
  claim's log time plus the time since): a run that died after claiming (killed, or the
  server went away so it could not give the claim up) holds the others back at most that
  long, then the next live claim wins. A winner slower than that may be overtaken: two
  records again. A run that fails after claiming gives its claim up (op "release").
- Only claims by trusted uploaders with the strict schema count (evidence.py), so an
  untrusted writer of the target cannot block or take a promotion.

The claim is made on the target, after the copy, because the promote token may write
only there (docs/security.md: it only reads unstable); it also makes the part a claim
guards short: a few small records. The anchor file exists there once any run copied it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from ci_kit import console, evidence, results
from ci_kit.errors import CiKitError, NotFound, PromotionPending

if TYPE_CHECKING:
    from ci_kit.index import Index
    from ci_kit.listing import Release, ReleaseFile

EXPIRY = 60.0  # seconds a claim stands without its promotion appearing (the records take seconds)
WAIT = 150.0  # how long a run that lost waits; more than EXPIRY, so a dead winner is outwaited
_ATTEMPTS = 3  # claims made again when the index lost ours (see above)
_SAY_EVERY = 10.0  # seconds between progress lines while waiting


@dataclass(frozen=True)
class Claim:
    """One run's claim (or its giving up: op "release") as the index committed it."""

    run: str
    op: str
    by: str  # who the run said it was (CI actor), for people; trust is the index's uploader
    ci: str  # the CI run's URL, when there is one
    at: float  # the index's clock when it committed the record (epoch seconds)

    @property
    def who(self) -> str:
        return f"{self.by} ({self.ci})" if self.ci else self.by


def winner(claims: list[Claim], now: float, expiry: float = EXPIRY) -> Claim | None:
    """The first claim in commit order that is live: not given up and not older than
    expiry at `now` (the index's clock). Pure, so every run computes the same answer
    from the same listing."""
    released = {c.run for c in claims if c.op == "release"}
    return next((c for c in claims if c.op == "claim" and c.run not in released and now - c.at <= expiry), None)


def logged_at(log: tuple[dict[str, object], ...]) -> float:
    """When the index logged the upload (devpi: `gmtime()[:6]`), as epoch seconds; 0.0 if not logged."""
    import calendar

    for entry in log:
        when = entry.get("when") if isinstance(entry, dict) and entry.get("what") == "upload" else None
        if isinstance(when, (list, tuple)) and len(when) == 6 and all(isinstance(x, int) for x in when):
            return float(calendar.timegm((*when, 0, 0, 0)))
    return 0.0


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class Election:
    """This run's claim to promote name==version to target, anchored on one file there.
    Used as a context manager: leaving it by an exception gives the claim up."""

    def __init__(self, index: Index, target: str, name: str, version: str, anchor: tuple[str, str], *,
                 trusted: frozenset[str], poll: float = 0.5) -> None:
        self.index, self.target, self.name, self.version = index, target, name, version
        self.basename, self.sha256 = anchor
        self.trusted, self.expiry, self.wait, self.poll = trusted, EXPIRY, WAIT, poll
        self.run = uuid.uuid4().hex
        self.claimed = 0  # claims attached (more than one when the index lost one)
        self.seen: Release | None = None  # the target's release as last read (after our claim, once claimed)
        self.mine: tuple[float, float] | None = None  # (the index's time of our claim, time.monotonic() when seen)

    def __enter__(self) -> Election:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and self.claimed:
            self._give_up()

    def elect(self, done: Callable[[], bool]) -> Claim | None:
        """Claim, then None once this run is the first live claim (it writes the records),
        or the winner's claim once done() says its promotion is on the target. Raises
        PromotionPending after `wait` seconds of neither."""
        started = said = time.monotonic()
        first: Claim | None = None
        while True:
            claims = self._claims()
            mine = [c for c in claims if c.run == self.run]
            if not mine or winner(mine, self._now(), self.expiry) is None:  # lost by the index, or gone stale
                self._claim()
                continue
            first = winner(claims, self._now(), self.expiry)  # never None: ours is live
            if first is None or first.run == self.run:
                return None
            if done():
                return first
            waited = time.monotonic() - started
            if waited > self.wait:
                raise self._pending(first)
            if said == started or time.monotonic() - said >= _SAY_EVERY:
                said = time.monotonic()
                who = first.who if first else "another run"
                console.step(f"promote: {who} claimed this promotion first; waiting for its records on {self.target} "
                             f"({waited:.0f}s of at most {self.wait:.0f}s)")
            time.sleep(self.poll)

    def _claim(self) -> None:
        if self.claimed >= _ATTEMPTS:
            raise CiKitError(f"the index at {self.index.url} lost this run's claim to promote {self.name}=={self.version} "
                             f"{self.claimed} times", "run promote again; check the server's storage (see docs/reliability.md)")
        seen = self.seen.file(self.basename) if self.seen else None  # the read just made: no second one
        anchor = seen if seen is not None and seen.sha256 == self.sha256 else self._anchor()
        self.index.attach_result(anchor, results.claim_record(
            filename=self.basename, sha256=self.sha256, target=self.target, run=self.run, op="claim"))
        self.claimed += 1

    def _give_up(self) -> None:
        """Best effort: a run that fails after claiming lets the next one go ahead now
        rather than after EXPIRY (if the index is gone too, expiry does it)."""
        try:
            self.index.attach_result(self._anchor(), results.claim_record(
                filename=self.basename, sha256=self.sha256, target=self.target, run=self.run, op="release"))
        except CiKitError as exc:
            console.step(f"promote: could not give up this run's claim ({exc.message}); it lapses after {EXPIRY:.0f}s")

    def _anchor(self) -> ReleaseFile:
        rel = self.index.release(self.target, self.name, self.version)
        f = rel.file(self.basename) if rel else None
        if f is None or f.sha256 != self.sha256:
            raise NotFound(f"{self.basename} with sha256 {self.sha256[:16]}… is not on {self.target}",
                           "check who else writes to the target; run promote again")
        return f

    def _claims(self) -> list[Claim]:
        """The claims on the anchor file for this target, in the index's order; notes
        the index's time of our own claim the first time it shows."""
        rel = self.seen = self.index.release(self.target, self.name, self.version)
        f = rel.file(self.basename) if rel else None
        if rel is None or f is None:
            return []
        out = [Claim(r.fields["run"], r.fields["op"], r.fields["by"], r.fields["ci"], logged_at(r.link.log) or _parsed(r.fields["at"]))
               for r in evidence.read(self.index, rel, f, self.trusted).of("claim", self.sha256) if r.fields["to"] == self.target]
        ours = [c for c in out if c.run == self.run and c.op == "claim"]
        if ours and (self.mine is None or ours[-1].at > self.mine[0]):
            self.mine = (ours[-1].at, time.monotonic())
        return out

    def _now(self) -> float:
        """The index's clock now: our claim's log time plus the time since we saw it (no
        comparison of this machine's clock with the server's or another runner's)."""
        if self.mine is None:
            return time.time()
        at, seen = self.mine
        return at + (time.monotonic() - seen)

    def _pending(self, first: Claim | None) -> PromotionPending:
        who = first.who if first else "another run"
        since = f" (claimed at {_iso(first.at)})" if first else ""
        return PromotionPending(
            f"{who}{since} claimed the promotion of {self.name}=={self.version} to {self.target} first, and its records "
            f"did not appear there within {self.wait:.0f}s",
            f"run promote again: a claim older than {EXPIRY:.0f}s without its promotion is ignored (its run died)")


def _parsed(at: str) -> float:
    """A record's own `at` (the writer's clock): only for an index whose log has no time."""
    import calendar

    try:
        return float(calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0
