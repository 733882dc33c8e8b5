"""The one settings object, resolved once, in frozen groups (settings.index, .build, .test,
.server, .image, .run), one per stage, each made from its keys in keys.KEYS.

Order (later wins): built-in defaults < `[tool.ci-kit]` in the product's pyproject.toml
< `CI_KIT_*` environment variables < command-line flags.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ci_kit.errors import UsageError
from ci_kit.keys import (
    KEY_BY_NAME,
    KEYS,
    KEYS_BY_GROUP,
    MIN_SECRET_LENGTH,
    OTHER_ENV,
    SANDBOX_MODES,
    SECRET_ENV,
    Key,
    MetadataCheck,
    PromoteTo,
    current_python,
    markdown_table,
    redact,
)

__all__ = ["KEYS", "KEYS_BY_GROUP", "SANDBOX_MODES", "Settings", "load", "markdown_table", "redact"]


@dataclass(frozen=True)
class Secret:
    """Where one secret comes from: its variable in the environment given to load(), else
    a file. Read on demand by `read()`, so that a settings object answers for the
    environment it was made from, not for whatever os.environ is later; never printed."""

    variable: str
    value: str = field(default="", repr=False)  # the variable's value in load()'s environment
    file: str = ""
    what: str = "the password file"
    hint: str = ""

    def read(self) -> str | None:
        return _secret({self.variable: self.value} if self.value else {}, self.variable, self.file, self.what, self.hint)


_SECRET: Any = {"secret": True}  # field metadata: not a configuration key (see key_fields)


@dataclass(frozen=True)
class IndexSettings:
    """Where the releases live and who may write the records the gate counts."""

    index_url: str
    user: str
    unstable_index: str
    testing_index: str
    stable_index: str
    promote_to: PromoteTo
    trusted_uploaders: tuple[str, ...]
    index_timeout: int
    primary_url: str  # scale-out (docs/scale.md)
    replica_wait: int
    credential: Secret = field(default_factory=lambda: Secret("CI_KIT_PASSWORD"), repr=False, compare=False, metadata=_SECRET)

    @property
    def password(self) -> str | None:
        """The devpi password (or token), read on demand from CI_KIT_PASSWORD or the password file; never stored."""
        return self.credential.read()

    @property
    def trusted(self) -> frozenset[str]:
        """Whose records count: the configured user and the trusted uploaders."""
        return frozenset([self.user, *self.trusted_uploaders])


@dataclass(frozen=True)
class BuildSettings:
    """What `ci-kit build` writes where, and how strictly it checks metadata."""

    dist_dir: str
    metadata_check: MetadataCheck


@dataclass(frozen=True)
class ProductTestSettings:
    """How the product's tests run: on which Pythons, with what, seeing what."""

    python_versions: tuple[str, ...]
    test_command: str
    test_extras: tuple[str, ...]
    test_groups: tuple[str, ...]
    test_requirements: tuple[str, ...]
    require_junit: bool
    tox_env: str
    dependency_index_url: str
    pass_env: tuple[str, ...]
    results_dir: str
    evaluate_command: str


@dataclass(frozen=True)
class QualitySettings:
    """The quality gate's rules (`[tool.ci-kit.quality]`, docs/quality.md), read by promote,
    status and report."""

    rules: dict[str, Any]


@dataclass(frozen=True)
class ServerSettings:
    """The embedded devpi-server of `ci-kit server`."""

    server_dir: str
    server_port: int
    server_storage: str  # scale-out (docs/scale.md)
    server_secret_file: str
    storage_credential: Secret = field(default_factory=lambda: Secret("CI_KIT_SERVER_STORAGE_PASSWORD"), repr=False,
                                       compare=False, metadata=_SECRET)

    @property
    def storage_password(self) -> str | None:
        """The database password of server-storage: from CI_KIT_SERVER_STORAGE_PASSWORD only; never stored."""
        return self.storage_credential.read()


@dataclass(frozen=True)
class ImageSettings:
    """The pinned image of `ci-kit image`, and the registry it goes to."""

    image_base: str
    image_entrypoint: str
    image_smoke: str
    image_repository: str
    image_tags: tuple[str, ...]
    registry_user: str
    registry_credential: Secret = field(default_factory=lambda: Secret("CI_KIT_REGISTRY_PASSWORD"), repr=False,
                                        compare=False, metadata=_SECRET)

    @property
    def registry_password(self) -> str | None:
        """The image registry's password, read on demand like the index's; never stored."""
        return self.registry_credential.read()


@dataclass(frozen=True)
class RunSettings:
    """What `ci-kit run` does besides the two jobs (the key `image` is settings.run.image:
    whether to build the image; settings.image holds the image's own settings)."""

    image: bool


