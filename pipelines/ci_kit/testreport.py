"""What job 2's test stage found: one RunResult per file and Python, and the RunReport
of a whole run. Their own module because everything downstream reads them (the summary,
the CLI's --json, the jobs, the error of a failed run) while only testrun makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ci_kit.contract import OneRunJson, RunReportJson
from ci_kit.release import Spec


@dataclass(frozen=True)
class RunResult:
    """One file on one Python. `out` is what `--json` publishes for it (contract.OneRunJson,
    the one declaration of those fields); `record` is what was attached to the file on the
    index (it also holds the output and JUnit, so it stays out of the JSON)."""

    out: OneRunJson
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return self.out["passed"]

    def to_json(self) -> OneRunJson:
        return self.out


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
