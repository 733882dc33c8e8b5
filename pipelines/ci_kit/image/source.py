"""The release an image is made from: where it is, which of its wheels, which commit.

Only promoted bytes go into an image: the release is looked for on the stable index, then
testing; the unstable index is used only when asked for, and the result says so (the
labels record it). The wheel must fit the base's Python and platform; the commit is the
one job 1 recorded for these bytes on the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ci_kit import console
from ci_kit.errors import ImageError, NotFound
from ci_kit.image.base import BaseFacts
from ci_kit.release import Spec

if TYPE_CHECKING:
    from ci_kit.index import Index
    from ci_kit.listing import Release, ReleaseFile


def find_release(index: Index, spec: Spec, promoted_on: Sequence[str], unstable: str,
                 from_unstable: bool) -> tuple[Release, bool]:
    """(release, promoted): the first of `promoted_on` that has it; `unstable` only when allowed."""
    for where in dict.fromkeys(promoted_on):
        rel = index.release(where, spec.name, spec.version)
        if rel is not None and rel.files:
            return rel, True
    try:
        rel = index.release(unstable, spec.name, spec.version)
    except NotFound:
        rel = None
    if rel is None or not rel.files:
        raise NotFound(f"{spec} is not on {', '.join(dict.fromkeys(promoted_on))} or {unstable}",
                       "check the name and version (job 1 prints NAME==VERSION) and the index settings")
    if not from_unstable:
        raise ImageError(f"{spec} is not promoted: it is only on {unstable}; nothing was built",
                         "promote it first (ci-kit test-and-promote), or pass --from-unstable for a throwaway image "
                         "(recorded in its labels)")
    console.step(f"image: {spec} is NOT promoted; building from {unstable} (--from-unstable)")
    return rel, False


def pick_wheel(rel: Release, facts: BaseFacts) -> ReleaseFile:
    """The release's wheel that best fits the base: a platform wheel for its Python and
    machine, else a pure one."""
    from packaging.utils import parse_wheel_filename

    wheels = [f for f in rel.files if f.kind == "wheel"]
    if not wheels:
        raise ImageError(f"{rel.name}=={rel.version} has no wheel on {rel.index}; the image installs wheels only",
                         "build a wheel in job 1 (ci-kit build makes sdist + wheel)")
    nodot = facts["python"].replace(".", "")

    def score(f: ReleaseFile) -> int:
        best = 0
        for t in parse_wheel_filename(f.basename)[3]:
            if t.platform == "any":
                best = max(best, 1)
            elif t.interpreter in (f"cp{nodot}", "py3", f"py{nodot}") and facts["machine"] in t.platform and "linux" in t.platform:
                best = max(best, 2)
        return best

    ranked = sorted(wheels, key=score, reverse=True)
    if score(ranked[0]) == 0:
        raise ImageError(f"no wheel of {rel.name}=={rel.version} fits Python {facts['python']} on linux {facts['machine']}: "
                         + ", ".join(f.basename for f in wheels), "build a wheel for the base image's Python and platform")
    return ranked[0]

