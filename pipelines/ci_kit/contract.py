"""The shapes the CI front ends rely on: the JSON each command prints with --json and the
KEY=VALUE lines it appends to --output FILE. docs/CONTRACT.md documents them in tables
and tests/test_docs.py checks those tables against these declarations, so the contract
and the code cannot drift. Each stage's result dataclass turns itself into one of these
with `to_json()`; nothing here does any work.

TypedDicts, not dataclasses: here the JSON is the contract, so it is spelled as JSON.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

FileKind = Literal["wheel", "sdist"]


class FileJson(TypedDict):
    filename: str
    sha256: str


class BuiltFileJson(FileJson):
    size: int


class PushedFileJson(FileJson):
    url: str


class BuildJson(TypedDict):
    name: str
    version: str
    requirement: str
    commit: str
    files: list[BuiltFileJson]


class PushJson(TypedDict):
    name: str
    version: str
    requirement: str
    commit: str
    index: str
    files: list[PushedFileJson]


class Counts(TypedDict):
    tests: int
    failures: int
    errors: int
    skipped: int


class OneRunJson(TypedDict):
    filename: str
    kind: FileKind
    sha256: str
    python: str
    passed: bool
    counts: Counts
    junit_path: str
    record_path: str
    message: str
    failed_tests: list[str]


class RunReportJson(TypedDict):
    requirement: str
    commit: str
    passed: bool
    attached: bool  # false for `ci-kit test --dist`: local files, no record on any index
    runs: list[OneRunJson]


class PromoteJson(TypedDict):
    requirement: str
    name: str
    version: str
    promoted_to: str
    changed: bool
    forced: bool
    dry_run: bool
    already: bool
    files: list[FileJson]
    gate: list[str]


class JobTwoJson(PromoteJson):
    commit: str
    tests: RunReportJson


class _FlowJson(TypedDict):
    name: str
    version: str
    requirement: str
    commit: str
    index: str
    files: list[PushedFileJson]  # as pushed, with their URLs on the unstable index
    promoted_to: str
    changed: bool
    forced: bool
    dry_run: bool
    already: bool
    gate: list[str]
    tests: RunReportJson


class FlowJson(_FlowJson, total=False):
    image: dict[str, Any]  # with image = true: `ci-kit image --json`'s object (docs/image.md)


class StatusIndexJson(TypedDict):
    index: str
    files: list[FileJson]


class _PromotionJson(TypedDict):
    to: str
    by: str
    at: str
    forced: bool


class PromotionJson(_PromotionJson, total=False):
    quality: dict[str, Any]  # what the quality gate found (for `ci-kit report`)


class _VersionRowJson(TypedDict):
    version: str
    indexes: dict[str, StatusIndexJson]  # by role: unstable, testing, stable
    tests: dict[str, str]  # "py3.11" or "py3.11 (sdist)" -> "passed", "failed" ...
    promoted: list[PromotionJson]


class VersionRowJson(_VersionRowJson, total=False):
    incomplete_promotions: list[str]
    ignored_records: int
    metrics: dict[str, float]  # a passing run's evaluation record (quality/)
    evaluation: dict[str, Any]  # the whole evaluation record (for `ci-kit report`)


class ProjectStatusJson(TypedDict):
    name: str
    indexes: dict[str, str]  # role -> USER/INDEX
    versions: list[VersionRowJson]
    total_versions: int
    shown: int
    headline: str  # the metric shown per version ("" when none is recorded)


class OverviewJson(TypedDict):
    projects: dict[str, dict[str, str]]  # project -> role -> newest version there
    indexes: dict[str, str]


# The keys each command appends to --output FILE (values: text as is, others as JSON).
OUTPUT_KEYS: dict[str, tuple[str, ...]] = {
    "build": ("name", "version", "requirement", "commit", "files"),
    "push": ("name", "version", "requirement", "commit", "index", "files"),
    "build-and-push": ("name", "version", "requirement", "commit", "index", "files"),
    "test": (),
    "promote": ("requirement", "promoted_to", "changed", "forced"),
    "test-and-promote": ("requirement", "commit", "promoted_to", "changed"),
    "run": ("requirement", "commit", "promoted_to"),
}

# What each command prints with --json, and the shapes nested in them: the headings of
# docs/CONTRACT.md's "Outputs" section, each over a table of exactly these fields.
DOCUMENTED: dict[str, type] = {
    "ci-kit build": BuildJson,
    "ci-kit push, ci-kit build-and-push": PushJson,
    "ci-kit test": RunReportJson,
    "ci-kit promote": PromoteJson,
    "ci-kit test-and-promote": JobTwoJson,
    "ci-kit run": FlowJson,
    "a built file (files of build)": BuiltFileJson,
    "a pushed file (files of push and run)": PushedFileJson,
    "a promoted file (files of promote)": FileJson,
    "a test run (runs of test)": OneRunJson,
    "counts (of a test run)": Counts,
    "ci-kit status NAME": ProjectStatusJson,
    "a version (versions of status NAME)": VersionRowJson,
    "an index of a version (indexes of a version, by role)": StatusIndexJson,
    "a promotion (promoted of a version)": PromotionJson,
    "ci-kit status": OverviewJson,
}


def pick(data: Any, command: str) -> dict[str, Any]:
    """The --output lines of a command, from its JSON."""
    return {k: data[k] for k in OUTPUT_KEYS[command]}
