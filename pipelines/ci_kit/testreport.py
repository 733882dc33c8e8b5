"""What job 2's test stage found: one RunResult per file and Python, and the RunReport
of a whole run. Their own module because everything downstream reads them (the summary,
the CLI's --json, the jobs, the error of a failed run) while only testrun makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ci_kit.contract import Counts, FileKind, OneRunJson, RunReportJson
from ci_kit.release import Spec


@dataclass
class RunResult:
    """One file on one Python: the outcome, where its JUnit XML and record went."""

    filename: str
    kind: FileKind
    sha256: str
    python: str
    passed: bool
    counts: Counts
    junit_path: str
    record_path: str
    message: str = ""
    record: dict[str, Any] = field(default_factory=dict, repr=False)  # attached to the file on the index
    failed_tests: list[str] = field(default_factory=list)

    def to_json(self) -> OneRunJson:
        return {"filename": self.filename, "kind": self.kind, "sha256": self.sha256, "python": self.python,
                "passed": self.passed, "counts": self.counts, "junit_path": self.junit_path,
                "record_path": self.record_path, "message": self.message, "failed_tests": self.failed_tests}


@dataclass
class RunReport:
    spec: Spec
    commit: str
    runs: list[RunResult] = field(default_factory=list)
    attached: bool = True  # False: local files (`ci-kit test --dist`), no record on any index

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    def to_json(self) -> RunReportJson:
        return {"requirement": str(self.spec), "commit": self.commit, "passed": self.passed,
                "attached": self.attached, "runs": [r.to_json() for r in self.runs]}
