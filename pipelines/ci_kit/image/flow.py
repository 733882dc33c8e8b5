"""The image step in order, for `ci-kit image` and `ci-kit run`.

Cheap failures first: the tools, the engine, the registry and its login and the tags are
checked before the index is asked anything; then the release, the base and the lock;
the context is filled and built; the image is smoke-tested; only then is anything
pushed. A failure anywhere pushes nothing.

The settings are read here and handed on as the values each part needs; the image-*
keys only through ImageConfig.from_settings (options.py).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_kit import console, runner
from ci_kit.errors import ImageError
from ci_kit.evidence import commit_of
from ci_kit.image import attest, context, engine, registry
from ci_kit.image.base import Base, BaseFacts, base_facts, resolve_base
from ci_kit.image.labels import image_labels
from ci_kit.image.lock import Locked, lock, write_lock
from ci_kit.image.options import ARTIFACTS_DIR, ImageConfig, ImageRequest
from ci_kit.image.result import ImageResult
from ci_kit.image.source import find_release, pick_wheel
from ci_kit.image.wheels import fetch_dependencies
from ci_kit.release import Spec

if TYPE_CHECKING:
    from ci_kit.config import Settings
    from ci_kit.index import Index
    from ci_kit.listing import Release, ReleaseFile


@dataclass(frozen=True)
class _Source:
    """What the image is made from, once found: the release, its wheel, the base."""
    spec: Spec
    rel: Release
    promoted: bool
    wheel: ReleaseFile
    base: Base
    facts: BaseFacts


def build_image(settings: Settings, spec: Spec, request: ImageRequest, index: Index | None = None) -> ImageResult:
    """Build, smoke-test and (when asked) push the image of `spec`; also writes image.json."""
    t0 = time.monotonic()
    config = ImageConfig.from_settings(settings)
    target, login, tags = _preflight(settings, config, request, spec)
    if index is None:
        from ci_kit.index import Index

        index = Index.from_settings(settings.index, login="when-asked")  # it only reads
    rel, promoted = find_release(index, spec, (settings.index.stable_index, settings.index.testing_index), settings.index.unstable_index,
                                 request.from_unstable)
    base = resolve_base(config.base, request.allow_unpinned_base)
    facts = base_facts(base)
    wheel = pick_wheel(rel, facts)
    console.step(f"image: {spec} from {rel.index}; wheel {wheel.basename} sha256 {wheel.sha256[:16]}…; "
                 f"base {base.ref} (Python {facts['full']}, {facts['machine']})")
    out_dir = settings.path(request.artifacts_dir or f"{ARTIFACTS_DIR}/{spec.name}-{spec.version}")
    out_dir.mkdir(parents=True, exist_ok=True)
    src = _Source(spec, rel, promoted, wheel, base, facts)
    with runner.temp_dir("ci-kit-image-") as tmp:  # a killed run's folder is swept by the next
        res = _build(settings, config, request, index, src, work=Path(tmp), out_dir=out_dir)
    engine.smoke(res.image_id, spec, config.smoke_command(request))
    if target:
        digest, pushed = registry.push(res.image_id, target, tags, login)
        res = replace(res, repository=target, tags=tags, digest=digest, pushed=pushed)
        console.step(f"image: pushed {', '.join(pushed)} → {target}@{digest}")
    (out_dir / "image.json").write_text(json.dumps(res.to_json(), indent=2, sort_keys=True) + "\n")
    console.step(f"image: {spec} done in {time.monotonic() - t0:.1f}s")
    return res


def build_image_for_run(settings: Settings, spec: Spec, index: Index | None = None) -> dict[str, Any]:
    """The image stage of `ci-kit run` (image = true): configuration only, no flags; it
    pushes when image-repository is set."""
    pushes = bool(ImageConfig.from_settings(settings).repository)
    return build_image(settings, spec, ImageRequest(push="" if pushes else None), index=index).to_json()


def _preflight(settings: Settings, config: ImageConfig, request: ImageRequest,
               spec: Spec) -> tuple[str | None, registry.RegistryLogin | None, list[str]]:
    """(push target, login, tags): everything that can fail before the index is asked."""
    target = config.push_target(request)
    attest.require_sbom_library()
    engine.require_engine()
    login = None
    if target:
        registry.require_registry(target)
        login = registry.registry_login(config.registry_user, settings.image.registry_password, target)
        if login is not None:
            registry.check_login(login)
    return target, login, engine.image_tags(spec.version, config.moving_tags(request))


def _build(settings: Settings, config: ImageConfig, request: ImageRequest, index: Index, src: _Source, *,
           work: Path, out_dir: Path) -> ImageResult:
    """Lock, attest, fill the context, build: the part that needs a temporary folder."""
    spec = src.spec
    locked = lock(spec, src.wheel, src.facts, work, index_url=settings.index.index_url, index_name=src.rel.index,
                  dependency_index_url=settings.test.dependency_index_url)
    lock_path = out_dir / "requirements.lock"
    lock_sha = write_lock(lock_path, locked, spec=spec, index_name=src.rel.index, base_ref=src.base.ref,
                          python=src.facts["python"])
    deps = [pin for pin in locked if pin.name != spec.name]
    console.step(f"image: locked {len(deps)} dependencies → {lock_path} (sha256 {lock_sha[:16]}…)")
    sbom_path = out_dir / "sbom.cdx.json"
    # The SBOM is written beside the fetch and the build and awaited before anything is
    # smoke-tested or pushed (a failed SBOM still stops the image).
    background = ThreadPoolExecutor(max_workers=1)
    sbom_job = background.submit(attest.sbom, locked, spec, engine.local_name(spec.name), sbom_path)
    background.shutdown(wait=False)
    audit = attest.audit(lock_path, out_dir / "audit.json", spec.name) if request.audit else None

    ctx = work / "context"
    entrypoint, deps_reused = _fill_context(ctx, index, src, locked, config.entrypoint)
    commit = request.commit or commit_of(index, src.rel, settings.index.trusted)
    labels = image_labels(spec, src.rel, src.wheel, src.base, promoted=src.promoted, lock_sha256=lock_sha, commit=commit,
                          project_dir=settings.project_dir, index_url=settings.index.index_url)
    text = context.render(base=src.base.ref, requirement=str(spec), has_deps=bool(deps), entrypoint=entrypoint, labels=labels)
    (ctx / "Dockerfile").write_text(text)
    (out_dir / "Dockerfile").write_text(text)

    local = f"{engine.local_name(spec.name)}:{engine.docker_tag(spec.version)}"
    console.step(f"image: docker build → {local}")
    image_id, layers = engine.build(ctx, local, request.no_cache)
    sbom_job.result()
    return ImageResult(requirement=str(spec), image=local, image_id=image_id, index=src.rel.index, promoted=src.promoted,
                       base=src.base.ref, lock=str(lock_path), lock_sha256=lock_sha, sbom=str(sbom_path),
                       dockerfile=str(out_dir / "Dockerfile"), wheel=src.wheel.basename, wheel_sha256=src.wheel.sha256,
                       labels=labels, layers=layers, audit=audit, dependencies_reused=deps_reused)


def _fill_context(ctx: Path, index: Index, src: _Source, locked: list[Locked], configured_entrypoint: str) -> tuple[list[str], bool]:
    """The dependency wheels, the release's wheel and its lock line into the context;
    (the image's entry point, whether the dependency wheels were reused)."""
    from ci_kit.dists import console_scripts, sha256_of

    (ctx / "app").mkdir(parents=True)
    deps_reused = fetch_dependencies([pin for pin in locked if pin.name != src.spec.name], src.base, ctx)
    app_wheel = index.download(src.wheel, ctx / "app")
    if sha256_of(app_wheel) != src.wheel.sha256:  # index.download checks too; this is the image's guarantee
        raise ImageError(f"{src.wheel.basename}: downloaded bytes differ from the index's sha256", "retry; check the index")
    me = next(pin for pin in locked if pin.name == src.spec.name)
    (ctx / "app" / "app.lock").write_text(me.line() + "\n")
    entrypoint = context.entrypoint_argv(configured_entrypoint, console_scripts(app_wheel), src.spec.name)
    return entrypoint, deps_reused
