"""What the index lists, as ci-kit reads it: a release, its files and the records attached
to them, each with the index's own log (who, when). Apart from index.py, which fetches
them, so that the rules above (evidence, gate, claims) and the fake index of the unit
tests build the same objects from devpi's JSON without an HTTP session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ci_kit.errors import Collision

if TYPE_CHECKING:
    from ci_kit.contract import FileKind


@dataclass(frozen=True)
class ReleaseFile:
    basename: str
    url: str
    sha256: str
    log: tuple[dict[str, Any], ...] = ()

    @property
    def kind(self) -> FileKind:
        return "wheel" if self.basename.endswith(".whl") else "sdist"

    @property
    def who(self) -> str | None:
        return uploader(self.log)


@dataclass(frozen=True)
class ResultLink:
    """A record attached to a release file. `who` is the uploader the index itself logged
    (None for anonymous): the only identity of a record that its content cannot forge."""

    url: str
    for_url: str
    who: str | None = None
    sha256: str = ""  # of the record's bytes, as the index computed it
    log: tuple[dict[str, Any], ...] = ()  # the index's own log of it (who, when): claims.py reads its time


def uploader(log: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str | None:
    """Who the index says uploaded a file or record: the first upload entry of its log."""
    for entry in log:
        if isinstance(entry, dict) and entry.get("what") == "upload":
            who = entry.get("who")
            return who if isinstance(who, str) and who else None
    return None


@dataclass
class Release:
    index: str
    name: str
    version: str
    files: list[ReleaseFile] = field(default_factory=list)
    results: list[ResultLink] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def file(self, basename: str) -> ReleaseFile | None:
        return next((f for f in self.files if f.basename == basename), None)

    def results_for(self, f: ReleaseFile) -> list[ResultLink]:
        return [r for r in self.results if r.for_url == f.url]

    @property
    def hashes(self) -> dict[str, str]:
        """basename -> sha256 of every file, as the index lists them."""
        return {f.basename: f.sha256 for f in self.files}


def unlike(release: Release | None, expected: Mapping[str, str], where: str) -> list[str]:
    """Each expected file (filename -> sha256) that release lacks or holds with other bytes."""
    return [f"{fn} on {where} is {there.sha256 if there else 'missing'}, expected {sha}"
            for fn, sha in expected.items()
            if (there := release.file(fn) if release else None) is None or there.sha256 != sha]


def refuse_clashes(release: Release | None, expected: Mapping[str, str], ours: str, hint: str) -> None:
    """Refuse, before anything is written, files (filename -> sha256) that `release` holds
    under the same name with other bytes: one name must always mean one file. `ours` names
    where `expected` comes from ("this build", the source index)."""
    clashes = [f"{name}: {release.index} has sha256 {there.sha256}, {ours} has {sha}"
               for name, sha in expected.items() if release and (there := release.file(name)) and there.sha256 != sha]
    if release and clashes:
        raise Collision(f"{release.name}=={release.version} is already on {release.index} with different bytes: "
                        + "; ".join(clashes), hint)


def parse_release(index: str, data: dict[str, Any]) -> Release:
    rel = Release(index=index, name=data.get("name", ""), version=data.get("version", ""),
                  metadata={k: v for k, v in data.items() if k != "+links"})
    for link in data.get("+links", []):
        if link.get("rel") == "releasefile":
            sha = (link.get("hashes") or {}).get("sha256") or link.get("hash_spec", "").partition("=")[2]
            rel.files.append(ReleaseFile(link["href"].rsplit("/", 1)[-1], link["href"], sha, tuple(link.get("log", []))))
        elif link.get("rel") == "toxresult":
            log = tuple(link.get("log") or ())
            rel.results.append(ResultLink(link["href"], link.get("for_href", ""), uploader(log),
                                          (link.get("hashes") or {}).get("sha256", ""), log))
    return rel
