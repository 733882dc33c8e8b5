"""What went into an image, said for others to check: a CycloneDX SBOM of the lock, and
(on request) pip-audit's verdict on it.

Both read the lock, not the image: the lock names every file the image installs, with
its sha256, and it exists before the build, so the audit can refuse before anything is
built and the SBOM can be written while the build runs.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ci_kit import console, runner
from ci_kit.errors import ImageError
from ci_kit.image.cache import write_atomically
from ci_kit.image.engine import last_line
from ci_kit.image.lock import Locked
from ci_kit.release import Spec

VULN_SERVICE = "https://pypi.org/pypi"  # pip-audit's default service: PyPI's JSON API


def require_sbom_library() -> None:
    """The SBOM is written beside the build: say it cannot be before building."""
    import importlib.util

    if importlib.util.find_spec("cyclonedx") is None:
        raise ImageError("cyclonedx-python-lib is not installed (the image's SBOM needs it); nothing was built",
                         "pip install 'ci-kit[image]'")


def sbom(locked: list[Locked], spec: Spec, image: str, out: Path) -> None:
    """A CycloneDX SBOM of the image's Python environment: one component per locked file,
    with its purl and the sha256 the lock pins. Made in-process with cyclonedx-python-lib
    (the library under cyclonedx-bom): the `cyclonedx-py requirements` command reads the
    same lock but spends about 2 s starting up, which a rebuild for a new version cannot
    afford. Reproducible: no serial number, no timestamp."""
    import warnings

    try:
        from cyclonedx.model import HashAlgorithm, HashType, Property
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output import make_outputter
        from cyclonedx.schema import OutputFormat, SchemaVersion
        from packageurl import PackageURL
    except ImportError:
        raise ImageError("cyclonedx-python-lib is not installed (the SBOM needs it)", "pip install 'ci-kit[image]'") from None
    bom = Bom()
    root = Component(type=ComponentType.CONTAINER, name=image, version=spec.version, bom_ref=f"image:{image}")
    bom.metadata.component = root
    bom.metadata.properties.add(Property(name="cdx:reproducible", value="true"))
    parts = []
    for pin in locked:
        parts.append(Component(type=ComponentType.LIBRARY, name=pin.name, version=pin.version, bom_ref=f"{pin.name}=={pin.version}",
                               purl=PackageURL("pypi", name=pin.name, version=pin.version),
                               hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in pin.hashes]))
        bom.components.add(parts[-1])
    bom.register_dependency(root, parts)
    bom.serial_number = None  # type: ignore[assignment]
    bom.metadata.timestamp = None  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2)
    write_atomically(out, text + "\n")


def _tool(module: str, script: str) -> list[str]:
    """How to run a tool of ci-kit[image]: as a module of this Python, else its script."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-m", module]
    beside = Path(sys.executable).parent / script
    found = shutil.which(script) or (str(beside) if beside.exists() else "")
    if not found:
        raise ImageError(f"{script} is not installed", "pip install 'ci-kit[image]'")
    return [found]


def _probe_vuln_service() -> str:
    """'' when PyPI's JSON API answers for a project it certainly has, else why not."""
    try:
        with urllib.request.urlopen(f"{VULN_SERVICE}/pip/json", timeout=20) as resp:
            return "" if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} for {VULN_SERVICE}/pip/json"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def audit(lock_path: Path, out: Path, own: str) -> dict[str, Any]:
    """pip-audit of the lock against PyPI's vulnerability data. Refuses on a finding, and says
    plainly when the service cannot be reached: an audit that did not run is not a pass."""
    hint = "run without --audit where the service is out of reach, or allow access to pypi.org"
    why = _probe_vuln_service()
    if why:
        raise ImageError(f"audit: the vulnerability service (PyPI's JSON API at {VULN_SERVICE}, used by pip-audit) cannot "
                         f"be reached: {why}; the audit did not run and nothing was built or pushed", hint)
    proc = runner.run([*_tool("pip_audit", "pip-audit"), "--requirement", str(lock_path), "--require-hashes", "--no-deps",
                       "--disable-pip", "--progress-spinner", "off", "--format", "json", "--output", str(out)], timeout=900)
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        console.detail(proc.stdout)
        raise ImageError(f"audit: pip-audit failed: {last_line(proc.stdout)}", "see pip-audit's output above") from None
    deps = data.get("dependencies", [])
    found = [f"{d['name']}=={d['version']} ({', '.join(v['id'] for v in d.get('vulns', []))})" for d in deps if d.get("vulns")]
    skipped = [d["name"] for d in deps if d.get("skip_reason")]
    others = [d["name"] for d in deps if d["name"] != own]
    if others and set(others) <= set(skipped):
        raise ImageError(f"audit: the vulnerability service (PyPI's JSON API, used by pip-audit) could not be used: it "
                         f"answered for none of the locked dependencies ({', '.join(others)}); the audit did not run "
                         "and nothing was built or pushed", hint)
    if found:
        raise ImageError(f"audit: {len(found)} dependencies with known vulnerabilities: {'; '.join(found)}",
                         f"upgrade them in the product and release again (report: {out})")
    console.step(f"audit: no known vulnerabilities in {len(deps) - len(skipped)} audited dependencies"
                 + (f" (not on PyPI, not audited: {', '.join(skipped)})" if skipped else ""))
    return {"report": str(out), "vulnerable": found, "skipped": skipped}
