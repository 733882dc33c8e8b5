"""The one settings object, resolved once.

Order (later wins): built-in defaults < `[tool.ci-kit]` in the product's pyproject.toml
< `CI_KIT_*` environment variables < command-line flags. Every key is declared once in
KEYS; README's configuration table is generated from the same declarations
(`ci-kit config --table`), so docs and code cannot drift.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from ci_kit.errors import UsageError

_PYVER = re.compile(r"^3\.\d{1,2}$")
_INDEX = re.compile(r"^[\w.@-]+/[\w.@-]+$")
_USERINFO = re.compile(r"(^[a-zA-Z][\w+.-]*://)[^/?#\s]*@")
SANDBOX_MODES = ("auto", "user", "namespace", "none")  # CI_KIT_SANDBOX, the operator's choice (sandbox.py)
MIN_SECRET_LENGTH = 8  # shorter secrets cannot be masked without corrupting ordinary output


@dataclass(frozen=True)
class Key:
    name: str
    kind: str  # "str", "list", "bool", "int"
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None  # returns a problem or None

    @property
    def env(self) -> str:
        return "CI_KIT_" + self.name.upper().replace("-", "_")

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")


def _url(v: str, root: bool = True) -> str | None:
    """An http(s) URL with a host and a valid port, never with credentials (they would be
    printed, handed to children and sent as Basic auth; secrets come from CI_KIT_PASSWORD
    or a file); with root, the server's root URL (the index is a key of its own)."""
    from urllib.parse import urlsplit

    if _USERINFO.search(v):
        return "a URL without user:password@ (the password comes from CI_KIT_PASSWORD or --password-file)"
    if not re.match(r"^https?://[^\s/]+", v):
        return "a URL starting with http:// or https://"
    try:
        parts = urlsplit(v)
        port = parts.port  # parsing the port is what raises
    except ValueError as exc:
        return f"a valid URL ({exc})"
    if port is not None and not 0 < port < 65536:
        return "a URL with a port between 1 and 65535"
    if not parts.hostname:
        return "a URL with a host"
    if root and (parts.path.strip("/") or parts.query or parts.fragment):
        return "the server's root URL, without a path (name indexes with unstable-index, testing-index, stable-index)"
    return None


def _test_command(v: str) -> str | None:
    import shlex

    try:
        words = shlex.split(v)
    except ValueError as exc:
        return f"a command in shell words ({exc})"
    return None if words else "a command, e.g. pytest (it is empty)"


def redact(text: str) -> str:
    """A URL's userinfo (and a storage spec's password=) replaced by ****, for messages
    that show a rejected value."""
    return re.sub(r"(password\s*=)[^,\s]*", r"\1****", _USERINFO.sub(r"\1****@", text))


def _pass_env(v: list[str]) -> str | None:
    bad = [x for x in v if not x.strip() or x.upper().startswith("CI_KIT_")]
    return f"variable names or fnmatch globs, never CI_KIT_* (got {', '.join(map(repr, bad))})" if bad else None


def _index(v: str) -> str | None:
    return None if (not v or _INDEX.match(v)) else "devpi's USER/INDEX form, e.g. ci/stable"


def _pyvers(v: list[str]) -> str | None:
    bad = [x for x in v if not _PYVER.match(x)]
    twice = sorted({x for x in v if v.count(x) > 1})
    if twice and not bad:
        return f"a list without repeats ({', '.join(twice)} given more than once)"
    if bad or not v:
        return "a non-empty list of MAJOR.MINOR versions such as 3.11 (got %s)" % (", ".join(bad) or "nothing")
    return None


def _promote_to(v: str) -> str | None:
    return None if v in ("auto", "stable", "testing") else "one of auto, stable, testing"


def _positive(v: int) -> str | None:
    return None if 0 < v < 65536 else "a port number between 1 and 65535"


def _seconds(v: int) -> str | None:
    return None if 1 <= v <= 3600 else "a number of seconds between 1 and 3600"


def _storage(v: str) -> str | None:
    if re.search(r"(^|[:,])\s*password\s*=", v):
        return "a storage spec without password= (the database password comes from CI_KIT_SERVER_STORAGE_PASSWORD)"
    return None if not v or re.match(r"^[\w.-]+(:|$)", v) else "devpi's storage spec, NAME or NAME:key=value,key=value"


def _current_python() -> str:
    return "%d.%d" % sys.version_info[:2]


