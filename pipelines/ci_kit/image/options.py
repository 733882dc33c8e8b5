"""What one image build is asked to do, and what is configured for every build.

Two inputs, one source of truth each. `ImageRequest` holds what one invocation asks for
(the flags of `ci-kit image`, turned into this by the CLI, which owns every flag; `ci-kit
run` asks for nothing). `ImageConfig` holds the image-* keys of the settings, and
`ImageConfig.from_settings` is the only place that reads them, so a request never copies
a setting into a second field that could disagree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ci_kit.errors import UsageError

if TYPE_CHECKING:
    from ci_kit.config import Settings

ARTIFACTS_DIR = "ci-kit-image"  # in the project: ARTIFACTS_DIR/NAME-VERSION/


@dataclass(frozen=True)
class ImageRequest:
    """One invocation's choices; each default means "as configured" or "off"."""

    push: str | None = None          # REGISTRY/REPO; "" for image-repository; None: build and smoke only
    tags: tuple[str, ...] = ()       # moving tags besides VERSION, added to image-tags
    from_unstable: bool = False      # allow a release that is not promoted (recorded in a label)
    allow_unpinned_base: bool = False
    smoke: str | None = None         # overrides image-smoke when given ("" runs no command)
    commit: str = ""                 # default: the commit job 1 recorded on the index
    artifacts_dir: str = ""          # default: ARTIFACTS_DIR/NAME-VERSION in the project
    audit: bool = False
    no_cache: bool = False


@dataclass(frozen=True)
class ImageConfig:
    """The image-* keys (and the registry user) of the settings."""

    base: str
    entrypoint: str
    smoke: str
    repository: str
    tags: tuple[str, ...]
    registry_user: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageConfig:
        """The one place that reads the image keys of the settings."""
        img = settings.image
        return cls(base=img.image_base, entrypoint=img.image_entrypoint, smoke=img.image_smoke,
                   repository=img.image_repository, tags=tuple(img.image_tags), registry_user=img.registry_user)

    def push_target(self, request: ImageRequest) -> str | None:
        """REGISTRY/REPO to push to, or None; a bare --push means image-repository."""
        if request.push != "":
            return request.push
        if not self.repository:
            raise UsageError("--push without a repository and no image-repository configured",
                             "pass --push REGISTRY/REPO or set image-repository in [tool.ci-kit]")
        return self.repository

    def smoke_command(self, request: ImageRequest) -> str:
        return self.smoke if request.smoke is None else request.smoke

    def moving_tags(self, request: ImageRequest) -> list[str]:
        return [*self.tags, *request.tags]
