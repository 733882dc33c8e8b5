"""The hash-locked requirements of an image: the release and every dependency, resolved
once, before the build, by uv for the base's Python and platform.

Nothing is resolved inside the build: pip there installs exactly these files with
`--require-hashes`. The release's own line carries only the sha256 of its wheel on the
index (uv lists every file of the version), so no other bytes of it can get in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ci_kit import console, runner
from ci_kit.errors import ImageError
from ci_kit.image.base import BaseFacts
from ci_kit.release import Spec

if TYPE_CHECKING:
    from ci_kit.listing import ReleaseFile


@dataclass(frozen=True)
class Locked:
    name: str       # canonical
    version: str
    hashes: tuple[str, ...]
    index: str = ""  # simple URL it was resolved from (uv's index annotation); not written to the lock

    def line(self) -> str:
        return " \\\n    ".join([f"{self.name}=={self.version}", *(f"--hash=sha256:{h}" for h in self.hashes)])


def parse_lock(text: str) -> list[Locked]:
    """uv's requirements output: NAME==VERSION with --hash options, '# from URL' after each."""
    from packaging.utils import canonicalize_name

    out: list[Locked] = []
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        m = re.match(r"^\s*#\s*from\s+(\S+)", raw)
        if m and out:
            out[-1] = Locked(out[-1].name, out[-1].version, out[-1].hashes, m.group(1))
            continue
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if not m:
            raise ImageError(f"unexpected line in the lock: {line[:120]}", "this is a bug in ci-kit; please report it")
        hashes = tuple(sorted(set(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))))
        out.append(Locked(str(canonicalize_name(m.group(1))), m.group(2), hashes))
    return sorted(out, key=lambda pin: pin.name)


def lock(spec: Spec, wheel: ReleaseFile, facts: BaseFacts, work: Path, *, index_url: str, index_name: str,
         dependency_index_url: str) -> list[Locked]:
    """Resolve the release (from `index_name` on the devpi at `index_url`) and its
    dependencies with hashes; the release's line keeps only its wheel's sha256."""
    from ci_kit import envs

    src = f"{index_url}/{index_name}/+simple/"
    infile, outfile = work / "requirements.in", work / "uv-compile.txt"
    infile.write_text(f"{spec.name}=={spec.version}\n")
    platform = f"{facts['machine']}-unknown-linux-gnu" if facts.get("machine") in ("x86_64", "aarch64") else "linux"
    # uv prefers --extra-index-url over the dependency index, and with its default
    # first-index strategy takes a package only from the first index that has it: the
    # release (and any dependency the devpi index serves, e.g. through a root/pypi base)
    # come from there. The dependency index follows the same rule as `ci-kit test`.
    argv = [envs.uv_bin(), "pip", "compile", "--quiet", "--generate-hashes", "--no-header", "--no-annotate", "--emit-index-annotation",
            "--only-binary", ":all:", "--python-version", facts["python"], "--python-platform", platform,
            *envs.dependency_index_args(dependency_index_url), "--extra-index-url", src, "--refresh-package", spec.name,
            "--output-file", str(outfile), str(infile)]
    proc = runner.run(argv, env=envs.uv_env(), timeout=900)
    if proc.returncode != 0:
        console.detail(proc.stdout)
        raise ImageError(f"cannot resolve the dependencies of {spec} from {index_name}: {_uv_reason(proc.stdout)}",
                         f"every dependency needs a wheel for Python {facts['python']} on linux {facts['machine']} "
                         f"on {index_name} or {envs.dependency_index_name(dependency_index_url)} (dependency-index-url)")
    locked = parse_lock(outfile.read_text())
    me = next((pin for pin in locked if pin.name == spec.name), None)
    if me is None or me.version != spec.version:
        raise ImageError(f"the lock does not pin {spec} (got {me.name + '==' + me.version if me else 'nothing'})",
                         "this is a bug in ci-kit or the index; please report it")
    if wheel.sha256 not in me.hashes:
        raise ImageError(f"{index_name} serves {wheel.basename} with hashes {', '.join(h[:12] for h in me.hashes)} on its "
                         f"simple page but {wheel.sha256[:12]} in its JSON API", "check the devpi-server")
    return [Locked(pin.name, pin.version, (wheel.sha256,), pin.index) if pin.name == spec.name else pin for pin in locked]


def _uv_reason(output: str) -> str:
    """uv's own explanation of a failed resolution (its '×' line and the lines after it)."""
    return runner.telling_line(output, r"^(×|error:)", skip=r"^\s*\$ ", follow=3)


def write_lock(path: Path, locked: list[Locked], *, spec: Spec, index_name: str, base_ref: str, python: str) -> str:
    """The lock as an artifact, with a header saying how to use it; returns its sha256."""
    from ci_kit.dists import sha256_of

    header = (f"# Hash-locked requirements of {spec} for its image, made by ci-kit image.\n"
              f"# Source index: {index_name}. Target: Python {python} on {base_ref}.\n"
              f"# {spec.name} is pinned to the sha256 of its wheel on the index; install with\n"
              f"#   pip install --no-deps --require-hashes -r {path.name}\n")
    path.write_text(header + "".join(pin.line() + "\n" for pin in locked))
    return sha256_of(path)