GROUPS: dict[str, type] = {"index": IndexSettings, "build": BuildSettings, "test": ProductTestSettings,
                           "quality": QualitySettings, "server": ServerSettings, "image": ImageSettings, "run": RunSettings}


def key_fields(group: type) -> list[str]:
    """The fields of a group that are configuration keys (not its secrets' sources)."""
    return [f.name for f in fields(group) if not f.metadata.get("secret")]


@dataclass(frozen=True)
class Settings:
    """The one settings object: each stage takes the group it reads (settings.test ...)."""

    project_dir: Path
    index: IndexSettings
    build: BuildSettings
    test: ProductTestSettings
    quality: QualitySettings
    server: ServerSettings
    image: ImageSettings
    run: RunSettings
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def password_files(self) -> list[str]:
        """Files holding a secret (devpi's, then the registry's): the product's code must not see them."""
        return [p for p in (self.index.credential.file, self.image.registry_credential.file) if p]

    def path(self, value: str) -> Path:
        """A configured folder (dist-dir, results-dir ...), relative to the project."""
        return under(self.project_dir, value)

    def value(self, key: Key) -> Any:
        """A key's value, as the table declares it (a list shown as a list)."""
        v = getattr(getattr(self, key.group), key.attr)
        return list(v) if isinstance(v, tuple) else v

    def describe(self) -> dict[str, Any]:
        """Every key with its value and where it came from (for `ci-kit config`)."""
        return {k.name: {"value": self.value(k), "source": self.sources.get(k.name, "default")} for k in KEYS}



def under(project_dir: Path, value: str) -> Path:
    """value as a path: ~ expanded, relative ones taken from the project's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else project_dir / p


def _secret(environ: Mapping[str, str], variable: str, path: str, what: str, hint: str) -> str | None:
    """A secret from its environment variable, else from the file at path; None if neither.

    A secret shorter than MIN_SECRET_LENGTH is refused: masking it would replace ordinary
    words in logs, JUnit and KEY=VALUE outputs (`dev1` inside a version string)."""
    value = environ.get(variable)
    source = variable
    if not value and path:
        try:
            value = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror}", hint) from None
        except UnicodeDecodeError:
            raise UsageError(f"{what} {path} is not UTF-8 text", "write the secret as one line of UTF-8 text") from None
        source = path
    if value and len(value) < MIN_SECRET_LENGTH:
        raise UsageError(f"the secret in {source} is shorter than {MIN_SECRET_LENGTH} characters",
                         "use a longer password: short ones cannot be masked in logs and outputs without corrupting them")
    return value or None


def _coerce(key: Key, value: Any, source: str) -> Any:  # noqa: PLR0912 - a branch per kind of key, read top to bottom
    """Check the type of a value from TOML, the environment (always text) or a flag."""
    def bad(expected: str) -> UsageError:
        shown = redact(value) if isinstance(value, str) else value
        return UsageError(f"{source}: `{key.name}` must be {expected}, got {shown!r}",
                          "see the configuration table in README (ci-kit config --table)")

    from_text = isinstance(value, str) and not source.endswith("[tool.ci-kit]")
    if key.kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif key.kind == "int":
        if from_text:
            if not (value.strip().isascii() and value.strip().isdigit()):  # isdigit alone admits '²'
                raise bad("an integer")
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
    elif key.kind == "bool":
        if from_text:
            low = value.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no"):
                raise bad("true or false")
            value = low in ("1", "true", "yes")
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key.kind == "list":
        if from_text:
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise bad("a JSON list or comma-separated words") from None
            else:
                value = [w.strip() for w in text.split(",") if w.strip()]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise bad("a list of strings")
    elif key.kind == "table":
        try:
            value = json.loads(value) if from_text else value
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise bad("a table (a JSON object in the environment or a flag)")
    if key.check is not None:
        problem = key.check(value)
        if problem and key.kind == "table":  # the table itself would be too long to show: the problem names where
            raise UsageError(f"{source}: `{key.name}` must be {problem}", "see docs/quality.md")
        if problem:
            raise bad(problem)
    return value


def read_pyproject(project_dir: Path) -> tuple[dict[str, Any], Path | None]:
    path = project_dir / "pyproject.toml"
    if not path.is_file():
        return {}, None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", "fix the file, then run again") from None
    table = data.get("tool", {}).get("ci-kit", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.ci-kit] must be a table", "see README, Configuration")
    return table, path


def load(project_dir: Path | str = ".", flags: Mapping[str, Any] | None = None,  # noqa: PLR0912 - the four layers in order, in one place
         environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the four layers; raise UsageError naming key, source and accepted values."""
    project_dir = Path(project_dir).resolve()
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {k.name: k.default for k in KEYS}
    sources: dict[str, str] = {}

    table, pyproject = read_pyproject(project_dir)
    for name, value in table.items():
        key = KEY_BY_NAME.get(name)
        if key is None:
            raise UsageError(f"{pyproject} [tool.ci-kit]: unknown key `{name}`",
                             "accepted keys: " + ", ".join(k.name for k in KEYS))
        values[name] = _coerce(key, value, f"{pyproject} [tool.ci-kit]")
        sources[name] = "pyproject.toml"

    if environ.get("CI_KIT_SANDBOX", "") not in ("", *SANDBOX_MODES):
        raise UsageError(f"environment: CI_KIT_SANDBOX must be one of {', '.join(SANDBOX_MODES)}, got {environ['CI_KIT_SANDBOX']!r}",
                         "leave it unset (auto) unless the machine forbids namespaces; see docs/security.md")
    env_keys = {k.env: k for k in KEYS}
    for var, value in environ.items():
        if not var.startswith("CI_KIT_") or var in OTHER_ENV:
            continue
        if value == "":
            continue  # empty means "not set": CI front ends cannot leave out an empty input
        key = env_keys.get(var)
        if key is None:
            raise UsageError(f"environment: unknown variable {var}",
                             "accepted: " + ", ".join(sorted(list(env_keys) + sorted(OTHER_ENV))))
        values[key.name] = _coerce(key, value, f"environment {var}")
        sources[key.name] = f"environment {var}"

    for name, value in (flags or {}).items():
        if value is None or name not in KEY_BY_NAME:
            continue
        key = KEY_BY_NAME[name]
        values[name] = _coerce(key, value, f"flag --{name}")
        sources[name] = f"flag --{name}"

    user = values["user"]
    for which in ("unstable", "testing", "stable"):
        if not values[f"{which}-index"]:
            values[f"{which}-index"] = f"{user}/{which}"
    for which in ("testing", "stable"):
        if values[f"{which}-index"] == values["unstable-index"]:
            raise UsageError(f"{which}-index and unstable-index are both {values['unstable-index']}",
                             "promotion copies from the unstable index to another one: set testing-index/stable-index to a non-volatile index of its own")
    if values["python-versions"] is None:
        values["python-versions"] = [current_python()]
    if "server-port" in sources and "index-url" not in sources:  # the embedded server is the index then
        values["index-url"] = f"http://127.0.0.1:{values['server-port']}"
        sources["index-url"] = f"{sources['server-port']} (server-port)"
    values["index-url"] = values["index-url"].rstrip("/")
    return Settings(project_dir=project_dir, sources=sources, **_groups(values, _secrets(flags or {}, environ)))


