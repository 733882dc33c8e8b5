"""`ci-kit status [NAME]`: versions × indexes, test outcome per Python, promotions.

One request per index lists every version with its files and result links; only the
result records of the versions shown are fetched, in parallel.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ci_kit import evidence
from ci_kit.config import IndexSettings
from ci_kit.contract import OverviewJson, ProjectStatusJson, PromotionJson, VersionRowJson
from ci_kit.index import Index
from ci_kit.listing import Release, ResultLink


def _version_key(v: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def _roles(cfg: IndexSettings) -> list[tuple[str, str]]:
    roles = [("unstable", cfg.unstable_index), ("testing", cfg.testing_index), ("stable", cfg.stable_index)]
    seen, out = set(), []
    for role, name in roles:
        if name not in seen:
            seen.add(name)
            out.append((role, name))
    return out


def project_status(index: Index, cfg: IndexSettings, name: str, limit: int = 10, *, evaluations: bool = False,
                   headline: str = "") -> ProjectStatusJson:
    """Versions × indexes of one project. With `evaluations`, each row carries its whole
    evaluation record and each promotion what the quality gate found (`ci-kit report`);
    `headline` names the metric shown per version (default: the first one recorded)."""
    from packaging.utils import canonicalize_name

    name = str(canonicalize_name(name))
    per_index = {idx: index.releases(idx, name) for _, idx in _roles(cfg)}
    versions = sorted({v for rels in per_index.values() for v in rels}, key=_version_key, reverse=True)
    if not versions:
        from ci_kit.errors import NotFound

        raise NotFound(f"no project {name} on {', '.join(idx for _, idx in _roles(cfg))}",
                       "check the name (ci-kit status without a name lists the projects)")
    shown = versions[:limit] if limit else versions
    links = [(idx, rel, link) for idx, rels in per_index.items() for v, rel in rels.items() if v in shown for link in rel.results]
    with ThreadPoolExecutor(max_workers=8) as pool:
        records = list(pool.map(lambda t: index.read_result(t[2]), links))
    read = [(idx, rel, link, rec) for (idx, rel, link), rec in zip(links, records, strict=True)]
    rows = [_row(cfg, v, per_index, [r for r in read if r[1].version == v], evaluations) for v in shown]
    return {"name": name, "indexes": dict(_roles(cfg)), "versions": rows, "total_versions": len(versions),
            "shown": len(shown), "headline": headline or next((m for row in rows for m in row.get("metrics", {})), "")}


def _row(cfg: IndexSettings, v: str, per_index: dict[str, dict[str, Release]],  # noqa: PLR0912 - one pass over the records, a branch per kind
         read: list[tuple[str, Release, ResultLink, Any]], evaluations: bool) -> VersionRowJson:
    """One version: where it is, its trusted test outcomes, its complete promotions."""
    row: VersionRowJson = {"version": v, "indexes": {}, "tests": {}, "promoted": []}
    for role, idx in _roles(cfg):
        rel: Release | None = per_index[idx].get(v)
        if rel is not None:
            row["indexes"][role] = {"index": idx, "files": [{"filename": f.basename, "sha256": f.sha256} for f in rel.files]}
    ignored = 0
    promos: dict[str, tuple[set[str], list[PromotionJson]]] = {}  # index -> (files promoted there, entries)
    for idx, rel, link, rec in read:
        if link.who not in cfg.trusted or evidence.check(rec) is not None:
            ignored += 1  # not evidence: shown as a count, never as an outcome
            continue
        ck = rec["ci_kit"]
        f = next((f for f in rel.files if f.url == link.for_url), None)
        if ck["kind"] == "promotion":
            done, entries = promos.setdefault(idx, (set(), []))
            if f is not None and f.sha256 == ck["sha256"]:
                done.add(f.basename)
            entry = _promotion(ck, link.who or "", evaluations)  # trusted: never anonymous here
            if entry not in entries:
                entries.append(entry)
        elif ck["kind"] == "test" and (idx == cfg.unstable_index or not row["tests"]):
            if f is None or f.sha256 != ck["sha256"]:
                continue
            r = evidence.Record("test", ck["sha256"], link.who or "", ck, link)
            key = f"py{ck['python']}" if f.kind == "wheel" else f"py{ck['python']} (sdist)"
            row["tests"][key] = ("passed" if r.passed else "failed") + ("" if ck["counted"] else " (no test count)")
            _evaluation(row, r, evaluations)
    for idx, (done, entries) in promos.items():
        # a promotion counts only once every file there carries its record: a copy
        # interrupted between the files' records is not shown as promoted
        if {f.basename for f in per_index[idx][v].files} <= done:
            row["promoted"] += [e for e in entries if e not in row["promoted"]]
        else:
            row.setdefault("incomplete_promotions", []).append(idx)
    if ignored:
        row["ignored_records"] = ignored
    return row


def _promotion(ck: dict[str, Any], who: str, quality: bool) -> PromotionJson:
    """A promotion as status shows it; with what the quality gate found, for `report`."""
    entry: PromotionJson = {"to": ck["to"], "by": ck.get("by", who), "at": ck["at"], "forced": ck["forced"]}
    if quality and "quality" in ck:
        entry["quality"] = ck["quality"]
    return entry


def _evaluation(row: VersionRowJson, r: evidence.Record, whole: bool) -> None:
    """A passing run's evaluation record (quality/): its metrics for the headline column;
    the whole record for `report`."""
    ev = r.fields.get("evaluation")
    if r.passed and isinstance(ev, dict) and "metrics" not in row:
        row["metrics"] = ev.get("metrics", {})
        if whole:
            row["evaluation"] = ev


def overview(index: Index, cfg: IndexSettings) -> OverviewJson:
    """Every project on the three indexes with its newest version on each."""
    projects: dict[str, dict[str, str]] = {}
    for role, idx in _roles(cfg):
        for proj in index.projects(idx):
            rels = index.releases(idx, proj)
            if rels:
                projects.setdefault(proj, {})[role] = max(rels, key=_version_key)
    return {"projects": projects, "indexes": dict(_roles(cfg))}


def render_project(data: ProjectStatusJson) -> str:
    roles = list(data["indexes"])
    head = data.get("headline", "")
    header = ["version", *roles, *([head] if head else []), "tests", "promoted"]
    table = [header]
    for row in data["versions"]:
        metric = [f"{row['metrics'][head]:.4g}" if head in row.get("metrics", {}) else "—"] if head else []
        tests = ", ".join(f"{k} {v}" for k, v in sorted(row["tests"].items())) or "—"
        promoted = "; ".join(f"{p['to']} by {p['by']} at {p['at']}" + (" (FORCED)" if p["forced"] else "")
                             for p in row["promoted"]) or "—"
        if row.get("incomplete_promotions"):
            promoted += "; incomplete on " + ", ".join(row["incomplete_promotions"]) + " (run promote again)"
        table.append([row["version"], *("yes" if r in row["indexes"] else "—" for r in roles), *metric, tests, promoted])
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = [f"{data['name']}  ({data['shown']} of {data['total_versions']} versions; "
             + ", ".join(f"{r}={i}" for r, i in data["indexes"].items()) + ")"]
    for i, r in enumerate(table):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_overview(data: OverviewJson) -> str:
    roles = list(data["indexes"])
    table = [["project", *roles]]
    for proj, latest in sorted(data["projects"].items()):
        table.append([proj, *(latest.get(r, "—") for r in roles)])
    if len(table) == 1:
        return "no projects on " + ", ".join(data["indexes"].values())
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)
