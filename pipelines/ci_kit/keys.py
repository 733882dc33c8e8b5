"""The configuration keys: every key declared once, with its group, type, default, help and
check. Flags, CI_KIT_* variables, `[tool.ci-kit]` and README's configuration table
(`ci-kit config --table`) all come from KEYS, so docs and code cannot drift; config.py
resolves them into the one settings object.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

_PYVER = re.compile(r"^3\.\d{1,2}$")
_INDEX = re.compile(r"^[\w.@-]+/[\w.@-]+$")
_USERINFO = re.compile(r"(^[a-zA-Z][\w+.-]*://)[^/?#\s]*@")
SANDBOX_MODES = ("auto", "user", "namespace", "none")  # CI_KIT_SANDBOX, the operator's choice (sandbox.py)
MIN_SECRET_LENGTH = 8  # shorter secrets cannot be masked without corrupting ordinary output


Kind = Literal["str", "list", "bool", "int", "table"]  # table: a TOML table; JSON in the environment or a flag
Group = Literal["index", "build", "test", "quality", "server", "image", "run"]
GROUP_ORDER: tuple[Group, ...] = ("index", "build", "test", "quality", "server", "image", "run")
PromoteTo = Literal["auto", "stable", "testing"]
MetadataCheck = Literal["warn", "strict", "off"]


@dataclass(frozen=True)
class Key:
    name: str
    group: Group  # the part of Settings it lives in: settings.<group>.<attr>
    kind: Kind
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None  # returns a problem or None
    field: str = ""  # the attribute in its group, when the key's own name would repeat the group's

    @property
    def env(self) -> str:
        return "CI_KIT_" + self.name.upper().replace("-", "_")

    @property
    def attr(self) -> str:
        return self.field or self.name.replace("-", "_")


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


def _quality_table(v: dict[str, Any]) -> str | None:
    from ci_kit.quality.rules import problem  # the [tool.ci-kit.quality] table's check (cheap to import)

    return problem(v)


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


def _storage(v: str) -> str | None:
    if re.search(r"(^|[:,])\s*password\s*=", v):
        return "a storage spec without password= (the database password comes from CI_KIT_SERVER_STORAGE_PASSWORD)"
    return None if not v or re.match(r"^[\w.-]+(:|$)", v) else "devpi's storage spec, NAME or NAME:key=value,key=value"


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


def current_python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


KEYS: tuple[Key, ...] = (
    Key("index-url", "index", "str", "http://127.0.0.1:3141", "Root URL of the devpi server.", _url),
    Key("user", "index", "str", "ci", "devpi user that owns the indexes and uploads."),
    Key("unstable-index", "index", "str", "", "Where job 1 uploads (volatile). Default `<user>/unstable`.", _index),
    Key("testing-index", "index", "str", "", "Promotion target for pre-release, dev and local versions. Default `<user>/testing`.", _index),
    Key("stable-index", "index", "str", "", "Promotion target for final releases (non-volatile). Default `<user>/stable`.", _index),
    Key("promote-to", "index", "str", "auto", "`auto` routes final releases to stable and the rest to testing; `stable` or `testing` forces one.", _promote_to),
    Key("python-versions", "test", "list", None, "Python versions to test on, each in a fresh environment. Default: the Python running ci-kit.", _pyvers),
    Key("test-command", "test", "str", "pytest", "Command run in the fresh clone against the installed package (shell words, no shell); for `pytest ...` and `python -m pytest ...` ci-kit installs pytest too.", _test_command),
    Key("test-extras", "test", "list", [], "Extras of the product installed with it for testing, e.g. `[\"test\"]`."),
    Key("test-groups", "test", "list", [], "PEP 735 dependency groups of the repository's pyproject.toml installed for testing, e.g. `[\"test\"]`."),
    Key("test-requirements", "test", "list", [], "Requirements files of the repository (paths from its root) installed for testing."),
    Key("require-junit", "test", "bool", True, "A run passes only if the JUnit XML ci-kit asked for shows tests ran. `false` accepts a command that cannot write JUnit; its records say so and `status` shows it."),
    Key("trusted-uploaders", "index", "list", [], "devpi users besides `user` whose build and test records the gate counts (records from anyone else are ignored)."),
    Key("tox-env", "test", "str", "", "Run this tox environment instead of test-command, with `--installpkg` of the exact file; `{py}` becomes e.g. 311, `{py_dot}` 3.11."),
    Key("dependency-index-url", "test", "str", "", "Simple index for the product's dependencies and test tools (default: uv's, i.e. PyPI or UV_INDEX_URL).", lambda v: None if not v else _url(v, root=False)),
    Key("metadata-check", "build", "str", "warn", "`warn`: the build fails on metadata that is invalid or will not render, and warns on what is merely missing (a README); `strict` fails on both (twine check --strict); `off`.", lambda v: None if v in ("warn", "strict", "off") else "one of warn, strict, off"),
    Key("pass-env", "test", "list", [], "Variables of ci-kit's environment the product's tests also get (names or fnmatch globs, e.g. `[\"AWS_REGION\", \"MY_*\"]`), besides a minimal set; never `CI_KIT_*`. See docs/security.md.", _pass_env),
    Key("dist-dir", "build", "str", "dist", "Where `ci-kit build` puts the files and dist/ci-kit-build.json."),
    Key("results-dir", "test", "str", "ci-kit-results", "Where `ci-kit test` writes JUnit XML and result records."),
    Key("server-dir", "server", "str", "~/.ci-kit/server", "Data directory of the embedded devpi-server (`ci-kit server`)."),
    Key("server-port", "server", "int", 3141, "Port of the embedded devpi-server on 127.0.0.1.", _positive),
    Key("index-timeout", "index", "int", 60, "Seconds ci-kit waits for each answer of the index (connecting: at most 10); past it the command stops with exit 5. Reads (GET) that fail with a dropped connection or a 5xx are retried twice first.", _seconds),
    Key("image", "run", "bool", False, "Build the pinned image as part of `ci-kit run` (the CI front ends have an image step of their own)."),
    Key("image-base", "image", "str", "", "Base image for `ci-kit image`, pinned by digest (`REPO@sha256:...`)."),
    Key("image-entrypoint", "image", "str", "", "Console script of the product, or `-m module`, that the image runs."),
    Key("image-smoke", "image", "str", "", "Command run inside the built image before anything is pushed."),
    Key("image-repository", "image", "str", "", "REGISTRY/REPO to push the image to."),
    Key("image-tags", "image", "list", [], "Moving tags pushed besides VERSION, e.g. `[\"stable\"]`."),
    Key("evaluate-command", "test", "str", "", "Command run after the tests pass, in the same fresh environment against the installed release, to write the evaluation record at `$CI_KIT_METRICS_FILE` (docs/quality.md). Empty: the tests may write it.", lambda v: _test_command(v) if v else None),
    Key("quality", "quality", "table", {}, "The quality gate: `[tool.ci-kit.quality]` with metric bounds, regression, response-shift, undecided-share and input checks against the baseline (docs/quality.md); as JSON in the environment or flag.", _quality_table, field="rules"),
    # Scale-out (docs/scale.md): devpi's primary + replicas; index-url may name a replica.
    Key("primary-url", "index", "str", "", "Root URL of the devpi primary when index-url names a replica: asked for its serial when a job starts, so that the job sees everything written before it. Empty: the primary URL the replica's `/+status` names (docs/scale.md).", lambda v: None if not v else _url(v)),
    Key("replica-wait", "index", "int", 60, "Seconds a job waits for a replica to reach a serial it must see (its own writes, the primary's when it starts reading); past it the command stops with exit 5 naming both serials.", _seconds),
    Key("server-storage", "server", "str", "", "devpi's storage for `ci-kit server start`, e.g. `pg8000:host=db,port=5432,database=devpi,user=devpi` (plugin devpi-postgresql, extra `scale`); such a server starts as a primary that replicas can follow. The database password comes from `CI_KIT_SERVER_STORAGE_PASSWORD` only. Empty: SQLite in server-dir.", _storage),
    Key("server-secret-file", "server", "str", "", "devpi's shared secret file (`--secretfile`): a primary and its replicas need the same one. Empty: `<server-dir>/secret`, made on first start."),
    Key("registry-user", "image", "str", "", "User for pushing the image to a registry that needs a login; its password comes from `CI_KIT_REGISTRY_PASSWORD` or `CI_KIT_REGISTRY_PASSWORD_FILE` only. Empty: docker's own login."),
)
KEY_BY_NAME = {k.name: k for k in KEYS}
KEYS_BY_GROUP = sorted(KEYS, key=lambda k: GROUP_ORDER.index(k.group))  # table order within a group

# CI_KIT_* variables that are not configuration keys.
SECRET_ENV = ("CI_KIT_PASSWORD", "CI_KIT_PASSWORD_FILE", "CI_KIT_REGISTRY_PASSWORD", "CI_KIT_REGISTRY_PASSWORD_FILE",
              "CI_KIT_SERVER_STORAGE_PASSWORD")
OTHER_ENV = {*SECRET_ENV, "CI_KIT_DEBUG", "CI_KIT_REQUIRE_ALL", "CI_KIT_SANDBOX", "CI_KIT_SECRETS_FD",
             # read by ci-kit's own scripts (scripts/demo, test, bench)
             "CI_KIT_DEMO_VENV", "CI_KIT_TEST_VENV", "CI_KIT_BENCH_VENV", "CI_KIT_BENCH_TOXUV_VENV",
             # set by ci-kit for the product's test run
             "CI_KIT_PROBE_OUT", "CI_KIT_PROBE_MODULES", "CI_KIT_PROBE_DIST", "CI_KIT_METRICS_FILE"}


def markdown_table() -> str:
    """README's configuration table, from KEYS."""
    rows = ["| key (`[tool.ci-kit]`) | environment | type | default | meaning |", "|---|---|---|---|---|"]
    for k in KEYS:
        default = {None: "current Python", "": "—"}.get(k.default, k.default) if not isinstance(k.default, (list, bool, dict)) else json.dumps(k.default)
        rows.append(f"| `{k.name}` | `{k.env}` | {k.kind} | `{default}` | {k.help} |")
    return "\n".join(rows)
