"""Which records on the index count, and what they say.

Anyone the index lets attach a record can write any JSON into it, so a record's content
proves nothing about who wrote it. What the index itself logs does: each record link
carries the uploader (`log[].who`). A record counts only if that uploader is trusted
(the configured user plus `trusted-uploaders`) and its content passes a strict schema
check; everything else is ignored with a warning that names it, never a crash. The gate,
the test stage (the build record: commit and file set), `status` and the image step all
read records through here, so they agree on what counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from ci_kit import console

if TYPE_CHECKING:
    from ci_kit.index import Index
    from ci_kit.listing import Release, ReleaseFile, ResultLink

SCHEMA = 2  # ci_kit.schema of the records this version writes and counts
_SHA = re.compile(r"^[0-9a-f]{64}$")
_PY = re.compile(r"^3\.\d{1,2}$")
RecordKind = Literal["build", "test", "promotion", "claim"]  # claim: claims.py
KINDS: tuple[RecordKind, ...] = get_args(RecordKind)


@dataclass(frozen=True)
class Record:
    """One trusted, well-formed ci-kit record about one file."""

    kind: RecordKind
    sha256: str
    by: str  # the uploader the index logged
    fields: dict[str, Any]
    link: ResultLink

    @property
    def commit(self) -> str:
        return str(self.fields.get("commit", ""))

    @property
    def python(self) -> str:
        return str(self.fields.get("python", ""))

    @property
    def passed(self) -> bool:
        """A test record that passed and shows tests ran (or says JUnit was waived)."""
        f = self.fields
        ran = f["tests"] > 0 or f.get("counted") is False
        return self.kind == "test" and f["passed"] is True and ran and f["failures"] == 0 and f["errors"] == 0


@dataclass
class FileRecords:
    """The records of one file that count, and what was ignored (with why)."""

    records: list[Record] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def of(self, kind: RecordKind, sha256: str) -> list[Record]:
        return [r for r in self.records if r.kind == kind and r.sha256 == sha256]


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check(record: Any) -> str | None:  # noqa: PLR0912 - a validator: one branch per check, first finding wins (as PLR0911)
    """Why a record does not count as a ci-kit record of this schema, or None if it does.
    Strict on types: `"passed": "false"` is not a boolean, so the record is ignored."""
    if not isinstance(record, dict):
        return "not a JSON object"
    ck = record.get("ci_kit")
    if not isinstance(ck, dict):
        return "no ci_kit fields (not written by ci-kit; a `devpi test` record has no test count)"
    if ck.get("schema") != SCHEMA:
        return f"ci_kit.schema is {ck.get('schema')!r}, not {SCHEMA}"
    kind = ck.get("kind")
    if kind not in KINDS:
        return f"ci_kit.kind {kind!r} is not one of {', '.join(KINDS)}"
    if not isinstance(ck.get("sha256"), str) or not _SHA.match(ck["sha256"]):
        return "ci_kit.sha256 is not a sha256"
    for key in ("filename", "commit", "at"):
        if not isinstance(ck.get(key), str):
            return f"ci_kit.{key} is not a string"
    if kind == "test":
        if not isinstance(ck.get("python"), str) or not _PY.match(ck["python"]):
            return "ci_kit.python is not MAJOR.MINOR"
        if not isinstance(ck.get("passed"), bool):
            return "ci_kit.passed is not a boolean"
        if not isinstance(ck.get("counted"), bool):
            return "ci_kit.counted is not a boolean"
        for key in ("tests", "failures", "errors", "skipped"):
            if not _int(ck.get(key)):
                return f"ci_kit.{key} is not a count"
    elif kind == "build":
        files = ck.get("files")
        if not isinstance(files, list) or not files or not all(
                isinstance(f, dict) and isinstance(f.get("filename"), str) and isinstance(f.get("sha256"), str)
                and _SHA.match(f["sha256"]) for f in files):
            return "ci_kit.files is not a list of {filename, sha256}"
    elif kind == "promotion":
        if not isinstance(ck.get("forced"), bool):
            return "ci_kit.forced is not a boolean"
        if not isinstance(ck.get("to"), str):
            return "ci_kit.to is not a string"
    elif kind == "claim":
        return _claim_problem(ck)
    return None


def _claim_problem(ck: dict[str, Any]) -> str | None:
    """A claim to promote (claims.py): which run, to where, and whether it is given up."""
    if not isinstance(ck.get("run"), str) or not re.match(r"^[0-9a-f]{32}$", ck["run"]):
        return "ci_kit.run is not a run id"
    if not isinstance(ck.get("to"), str) or not ck["to"]:
        return "ci_kit.to is not an index"
    if ck.get("op") not in ("claim", "release"):
        return "ci_kit.op is not claim or release"
    for key in ("by", "ci"):
        if not isinstance(ck.get(key), str):
            return f"ci_kit.{key} is not a string"
    return None


def read(index: Index, release: Release, f: ReleaseFile, trusted: frozenset[str]) -> FileRecords:
    """The records attached to f that count: by a trusted uploader, well-formed, about f."""
    out = FileRecords()
    for link in release.results_for(f):
        name = link.url.rsplit("/", 1)[-1]
        if link.who not in trusted:
            out.ignored.append(f"{name}: attached by {link.who or 'anonymous'}, not a trusted uploader")
            continue
        from ci_kit.errors import CiKitError

        try:
            data = index.read_result(link)
        except CiKitError as exc:
            out.ignored.append(f"{name}: unreadable ({exc.message})")
            continue
        problem = check(data)
        if problem is None and data["ci_kit"]["filename"] != f.basename:
            problem = f"ci_kit.filename is {data['ci_kit']['filename']!r}, not {f.basename}"
        if problem is not None:
            out.ignored.append(f"{name}: {problem}")
            continue
        ck = data["ci_kit"]
        out.records.append(Record(ck["kind"], ck["sha256"], link.who or "", ck, link))
    return out


def warn_ignored(where: str, ignored: list[str], limit: int = 5) -> None:
    """Say what did not count, so a forged or broken record is visible, not silent."""
    if not ignored:
        return
    console.step(f"{where}: {len(ignored)} record(s) ignored: " + "; ".join(ignored[:limit])
                 + (f"; and {len(ignored) - limit} more" if len(ignored) > limit else ""))


@dataclass(frozen=True)
class Build:
    """What job 1 recorded: the commit it built from and the complete file set."""

    commit: str
    files: dict[str, str]  # filename -> sha256


def build_of(index: Index, release: Release, trusted: frozenset[str]) -> tuple[Build | None, list[str]]:
    """The release's build record, or None with the reasons: every file must carry a
    trusted build record for its own bytes, all naming one commit and one file set that
    equals the files on the index (a job 1 that died between uploads leaves it short)."""
    problems: list[str] = []
    builds: list[Build] = []
    for f in release.files:
        recs = read(index, release, f, trusted).of("build", f.sha256)
        if not recs:
            problems.append(f"{f.basename} has no build record from job 1")
            continue
        r = recs[-1]
        builds.append(Build(r.commit, {x["filename"]: x["sha256"] for x in r.fields["files"]}))
    if problems:
        return None, problems
    if not builds or len({(b.commit, tuple(sorted(b.files.items()))) for b in builds}) != 1:
        return None, ["the files' build records disagree (built by different runs of job 1)"]
    build = builds[0]
    have = {f.basename: f.sha256 for f in release.files}
    missing = sorted(set(build.files) - set(have))
    if missing:
        problems.append(f"job 1 built {', '.join(missing)} but it is not on {release.index}")
    other = sorted(n for n in have if n in build.files and build.files[n] != have[n])
    if other:
        problems.append(f"{', '.join(other)} on {release.index} differ from what job 1 built")
    return (None, problems) if problems else (build, [])


def commit_of(index: Index, release: Release, trusted: frozenset[str]) -> str:
    """The commit job 1 recorded for the release (its complete, trusted build record), or
    "" when there is none: what promotion records and the image labels as the source."""
    build, _ = build_of(index, release, trusted)
    return build.commit if build else ""
