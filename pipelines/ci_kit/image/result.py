"""What one image build made: the result `--json` prints and image.json keeps.

docs/CONTRACT.md and docs/image.md name these keys; the front ends read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The keys `--output FILE` writes as KEY=VALUE (the rest are in --json and image.json).
OUTPUT_KEYS = ("requirement", "image", "image_id", "digest", "reference", "repository", "tags", "lock", "lock_sha256",
               "sbom", "base", "index")


@dataclass(frozen=True)
class ImageResult:
    requirement: str
    image: str          # local reference (tag) of the built image
    image_id: str
    index: str
    promoted: bool
    base: str           # digest reference used in FROM
    lock: str
    lock_sha256: str
    sbom: str
    dockerfile: str
    wheel: str
    wheel_sha256: str
    labels: dict[str, str]
    layers: list[str]
    repository: str = ""
    tags: list[str] = field(default_factory=list)
    digest: str = ""
    pushed: list[str] = field(default_factory=list)
    audit: dict[str, Any] | None = None
    dependencies_reused: bool = False  # the locked dependency wheels came from ci-kit's cache

    @property
    def reference(self) -> str:
        """What to pull: REGISTRY/REPO@DIGEST once pushed, else the local tag."""
        return f"{self.repository}@{self.digest}" if self.digest else self.image

    def to_json(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "image": self.image, "image_id": self.image_id,
                "index": self.index, "promoted": self.promoted, "base": self.base,
                "lock": self.lock, "lock_sha256": self.lock_sha256, "sbom": self.sbom, "dockerfile": self.dockerfile,
                "wheel": self.wheel, "wheel_sha256": self.wheel_sha256, "labels": self.labels, "layers": self.layers,
                "repository": self.repository, "tags": self.tags, "digest": self.digest, "pushed": self.pushed,
                "reference": self.reference, "audit": self.audit, "dependencies_reused": self.dependencies_reused}