KEYS: tuple[Key, ...] = (
    Key("index-url", "str", "http://127.0.0.1:3141", "Root URL of the devpi server.", _url),
    Key("user", "str", "ci", "devpi user that owns the indexes and uploads."),
    Key("unstable-index", "str", "", "Where job 1 uploads (volatile). Default `<user>/unstable`.", _index),
    Key("testing-index", "str", "", "Promotion target for pre-release, dev and local versions. Default `<user>/testing`.", _index),
    Key("stable-index", "str", "", "Promotion target for final releases (non-volatile). Default `<user>/stable`.", _index),
    Key("promote-to", "str", "auto", "`auto` routes final releases to stable and the rest to testing; `stable` or `testing` forces one.", _promote_to),
    Key("python-versions", "list", None, "Python versions to test on, each in a fresh environment. Default: the Python running ci-kit.", _pyvers),
    Key("test-command", "str", "pytest", "Command run in the fresh clone against the installed package (shell words, no shell); for `pytest ...` and `python -m pytest ...` ci-kit installs pytest too.", _test_command),
    Key("test-extras", "list", [], "Extras of the product installed with it for testing, e.g. `[\"test\"]`."),
    Key("test-groups", "list", [], "PEP 735 dependency groups of the repository's pyproject.toml installed for testing, e.g. `[\"test\"]`."),
    Key("test-requirements", "list", [], "Requirements files of the repository (paths from its root) installed for testing."),
    Key("require-junit", "bool", True, "A run passes only if the JUnit XML ci-kit asked for shows tests ran. `false` accepts a command that cannot write JUnit; its records say so and `status` shows it."),
    Key("trusted-uploaders", "list", [], "devpi users besides `user` whose build and test records the gate counts (records from anyone else are ignored)."),
    Key("tox-env", "str", "", "Run this tox environment instead of test-command, with `--installpkg` of the exact file; `{py}` becomes e.g. 311, `{py_dot}` 3.11."),
    Key("dependency-index-url", "str", "", "Simple index for the product's dependencies and test tools (default: uv's, i.e. PyPI or UV_INDEX_URL).", lambda v: None if not v else _url(v, root=False)),
    Key("metadata-check", "str", "warn", "`warn`: the build fails on metadata that is invalid or will not render, and warns on what is merely missing (a README); `strict` fails on both (twine check --strict); `off`.", lambda v: None if v in ("warn", "strict", "off") else "one of warn, strict, off"),
    Key("pass-env", "list", [], "Variables of ci-kit's environment the product's tests also get (names or fnmatch globs, e.g. `[\"AWS_REGION\", \"MY_*\"]`), besides a minimal set; never `CI_KIT_*`. See docs/security.md.", _pass_env),
    Key("dist-dir", "str", "dist", "Where `ci-kit build` puts the files and dist/ci-kit-build.json."),
    Key("results-dir", "str", "ci-kit-results", "Where `ci-kit test` writes JUnit XML and result records."),
    Key("server-dir", "str", "~/.ci-kit/server", "Data directory of the embedded devpi-server (`ci-kit server`)."),
    Key("server-port", "int", 3141, "Port of the embedded devpi-server on 127.0.0.1.", _positive),
    Key("index-timeout", "int", 60, "Seconds ci-kit waits for each answer of the index (connecting: at most 10); past it the command stops with exit 5. Reads (GET) that fail with a dropped connection or a 5xx are retried twice first.", _seconds),
    Key("image", "bool", False, "Build the pinned image as part of `ci-kit run` (the CI front ends have an image step of their own)."),
    Key("image-base", "str", "", "Base image for `ci-kit image`, pinned by digest (`REPO@sha256:...`)."),
    Key("image-entrypoint", "str", "", "Console script of the product, or `-m module`, that the image runs."),
    Key("image-smoke", "str", "", "Command run inside the built image before anything is pushed."),
    Key("image-repository", "str", "", "REGISTRY/REPO to push the image to."),
    Key("image-tags", "list", [], "Moving tags pushed besides VERSION, e.g. `[\"stable\"]`."),
    # Scale-out (docs/scale.md): devpi's primary + replicas; index-url may name a replica.
    Key("primary-url", "str", "", "Root URL of the devpi primary when index-url names a replica: asked for its serial when a job starts, so that the job sees everything written before it. Empty: the primary URL the replica's `/+status` names (docs/scale.md).", lambda v: None if not v else _url(v)),
    Key("replica-wait", "int", 60, "Seconds a job waits for a replica to reach a serial it must see (its own writes, the primary's when it starts reading); past it the command stops with exit 5 naming both serials.", _seconds),
    Key("server-storage", "str", "", "devpi's storage for `ci-kit server start`, e.g. `pg8000:host=db,port=5432,database=devpi,user=devpi` (plugin devpi-postgresql, extra `scale`); such a server starts as a primary that replicas can follow. The database password comes from `CI_KIT_SERVER_STORAGE_PASSWORD` only. Empty: SQLite in server-dir.", _storage),
    Key("server-secret-file", "str", "", "devpi's shared secret file (`--secretfile`): a primary and its replicas need the same one. Empty: `<server-dir>/secret`, made on first start."),
    Key("registry-user", "str", "", "User for pushing the image to a registry that needs a login; its password comes from `CI_KIT_REGISTRY_PASSWORD` or `CI_KIT_REGISTRY_PASSWORD_FILE` only. Empty: docker's own login."),
)
KEY_BY_NAME = {k.name: k for k in KEYS}

# CI_KIT_* variables that are not configuration keys.
SECRET_ENV = ("CI_KIT_PASSWORD", "CI_KIT_PASSWORD_FILE", "CI_KIT_REGISTRY_PASSWORD", "CI_KIT_REGISTRY_PASSWORD_FILE",
              "CI_KIT_SERVER_STORAGE_PASSWORD")
