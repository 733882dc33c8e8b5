"""What `ci-kit report NAME` shows, gathered once: every version with its state, metrics,
evaluation, baseline and promotions, read through `status` (one listing per index, the
records fetched in parallel) so that the report and `ci-kit status` agree.

A version's baseline is the newest stable version older than it (what the gate compared
it with when it was promoted); a version on no promotion target is marked `refused` if
the quality gate refuses it against that baseline, else `not promoted`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ci_kit.contract import PromotionJson
from ci_kit.quality.baseline import version_key
from ci_kit.quality.gate import Side, judge
from ci_kit.quality.rules import Rules, parse

if TYPE_CHECKING:
    from ci_kit.config import Settings
    from ci_kit.index import Index


@dataclass
class Version:
    version: str
    state: str  # stable | testing | refused | not promoted
    metrics: dict[str, float]
    evaluation: dict[str, Any] | None
    promoted: list[PromotionJson] = field(default_factory=list)
    baseline: str = ""  # the version it is compared with
    refusal: list[str] = field(default_factory=list)


@dataclass
class History:
    name: str
    indexes: dict[str, str]
    headline: str
    versions: list[Version]  # oldest first

    def get(self, version: str) -> Version | None:
        return next((v for v in self.versions if v.version == version), None)


def gather(index: Index, settings: Settings, name: str) -> History:
    from ci_kit import status

    rules_table = settings.quality.rules
    data = status.project_status(index, settings.index, name, limit=0, evaluations=True,
                                 headline=str(rules_table.get("headline", "")))
    rules = parse(rules_table)
    rows = sorted(data["versions"], key=lambda r: version_key(r["version"]))
    out: list[Version] = []
    for row in rows:
        state = "stable" if "stable" in row["indexes"] else "testing" if "testing" in row["indexes"] else "not promoted"
        out.append(Version(row["version"], state, row.get("metrics", {}), row.get("evaluation"), row.get("promoted", [])))
    for i, v in enumerate(out):
        base = next((b for b in reversed(out[:i]) if b.state == "stable" and b.evaluation), None)
        v.baseline = base.version if base else ""
        if v.state == "not promoted" and v.evaluation is not None:
            v.refusal = _refusal(rules, v, base, settings.index.stable_index)
            v.state = "refused" if v.refusal else v.state
    return History(data["name"], data["indexes"], data.get("headline", ""), out)


def _refusal(rules: Rules, v: Version, base: Version | None, stable: str) -> list[str]:
    from ci_kit.errors import UsageError

    try:
        verdict = judge(rules, [Side(v.version, "unstable", v.evaluation)],
                        Side(base.version, stable, base.evaluation) if base else None)
    except UsageError:  # scipy missing: the report still shows what it can
        return []
    return verdict.problems