def _secrets(flags: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Secret]:
    """Where each secret comes from, taken from the environment given to load() now."""
    env = {k: environ[k] for k in SECRET_ENV if environ.get(k)}
    return {
        "credential": Secret("CI_KIT_PASSWORD", env.get("CI_KIT_PASSWORD", ""),
                             flags.get("password-file") or env.get("CI_KIT_PASSWORD_FILE", ""), "the password file",
                             "pass a readable file with --password-file or set CI_KIT_PASSWORD"),
        "storage_credential": Secret("CI_KIT_SERVER_STORAGE_PASSWORD", env.get("CI_KIT_SERVER_STORAGE_PASSWORD", ""), "",
                                     "", "set CI_KIT_SERVER_STORAGE_PASSWORD"),
        "registry_credential": Secret("CI_KIT_REGISTRY_PASSWORD", env.get("CI_KIT_REGISTRY_PASSWORD", ""),
                                      env.get("CI_KIT_REGISTRY_PASSWORD_FILE", ""), "the registry password file",
                                      "point CI_KIT_REGISTRY_PASSWORD_FILE at a readable file or set CI_KIT_REGISTRY_PASSWORD"),
    }


def _groups(values: dict[str, Any], secrets: dict[str, Secret]) -> dict[str, Any]:
    """Each group made from its keys in KEYS (and its secret's source)."""
    groups: dict[str, Any] = {}
    for name, cls in GROUPS.items():
        kwargs = {k.attr: _frozen(values[k.name]) for k in KEYS if k.group == name}
        kwargs.update({f.name: secrets[f.name] for f in fields(cls) if f.metadata.get("secret")})
        groups[name] = cls(**kwargs)
    return groups


def _frozen(value: Any) -> Any:
    """Lists become tuples: a frozen group must not change under a stage's feet."""
    return tuple(value) if isinstance(value, list) else value


# The groups declare their fields for mypy; the table is the truth: they must agree exactly
# (tests/test_docs.py checks it too, with the names of what differs).
assert all(sorted(key_fields(c)) == sorted(k.attr for k in KEYS if k.group == g) for g, c in GROUPS.items())
