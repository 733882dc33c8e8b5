"""The registry an image is pushed to: is it there, the login, the push and its digest.

Everything that can be checked before a build is (the registry answers, the login is
accepted), so a wrong name or password costs no build. A push gives every tag one
digest, or fails.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ci_kit import console
from ci_kit.errors import ImageError, UsageError
from ci_kit.image.engine import docker, last_line

_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._:-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+$")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def registry_of(repository: str) -> str:
    """The registry host of REGISTRY/REPO, as docker reads it (no host: Docker Hub)."""
    first = repository.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") and "/" in repository else "docker.io"


def require_registry(repository: str) -> None:
    """Fail before building when the name is not REGISTRY/REPO or the registry does not answer at all."""
    if not _REPOSITORY.match(repository):
        raise UsageError(f"--push {repository!r} is not a REGISTRY/REPO name (lower case, e.g. 127.0.0.1:5000/team/churn-model)",
                         "name the registry and the repository, without a tag")
    registry = registry_of(repository)
    if registry == "docker.io":
        return  # docker's own credentials and endpoints; nothing to probe here
    problems = []
    for scheme in ("https", "http"):
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{scheme}://{registry}/v2/", timeout=10):
                return
        except urllib.error.HTTPError:
            return  # it answered (401 asks for a login: docker has it or will say so)
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"{scheme}: {getattr(exc, 'reason', exc)}")
    raise ImageError(f"the registry {registry} is not reachable ({'; '.join(map(str, problems))}); nothing was built or pushed",
                     "start it (scripts/start-docker starts one on 127.0.0.1:5000) or fix --push REGISTRY/REPO")


@dataclass(frozen=True)
class RegistryLogin:
    """registry-user and its password (CI_KIT_REGISTRY_PASSWORD[_FILE]): handed to the
    engine per request through the Docker SDK, so unlike `docker login` nothing is written
    to a docker config file, and the password is never on a command line."""
    registry: str
    username: str
    password: str

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "serveraddress": self.registry}


def registry_login(user: str, password: str | None, repository: str) -> RegistryLogin | None:
    """The login for repository's registry, or None for docker's own (docker login, credential helpers)."""
    if not user and not password:
        return None
    if not (user and password):
        raise UsageError("a registry login needs both registry-user and a password",
                         "set CI_KIT_REGISTRY_USER and CI_KIT_REGISTRY_PASSWORD (or CI_KIT_REGISTRY_PASSWORD_FILE), or neither")
    console.add_secret(password)
    return RegistryLogin(registry_of(repository), user, password)


def _docker_api() -> Any:
    try:
        import docker as sdk  # the Docker SDK for Python: only for logins, which the CLI would write to a file
    except ImportError:
        raise ImageError("the Docker SDK for Python is not installed (a registry login needs it)",
                         "pip install 'ci-kit[image]'") from None
    try:
        return sdk.from_env().api
    except sdk.errors.DockerException as exc:
        raise ImageError(f"cannot talk to the Docker engine: {exc}", "start it (scripts/start-docker here) or set DOCKER_HOST") from None


def check_login(login: RegistryLogin) -> None:
    """Ask the registry (through the engine) before anything is built, so a wrong password
    costs no build."""
    import docker as sdk
    import requests

    api = _docker_api()
    try:
        api.login(username=login.username, password=login.password, registry=login.registry, reauth=True)
    except sdk.errors.APIError as exc:
        raise ImageError(f"the registry {login.registry} refused the login of {login.username!r}: "
                         f"{console.mask(str(exc.explanation or exc))[:300]}; nothing was built or pushed",
                         "check registry-user and CI_KIT_REGISTRY_PASSWORD (or CI_KIT_REGISTRY_PASSWORD_FILE)") from None
    except (sdk.errors.DockerException, requests.RequestException) as exc:
        raise ImageError(f"cannot log in to {login.registry} through the Docker engine: {console.mask(str(exc))[:300]}; "
                         "nothing was built or pushed", "check the engine (docker info) and DOCKER_HOST") from None


def _push_with_login(ref: str, login: RegistryLogin) -> str:
    import docker as sdk
    import requests

    repository, tag = ref.rsplit(":", 1)
    console.step(f"$ docker push {ref}  (through the engine's API, as {login.username})")
    digest, hint = "", "check the registry and registry-user / CI_KIT_REGISTRY_PASSWORD"
    try:
        for event in _docker_api().push(repository, tag=tag, auth_config=login.auth_config(), stream=True, decode=True):
            if event.get("error"):
                raise ImageError(f"docker push {ref} failed: {console.mask(str(event['error']))[:300]}", hint)
            digest = (event.get("aux") or {}).get("Digest") or digest
    except (sdk.errors.DockerException, requests.RequestException) as exc:
        raise ImageError(f"docker push {ref} failed: {console.mask(str(exc))[:300]}", hint) from None
    return str(digest)


def _push_with_cli(ref: str) -> str:
    proc = docker("push", ref, timeout=3600)
    if proc.returncode != 0:
        console.detail(proc.stdout)
        raise ImageError(f"docker push {ref} failed: {last_line(proc.stdout)}",
                         "check the registry and your login (docker login REGISTRY, or registry-user "
                         "with CI_KIT_REGISTRY_PASSWORD)")
    m = re.search(r"digest: (sha256:[0-9a-f]{64})", proc.stdout)
    return m.group(1) if m else ""


def push(image_id: str, repository: str, tags: list[str], login: RegistryLogin | None = None) -> tuple[str, list[str]]:
    """Tag and push; (the one digest all tags got, the pushed references)."""
    digests: dict[str, str] = {}
    for tag in tags:
        ref = f"{repository}:{tag}"
        if docker("tag", image_id, ref, show=False).returncode != 0:
            raise ImageError(f"cannot tag the image as {ref}", "check the repository name")
    for tag in tags:
        ref = f"{repository}:{tag}"
        digest = _push_with_login(ref, login) if login is not None else _push_with_cli(ref)
        if not _DIGEST.fullmatch(digest):
            raise ImageError(f"docker push {ref} gave no digest", "check the registry")
        digests[tag] = digest
    if len(set(digests.values())) != 1:
        raise ImageError(f"the tags were pushed with different digests: {digests}", "check the registry")
    return next(iter(digests.values())), [f"{repository}:{t}" for t in tags]
