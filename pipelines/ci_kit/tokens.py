"""devpi's constrained tokens (the devpi-tokens plugin): one credential per stage.

Job 1 needs to upload to the unstable index (and attach its build record there), the
test stage only to attach results there, promotion only to upload and attach on the
target index(es). A devpi-tokens token is a macaroon: every caveat narrows it
(permissions, indexes, projects, expiry) and anyone holding a token can add caveats
offline, never remove one. So an admin makes one token per stage with `ci-kit token`
and each CI job holds only its own, in the same place a password would go
(CI_KIT_PASSWORD or a password file), which keeps the CI front ends unchanged.

Parsing and derivation use devpi-tokens' own restriction classes and pymacaroons (the
library the server verifies with), so a caveat written here is one the server reads.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ci_kit import console
from ci_kit.errors import AuthError, UsageError

if TYPE_CHECKING:
    import requests

    from ci_kit.config import IndexSettings
    from ci_kit.index import Index

PREFIX = "devpi-"  # what +token-create returns; devpi-client's token-derive drops it, the server takes both
READS = frozenset({"GET", "HEAD", "OPTIONS"})
MAKE_HINT = "make one with `ci-kit token STAGE` (see docs/security.md, Tokens)"

# stage -> (permissions, which indexes). "targets" are the promotion targets; see
# targets(). Reading needs no right: devpi serves releases and results to anyone.
STAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "build-and-push": (("upload", "toxresult_upload"), ("unstable",)),  # upload + the 'build' record
    "test": (("toxresult_upload",), ("unstable",)),
    "promote": (("upload", "toxresult_upload"), ("targets",)),  # upload the tested bytes + records
    # one job doing both (ci-kit test-and-promote): the union, so it may also upload to
    # unstable; separate test and promote tokens are narrower.
    "test-and-promote": (("upload", "toxresult_upload"), ("unstable", "targets")),
}
STAGES["push"] = STAGES["build-and-push"]


@dataclass(frozen=True)
class TokenInfo:
    """What a token may do, from its caveats (several caveats of a kind intersect)."""

    user: str
    token_id: str
    allowed: frozenset[str] | None = None  # None: any right of the user, except changing the user
    indexes: frozenset[str] | None = None
    projects: frozenset[str] | None = None
    expires: int | None = None  # None: never
    not_before: int | None = None
    unknown: tuple[str, ...] = ()  # caveats devpi-tokens' parser does not know (the server checks them)

    def may(self, right: str, index: str) -> bool:
        return (self.allowed is None or right in self.allowed) and (self.indexes is None or index in self.indexes)

    def describe(self, now: float | None = None) -> str:
        """One line for logs and `ci-kit config`; never the token itself."""
        rights = ", ".join(sorted(self.allowed)) if self.allowed is not None else "any right of the user"
        where = ", ".join(sorted(self.indexes)) if self.indexes is not None else "any index"
        text = f"devpi token {self.token_id} of user {self.user}: {rights or 'nothing'} on {where or 'no index'}"
        if self.projects is not None:
            text += f", projects {', '.join(sorted(self.projects)) or 'none'}"
        text += f", {expiry_text(self.expires, now)}"
        if self.unknown:
            text += f", {len(self.unknown)} other caveat(s)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "id": self.token_id,
                "allowed": sorted(self.allowed) if self.allowed is not None else None,
                "indexes": sorted(self.indexes) if self.indexes is not None else None,
                "projects": sorted(self.projects) if self.projects is not None else None,
                "expires": self.expires, "not_before": self.not_before, "other_caveats": len(self.unknown)}


def expiry_text(expires: int | None, now: float | None = None) -> str:
    if expires is None:
        return "never expires"
    now = time.time() if now is None else now
    when = dt.datetime.fromtimestamp(expires, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if expires <= now:
        return f"EXPIRED at {when}"
    left = expires - now
    return f"expires {when} (in {left / 86400:.0f} days)" if left >= 86400 else f"expires {when} (in {left / 3600:.1f} hours)"


def _macaroon(token: str) -> Any:
    import pymacaroons

    return pymacaroons.Macaroon.deserialize(token.removeprefix(PREFIX))


def is_token(secret: str | None) -> bool:
    """A devpi-tokens token, by its form: a macaroon (with or without the `devpi-` prefix,
    which devpi-client's token-derive drops) whose identifier is USER-ID. The prefix alone
    proves nothing: a password may start with it."""
    if not secret or not re.fullmatch(r"[A-Za-z0-9_=-]{40,}", secret):
        return False
    try:
        return "-" in _macaroon(secret).identifier.decode("ascii")
    except Exception:  # noqa: BLE001  (pymacaroons raises many kinds) not a macaroon: a password
        return False


def inspect(token: str) -> TokenInfo:
    """Read a token's user, id and restrictions; no server needed."""
    from devpi_tokens.restrictions import available_restrictions

    try:
        mac = _macaroon(token)
        user, token_id = mac.identifier.decode("ascii").rsplit("-", 1)
    except Exception:  # noqa: BLE001  (pymacaroons raises many kinds)
        raise AuthError("the devpi token in the credentials is not readable",
                        "copy it again in full (it starts with devpi-); " + MAKE_HINT) from None
    # devpi-tokens' get_restrictions_from_macaroon would stop at the first caveat it does not
    # know (the server accepts PyPI-style JSON caveats too) and does not intersect repeated
    # ones; so the loop is here, and each value is still parsed by the library's own class.
    parsed: dict[str, list[Any]] = {}
    unknown: list[str] = []
    for caveat in mac.caveats:
        text = caveat.caveat_id if isinstance(caveat.caveat_id, str) else caveat.caveat_id.decode()
        key, _, value = text.partition("=")
        cls = available_restrictions.get(key)
        try:
            restriction = cls(value.split(",") if key in ("allowed", "indexes", "projects") else value)
        except Exception:  # noqa: BLE001  unknown key (e.g. PyPI-style JSON caveats) or bad value
            unknown.append(text)
            continue
        parsed.setdefault(key, []).append(restriction.value)

    def meet(key: str) -> frozenset[str] | None:
        sets = [frozenset(v) for v in parsed.get(key, [])]
        return frozenset.intersection(*sets) if sets else None

    expires = [int(v) for v in parsed.get("expires", []) if v != "never"]
    not_before = [int(v) for v in parsed.get("not_before", [])]
    return TokenInfo(user, token_id, meet("allowed"), meet("indexes"), meet("projects"),
                     min(expires) if expires else None, max(not_before) if not_before else None, tuple(unknown))


def check_time(info: TokenInfo, now: float | None = None) -> None:
    """Refuse an expired (or not yet valid) token before sending it: a clear message
    instead of the server's 403 for every request."""
    now = time.time() if now is None else now
    if info.expires is not None and info.expires <= now:
        raise AuthError(f"the devpi token {info.token_id} of user {info.user} {expiry_text(info.expires, now)}",
                        "tokens cannot be extended: " + MAKE_HINT + " and store it as the CI secret")
    if info.not_before is not None and info.not_before > now:
        raise AuthError(f"the devpi token {info.token_id} of user {info.user} is not valid before "
                        f"{dt.datetime.fromtimestamp(info.not_before, dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
                        "check the clock of this machine, or use another token")


def targets(cfg: IndexSettings) -> list[str]:
    """The indexes promotion may write to, as routed by promote-to."""
    which = {"auto": [cfg.testing_index, cfg.stable_index],
             "testing": [cfg.testing_index], "stable": [cfg.stable_index]}[cfg.promote_to]
    return sorted(set(which))


def rights_for(stage: str, cfg: IndexSettings) -> tuple[list[str], list[str]]:
    """(permissions, indexes) a stage needs, with index names resolved from settings."""
    allowed, where = STAGES[stage]
    indexes: set[str] = set()
    for w in where:
        indexes.update(targets(cfg) if w == "targets" else [cfg.unstable_index])
    return sorted(allowed), sorted(indexes)


def parse_expires(text: str, now: float | None = None) -> int:
    """`30d`, `12h`, `90m`, `2w`, `3600s`, or a date/time in ISO form (UTC unless it says)."""
    now = time.time() if now is None else now
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if m:
        seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return int(now + seconds)
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--expires {text!r} is not a duration or a date",
                         "use e.g. 30d, 12h, 90m, 2w, or 2027-01-31 (UTC)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp())


def derive(token: str, *, allowed: list[str], indexes: list[str], projects: list[str] | None, expires: int) -> str:
    """A narrower token from a broader one, offline: the caveats are appended with
    devpi-tokens' own restriction classes, as its `devpi token-derive` does."""
    from devpi_tokens.restrictions import (
        AllowedRestriction,
        ExpiresRestriction,
        IndexesRestriction,
        ProjectsRestriction,
    )

    held = inspect(token)
    check_time(held)
    missing = [f"{r} on {i}" for r in allowed for i in indexes if not held.may(r, i)]
    if missing:
        raise AuthError(f"the token held cannot grant {', '.join(missing)}: token {held.token_id} of user {held.user} may only {_rights(held)}",
                        "a derived token can only narrow its parent; derive from a broader token or use the password")
    if held.projects is not None and projects is not None and not set(projects) <= held.projects:
        raise AuthError(f"the token held is limited to projects {', '.join(sorted(held.projects))}",
                        "derive for those projects only, or from a broader token")
    mac = _macaroon(token)
    for r in (AllowedRestriction(allowed), IndexesRestriction(indexes), ExpiresRestriction(expires),
              ProjectsRestriction(projects) if projects else None):
        if r is not None:
            mac.add_first_party_caveat(r.dump())
    serialized: str = mac.serialize()
    return PREFIX + serialized


def create(index: Index, *, allowed: list[str], indexes: list[str], projects: list[str] | None, expires: int) -> str:
    """A new token made by the server (needs the user's password, i.e. a logged-in index).
    Unlike a derived one it is listed (`devpi token-list`) and can be revoked on its own."""
    from ci_kit.errors import NotFound

    body: dict[str, Any] = {"allowed": allowed, "indexes": indexes, "expires": expires}
    if projects:
        body["projects"] = projects
    try:
        resp = index.request("POST", f"{index.user}/+token-create", json=body, ok=(200, 400, 403))
    except NotFound:
        raise UsageError(f"the devpi server at {index.url} does not make tokens: devpi-tokens is not installed there",
                         "install devpi-tokens next to devpi-server (ci-kit server start does), or keep using passwords") from None
    if resp.status_code != 200:
        from ci_kit.index import _message

        raise UsageError(f"the server refused to make the token: {_message(resp)}",
                         "tokens may last at most one year unless root makes them; pick a shorter --expires")
    return str(resp.json()["result"]["token"])


class TokenAuth:
    """requests auth: the token goes with writes only.

    Why: devpi-tokens checks a token's index and project caveats on every request it is
    sent with, reads included, and devpi checks `pkg_read` for an authenticated reader;
    so a promotion token limited to testing/stable would be refused reading unstable,
    which devpi serves to anyone. Reads go anonymous; a read the server refuses
    anonymously (a server that restricts reading) is sent once more with the token.
    """

    def __init__(self, user: str, token: str) -> None:
        self.header = base64.b64encode(f"{user}:{token}".encode()).decode()
        console.add_secret(self.header)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if r.method in READS:
            r.register_hook("response", self._retry_with_token)  # type: ignore[no-untyped-call]  # untyped in types-requests
        else:
            r.headers["X-Devpi-Auth"] = self.header
        return r

    def _retry_with_token(self, resp: requests.Response, **kw: Any) -> requests.Response:
        if resp.status_code not in (401, 403) or "X-Devpi-Auth" in resp.request.headers:
            return resp
        resp.content  # noqa: B018 - read the body so the connection can be reused
        resp.close()
        again = resp.request.copy()
        again.headers["X-Devpi-Auth"] = self.header
        new = resp.connection.send(again, **kw)
        new.history.append(resp)
        new.request = again
        return new


def use(index: Index, token: str) -> TokenInfo:
    """Make `index` present the token (no +login exchange: devpi-tokens verifies the token
    itself on each write, and a login would not keep the restrictions)."""
    console.add_secret(token)
    info = inspect(token)
    check_time(info)
    index.user = info.user  # the token's own user: devpi refuses it under another name
    index.session.auth = TokenAuth(info.user, token)
    index.token = info
    console.step(f"index: using {info.describe()}")
    return info


def refused(index: Index, method: str, url: str, status: int, message: str) -> AuthError:
    """The one-line error for a write the server refused to the token held."""
    info: TokenInfo = index.token
    message = " ".join(message.split())
    # "Access was denied to this resource. Exception during token verification: devpi_tokens.server.InvalidMacaroon: X"
    message = re.sub(r"^.*InvalidMacaroon: ", "", message) or message
    if "expired" in message.lower():
        return AuthError(f"the devpi token {info.token_id} of user {info.user} has expired ({message})",
                         "tokens cannot be extended: " + MAKE_HINT)
    if plugin_version(index) == "":
        return AuthError(f"{method} {url}: {status} {message}",
                         f"the server at {index.url} has no devpi-tokens, so it takes passwords only: "
                         "set CI_KIT_PASSWORD to the user's password, or install devpi-tokens next to devpi-server")
    need = "" if "denied access to project" in message else _needed(method, url, index.url)
    return AuthError(f"{method} {url}: {status} {message}",
                     f"the token held may only {_rights(info)}" + (f"; this needs {need}" if need else "")
                     + "; use the token made for this stage, or " + MAKE_HINT)


def plugin_version(index: Index) -> str | None:
    """devpi-tokens' version on the server from devpi's own /+status: '' if the server
    lacks the plugin, None if it cannot tell. Not through index.request: this runs while
    an error is being made, and must not make another."""
    try:
        resp = index.session.get(f"{index.url}/+status", timeout=min(index.timeout, 10))
        info = resp.json().get("result", {}) if resp.status_code == 200 else None
    except Exception:  # noqa: BLE001  unreachable or not JSON: cannot tell
        return None
    return None if info is None else str(info.get("versioninfo", {}).get("devpi-tokens", ""))


def _rights(info: TokenInfo) -> str:
    return info.describe().split(": ", 1)[1]


def _needed(method: str, url: str, root: str) -> str:
    parts = url[len(root):].strip("/").split("/") if url.startswith(root) else []
    if method == "POST" and len(parts) >= 3 and parts[2] == "+f":
        return f"toxresult_upload on {parts[0]}/{parts[1]}"
    if method == "POST" and len(parts) == 2:
        return f"upload on {parts[0]}/{parts[1]}"
    return ""


def credentials(cfg: IndexSettings) -> dict[str, Any]:
    """What the credential ci-kit holds is and may do, for `ci-kit config`; never its value."""
    held = cfg.credential  # from the environment given to config.load()
    if held.value:
        source = f"environment {held.variable}"
    elif held.file:
        source = f"file {held.file}"
    else:
        return {"value": "none (reads only; writes need CI_KIT_PASSWORD or a password file)", "source": "default"}
    secret = cfg.password or ""
    if not is_token(secret):
        return {"value": f"password of devpi user {cfg.user} (all of the user's rights)", "source": source}
    try:
        info = inspect(secret)
    except AuthError as exc:
        return {"value": exc.message, "source": source}
    return {"value": info.describe(), "source": source, "token": info.to_json()}


def make(cfg: IndexSettings, stage: str, *, expires: str = "30d", projects: list[str] | None = None) -> tuple[str, TokenInfo, str]:
    """(token, what it may do, how it was made) for one stage, from the credential held:
    a token is narrowed offline; a password asks the server for a new (revocable) token."""
    from ci_kit.index import Index

    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}", "one of: " + ", ".join(sorted(STAGES)))
    allowed, indexes = rights_for(stage, cfg)
    until = parse_expires(expires)
    if until <= time.time():
        raise UsageError(f"--expires {expires} is in the past", "give a duration such as 30d or a future date")
    secret = cfg.password
    if not secret:
        raise AuthError(f"no credential for devpi user {cfg.user!r} to make a token from",
                        "set CI_KIT_PASSWORD (the user's password, or a broader token) or pass --password-file FILE")
    if is_token(secret):
        console.add_secret(secret)
        token, how = derive(secret, allowed=allowed, indexes=indexes, projects=projects, expires=until), "derived offline from the token held"
    else:
        index = Index.from_settings(cfg)
        token, how = create(index, allowed=allowed, indexes=indexes, projects=projects, expires=until), f"made by {cfg.index_url}"
    console.add_secret(token)
    return token, inspect(token), how


def write_token(token: str, path: str) -> None:
    """Write a token to a file only its owner can read (0600, also when it existed)."""
    fd = os.open(os.path.expanduser(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
