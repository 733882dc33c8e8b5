"""`ci-kit image NAME==VERSION`: a pinned Docker image of a promoted release.

What it guarantees (issue 3, docs/image.md):

- Only promoted bytes: the release is taken from the stable or testing index; one that is
  only on the unstable index is refused unless `--from-unstable` (recorded in a label).
- Nothing is resolved inside the build: the release and its dependencies are locked from
  that index with `uv pip compile --generate-hashes` (the lock is kept as an artifact,
  with a CycloneDX SBOM beside it); the wheels are fetched and hash-checked before the
  build, and the image installs them with pip `--no-index --no-deps --require-hashes`.
  The product's line in the lock carries only the sha256 of its wheel on the index.
- The base is pinned by digest; a tag is refused unless `--allow-unpinned-base`, and even
  then it is resolved to its digest, which the image's FROM and labels use.
- Multi-stage, non-root, bytecode compiled, layers ordered so that a new version with the
  same dependencies rebuilds only the last small layer (context.py).
- Built images are smoke-tested (a built-in import check, then `--smoke CMD`) before
  anything is pushed; any failure pushes nothing.

Every failure of the engine, the registry, the base, the lock, the audit or the smoke test
is an ImageError (exit 11) with one line and a hint.

One module per thing the step owns, each small enough to read in one sitting:
`options` (what one build is asked, and the image-* settings, read in one place),
`source` (the release on the index, its wheel and commit), `base` (the base image and
what it says about itself), `lock` (uv's hash-locked requirements), `wheels` (the
dependency wheels, fetched outside the build and kept), `attest` (SBOM, pip-audit),
`context` (the build context and its Dockerfile), `labels`, `engine` (the docker CLI:
build, smoke), `registry` (login, push, digest), `cache` (ci-kit's cache on this
machine), `result`, and `flow`, which runs them in order.
"""

from ci_kit.image.flow import build_image, build_image_for_run
from ci_kit.image.options import ImageConfig, ImageRequest
from ci_kit.image.result import ImageResult

__all__ = ["ImageConfig", "ImageRequest", "ImageResult", "build_image", "build_image_for_run"]