OTHER_ENV = {*SECRET_ENV, "CI_KIT_DEBUG", "CI_KIT_REQUIRE_ALL", "CI_KIT_SANDBOX", "CI_KIT_SECRETS_FD",
             # read by ci-kit's own scripts (scripts/demo, test, bench)
             "CI_KIT_DEMO_VENV", "CI_KIT_TEST_VENV", "CI_KIT_BENCH_VENV", "CI_KIT_BENCH_TOXUV_VENV",
             # set by ci-kit for the product's test run
             "CI_KIT_PROBE_OUT", "CI_KIT_PROBE_MODULES", "CI_KIT_PROBE_DIST", "CI_KIT_METRICS_FILE"}


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    index_url: str
    user: str
    unstable_index: str
    testing_index: str
    stable_index: str
    promote_to: str
    python_versions: list[str]
    test_command: str
    test_extras: list[str]
    test_groups: list[str]
    test_requirements: list[str]
    require_junit: bool
    trusted_uploaders: list[str]
    tox_env: str
    dependency_index_url: str
    metadata_check: str
    dist_dir: str
    results_dir: str
    server_dir: str
    server_port: int
    image: bool
    image_base: str
    image_entrypoint: str
    image_smoke: str
    image_repository: str
    image_tags: list[str]
    registry_user: str
    pass_env: list[str] = field(default_factory=list)
    index_timeout: int = 60
    password_file: str = ""
    # scale-out keys (docs/scale.md)
    primary_url: str = ""
    replica_wait: int = 60
    server_storage: str = ""
    server_secret_file: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # The secret variables of the environment given to load(), so that a settings object
    # answers for the environment it was made from, not for whatever os.environ is later.
    secret_env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def password(self) -> str | None:
        """The devpi password, read on demand from CI_KIT_PASSWORD or the password file; never stored."""
        return _secret(self.secret_env, "CI_KIT_PASSWORD", self.password_files[0] if self.password_files else "",
                       "the password file", "pass a readable file with --password-file or set CI_KIT_PASSWORD")

    @property
    def registry_password(self) -> str | None:
        """The image registry's password, read on demand like `password`; never stored."""
        return _secret(self.secret_env, "CI_KIT_REGISTRY_PASSWORD", self.secret_env.get("CI_KIT_REGISTRY_PASSWORD_FILE", ""),
                       "the registry password file",
                       "point CI_KIT_REGISTRY_PASSWORD_FILE at a readable file or set CI_KIT_REGISTRY_PASSWORD")

    @property
    def storage_password(self) -> str | None:
        """The database password of server-storage: from CI_KIT_SERVER_STORAGE_PASSWORD only; never stored."""
        return _secret(self.secret_env, "CI_KIT_SERVER_STORAGE_PASSWORD", "", "", "")

    @property
    def trusted(self) -> frozenset[str]:
        """Whose records count: the configured user and the trusted uploaders."""
        return frozenset([self.user, *self.trusted_uploaders])

    @property
    def password_files(self) -> list[str]:
        """Files holding a secret (devpi's, then the registry's): the product's code must not see them."""
        devpi = self.password_file or self.secret_env.get("CI_KIT_PASSWORD_FILE", "")
        return [p for p in (devpi, self.secret_env.get("CI_KIT_REGISTRY_PASSWORD_FILE", "")) if p]

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.project_dir / p

    def describe(self) -> dict[str, Any]:
        """Every key with its value and where it came from (for `ci-kit config`)."""
        return {k.name: {"value": getattr(self, k.attr), "source": self.sources.get(k.name, "default")} for k in KEYS}


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


def _coerce(key: Key, value: Any, source: str) -> Any:
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
            if not value.strip().isdigit():
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
    if key.check is not None:
        problem = key.check(value)
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


def load(project_dir: Path | str = ".", flags: Mapping[str, Any] | None = None,
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
        values["python-versions"] = [_current_python()]
    if "server-port" in sources and "index-url" not in sources:  # the embedded server is the index then
        values["index-url"] = f"http://127.0.0.1:{values['server-port']}"
        sources["index-url"] = f"{sources['server-port']} (server-port)"
    values["index-url"] = values["index-url"].rstrip("/")
    password_file = (flags or {}).get("password-file") or ""
    kwargs = {k.attr: values[k.name] for k in KEYS}
    secret_env = {k: environ[k] for k in SECRET_ENV if environ.get(k)}
    return Settings(project_dir=project_dir, password_file=password_file, sources=sources, secret_env=secret_env, **kwargs)


def markdown_table() -> str:
    """README's configuration table, from KEYS."""
    rows = ["| key (`[tool.ci-kit]`) | environment | type | default | meaning |", "|---|---|---|---|---|"]
    for k in KEYS:
        default = {None: "current Python", "": "—"}.get(k.default, k.default) if not isinstance(k.default, (list, bool)) else json.dumps(k.default)
        rows.append(f"| `{k.name}` | `{k.env}` | {k.kind} | `{default}` | {k.help} |")
    return "\n".join(rows)


assert {f.name for f in fields(Settings)} >= {k.attr for k in KEYS}
