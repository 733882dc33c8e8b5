"""The one place that talks to the index: devpi's JSON API over one HTTP session.

Why not shell out to devpi-client: every `devpi` call is a new Python process (about
0.3 s each) and keeps login state in a client directory shared by every run of the
same user; here one process keeps one keep-alive session and the login token in
memory only, so concurrent pipelines never share client state and nothing is written.
The requests made are the ones devpi-client and twine make (upload form, toxresult
POST). devpi's server-side copy (the PUSH method) is not used: promotion downloads,
hash-checks and re-uploads the gated bytes (promote.py says why).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ci_kit import console
from ci_kit.dists import version_of
from ci_kit.errors import AuthError, CiKitError, IndexUnreachable, NotFound
from ci_kit.listing import Release, ReleaseFile, ResultLink, parse_release, unlike
from ci_kit.retries import read_retries
from ci_kit.serials import Serials

__all__ = ["Index"]

if TYPE_CHECKING:
    import requests

    from ci_kit.config import IndexSettings


class Index:
    """A logged-in (or anonymous) connection to one devpi server."""

    def __init__(self, url: str, user: str = "", timeout: float = 60.0, *,
                 primary_url: str = "", replica_wait: float = 60.0) -> None:
        import requests  # lazy: keeps `ci-kit --help` fast

        self.url = url.rstrip("/")
        self.user = user
        self.timeout = timeout
        self.serials = Serials(self, primary_url.rstrip("/"), replica_wait)
        self.session: requests.Session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
        # Reads are idempotent: a GET whose connection drops or that gets a 5xx from a proxy
        # or a restarting server is retried by urllib3's Retry (twice, 0.2 s then 0.4 s
        # apart), not by a loop of ours; a timeout is not retried (retries.py), so a hung
        # server costs index-timeout once. Writes (POST, PUT, PATCH) are never retried
        # here: whether the server acted on a lost one is for the stage to find out on its
        # re-run (push and promote compare with the index before writing).
        from requests.adapters import HTTPAdapter

        retry = read_retries(total=2, connect=2, read=2, status=2, other=0, backoff_factor=0.2,
                      status_forcelist=(500, 502, 503, 504), allowed_methods=frozenset({"GET", "HEAD"}),
                      raise_on_status=False, respect_retry_after_header=False)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self._results: dict[str, bytes] = {}
        self._password_later: Callable[[], str | None] | None = None
        self.token: Any = None  # a tokens.TokenInfo when a devpi-tokens token is held

    @classmethod
    def from_settings(cls, cfg: IndexSettings, login: bool | str = True) -> Index:
        """login: True (a password is required, exchanged for a token now), False
        (anonymous), or "when-asked" (for steps that only read: devpi serves releases and
        results to anyone, so the password is read and exchanged, which costs the server a
        password hash, only if the server answers 401/403; then the request is retried)."""
        index = cls(cfg.index_url, cfg.user, timeout=float(cfg.index_timeout),
                    primary_url=cfg.primary_url, replica_wait=float(cfg.replica_wait))
        if login == "when-asked":
            index._password_later = lambda: cfg.password
            return index
        if login:
            password = cfg.password
            if not password:
                raise AuthError(f"no password for devpi user {cfg.user!r}",
                                "set CI_KIT_PASSWORD (a password or a devpi token) or pass --password-file FILE")
            index.login(password)
        return index

    # -- plumbing ---------------------------------------------------------------------------

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), **kw: Any) -> requests.Response:  # noqa: PLR0912 - every failure of a request gets its own one-line error, here in one place
        import requests

        url = path if path.startswith("http") else f"{self.url}/{path.lstrip('/')}"
        self.serials.before(method)
        started = time.monotonic()
        try:
            # connecting (TLS included) gets 10 s: https spoken to a plain-http port otherwise hangs a minute
            resp = self.session.request(method, url, timeout=(min(10.0, self.timeout), self.timeout), **kw)
        except requests.exceptions.SSLError as exc:
            raise IndexUnreachable(f"TLS with {self.url} failed: {str(exc.args[0] if exc.args else exc)[:160]}",
                                   "check the scheme of index-url (http or https) and the server's certificate") from None
        except requests.ConnectionError:
            raise IndexUnreachable(f"cannot reach the index at {self.url}",
                                   "check --index-url / CI_KIT_INDEX_URL, or start one with `ci-kit server start`") from None
        except requests.Timeout:
            if time.monotonic() - started < self.timeout - 1:  # the 10 s of connecting ran out
                tls = " (is it plain http? https to a plain-http port never completes)" if self.url.startswith("https:") else ""
                raise IndexUnreachable(f"no connection to the index at {self.url} within {min(10.0, self.timeout):.0f}s{tls}",
                                       "check index-url (scheme, host, port) and the server") from None
            raise IndexUnreachable(f"the index at {self.url} did not answer within {self.timeout:.0f}s ({method} {url})",
                                   "check the server's health and run the stage again (index-timeout sets the wait)") from None
        except requests.RequestException as exc:  # an answer cut off mid-body (the server died while answering)
            raise IndexUnreachable(f"the connection to the index at {self.url} broke during {method} {url} ({type(exc).__name__})",
                                   "check the server's health and run the stage again: it picks up where this one stopped") from None
        if resp.status_code in ok:
            if self.serials.stale(method, resp):  # a replica behind what this job must see: wait, ask again
                resp.close()
                return self.request(method, path, ok=ok, **kw)
            return resp
        if self.serials.retry(method, resp):  # a replica still fetching the file from its primary
            resp.close()
            return self.request(method, path, ok=ok, **kw)
        if resp.status_code in (401, 403) and self._password_later is not None:
            password, self._password_later = self._password_later(), None
            if password:
                self.login(password)
                return self.request(method, path, ok=ok, **kw)
        message = _message(resp)
        if resp.status_code in (401, 403) and self.token is not None:
            from ci_kit import tokens

            raise tokens.refused(self, method, url, resp.status_code, message)
        if resp.status_code in (401, 403):
            raise AuthError(f"{method} {url}: {resp.status_code} {message}",
                            f"check the credentials of devpi user {self.user!r} (CI_KIT_PASSWORD or --password-file) and the index ACLs")
        if not _is_devpi(resp) and resp.status_code in (500, 502, 503, 504):  # a gateway's answer, or a server going down
            raise IndexUnreachable(f"the index at {self.url} answered {method} {url} with {resp.status_code} {resp.reason}, not from devpi-server itself (a proxy or gateway in front of it, or the server going down)",
                                   "check the server and the proxy in front of it, then run the stage again: it picks up where this one stopped")
        if not _is_devpi(resp):
            raise IndexUnreachable(f"{self.url} did not answer like a devpi-server ({method} {url}: {resp.status_code} {resp.reason})",
                                   "check index-url: it must be the root URL of a devpi-server")
        if resp.status_code == 404:
            raise NotFound(f"{url}: {message}", "check the index name and the requirement")
        raise CiKitError(f"{method} {url}: {resp.status_code} {message}", "see the devpi-server log")

    def login(self, password: str) -> None:
        """Exchange the password for a login token; only the token is used afterwards.
        A devpi-tokens token in its place is presented as it is (ci_kit.tokens)."""
        console.add_secret(password)
        from ci_kit import tokens

        if tokens.is_token(password):
            tokens.use(self, password)
            return
        resp = self.request("POST", "+login", json={"user": self.user, "password": password}, ok=(200, 401))
        if resp.status_code == 401:
            raise AuthError(f"devpi user {self.user!r} could not log in at {self.url}",
                            "check CI_KIT_USER and the password (CI_KIT_PASSWORD or --password-file)")
        token = resp.json()["result"]["password"]
        console.add_secret(token)
        auth = base64.b64encode(f"{self.user}:{token}".encode()).decode()
        console.add_secret(auth)
        self.session.headers["X-Devpi-Auth"] = auth

    # -- reading ----------------------------------------------------------------------------

    def index_config(self, index: str) -> dict[str, Any]:
        try:
            config: dict[str, Any] = self.request("GET", index).json()["result"]
            return config
        except NotFound:
            raise NotFound(f"index {index} does not exist on {self.url}",
                           "create it (ci-kit server start creates <user>/unstable, testing and stable) or fix the index name") from None

    def release(self, index: str, name: str, version: str) -> Release | None:
        """The release's files and attached results, or None if the index lacks it."""
        resp = self.request("GET", f"{index}/{quote(name)}/{quote(version)}", ok=(200, 404))
        if resp.status_code == 404:
            self.index_config(index)  # a missing index is its own error
            return None
        return parse_release(index, resp.json()["result"])

    def releases(self, index: str, name: str) -> dict[str, Release]:
        """Every version of a project on one index, with files and result links: one request."""
        resp = self.request("GET", f"{index}/{quote(name)}", ok=(200, 404))
        if resp.status_code == 404:
            self.index_config(index)
            return {}
        return {v: parse_release(index, d) for v, d in resp.json()["result"].items()}

    def file_versions(self, index: str, name: str) -> list[str] | None:
        """Versions with files, from the simple page (PEP 691 JSON; 0.05 s where releases() took 0.4 s,
        2.5 MB, with 1,000 releases: measured); None if it cannot say (then releases() decides)."""
        kind = "application/vnd.pypi.simple.v1+json"
        resp = self.request("GET", f"{index}/+simple/{quote(name)}/", ok=(200, 404), headers={"Accept": kind})
        if resp.status_code == 404:
            self.index_config(index)
            return []
        found = [version_of(str(f.get("filename", ""))) for f in resp.json().get("files", [])] \
            if resp.headers.get("content-type", "").startswith(kind) else [None]
        return None if None in found else sorted({v for v in found if v is not None})

    def read_back(self, index: str, name: str, version: str,
                  expected: Mapping[str, str]) -> tuple[Release | None, list[str]]:
        """The release as the index holds it after a write, and each expected file
        (filename -> sha256) it lacks or holds with other bytes: a write counts only once
        read back, since a proxy, a full disk or another writer can keep other bytes."""
        release = self.release(index, name, version)
        return release, unlike(release, expected, index)

    def projects(self, index: str) -> list[str]:
        return list(self.index_config(index).get("projects", []))

    def read_result_bytes(self, link: ResultLink) -> bytes:
        """A record's stored bytes, checked against the sha256 the index lists for it;
        cached, since attached records never change."""
        if link.url not in self._results:
            # Accept: */* gets the stored JSON itself; application/json would get devpi's file info.
            data = self.request("GET", link.url, headers={"Accept": "*/*"}).content
            if link.sha256 and hashlib.sha256(data).hexdigest() != link.sha256:
                if self.serials.again():  # a replica serving the file while it is still copying it
                    return self.read_result_bytes(link)
                raise CiKitError(f"{link.url}: the record's bytes differ from the index's sha256",
                                 "the index or a proxy changed it in transit; retry, then check the server")
            self._results[link.url] = data
        return self._results[link.url]

    def read_result(self, link: ResultLink) -> Any:
        """A record as JSON (any JSON value: what anyone attached is not trusted to be a dict)."""
        import json

        try:
            return json.loads(self.read_result_bytes(link))
        except ValueError:
            return None

    def download(self, f: ReleaseFile, dest: Path) -> Path:
        """Fetch a release file and check its sha256 against what the index lists."""
        resp = self.request("GET", f.url, stream=True, headers={"Accept": "*/*"}, ok=(200, 404, 410))
        if resp.status_code != 200:  # devpi's file URLs name the bytes: other bytes live at another URL
            raise NotFound(f"{f.basename} with sha256 {f.sha256[:16]}… is gone from the index ({resp.status_code}): it was replaced or removed",
                           "run again: the new state is judged afresh")
        target = dest / f.basename
        h = hashlib.sha256()
        import requests

        with open(target, "wb") as fh:
            try:
                for chunk in resp.iter_content(1 << 20):
                    h.update(chunk)
                    fh.write(chunk)
            except requests.RequestException as exc:
                raise IndexUnreachable(f"the connection to the index at {self.url} broke while downloading {f.basename} ({type(exc).__name__})",
                                       "check the server's health and run the stage again") from None
        if h.hexdigest() != f.sha256:
            if self.serials.again():  # a replica serving the file while it is still copying it
                return self.download(f, dest)
            raise CiKitError(f"{f.basename}: downloaded sha256 {h.hexdigest()} differs from the index's {f.sha256}",
                             "the index or a proxy changed the file in transit; retry, then check the server")
        return target

    # -- writing ----------------------------------------------------------------------------

    def upload(self, index: str, path: Path, metadata: dict[str, Any]) -> None:
        """Upload one file with its metadata (the form devpi-client and twine send)."""
        # Streamed with requests-toolbelt's encoder (as twine does): requests' own `files=`
        # builds the whole body in memory, which costs the file's size in RSS, twice.
        from requests_toolbelt.multipart.encoder import MultipartEncoder

        fields: list[tuple[str, Any]] = [(":action", "file_upload"), ("protocol_version", "1")]
        for key, value in metadata.items():
            fields.extend((key, str(item)) for item in (value if isinstance(value, list) else [value]))
        with open(path, "rb") as fh:
            fields.append(("content", (path.name, fh, "application/octet-stream")))
            body = MultipartEncoder(fields=fields)
            self.request("POST", f"{index}/", data=body,
                         headers={"Accept": "application/json", "Content-Type": body.content_type})

    @staticmethod
    def result_body(record: dict[str, Any] | bytes) -> bytes:
        """The bytes a record is attached as. Bytes stay as they are, so a copied record keeps
        its sha256 (it was masked when first attached); a new record is masked as a whole:
        output and JUnit are the product's words, and may quote a secret."""
        return record if isinstance(record, bytes) else console.mask(json.dumps(record)).encode()

    def attach_result(self, f: ReleaseFile, record: dict[str, Any] | bytes) -> str:
        """Attach a toxresult-shaped record to a release file; returns its path on the index."""
        body = self.result_body(record)
        path: str = self.request("POST", f.url, data=body, headers={"Content-Type": "application/json"}).json().get("result", "")
        return path

    def keep_results(self, release: Release, sent: list[tuple[ReleaseFile, bytes]], *, settle: float = 0.5,
                     rounds: int = 4) -> None:
        """Make sure records attached at the same time as another job's stay attached.

        Why: devpi keeps a release's records in one list that each write reads and writes
        back whole. On SQLite (the default) writes are serialised, but devpi-postgresql takes
        its lock only at commit, so two jobs attaching to one release at once (a CI matrix's
        test jobs) can each write back a list without the other's record: measured, 24
        records posted at once left 1 or 2. Transactions last milliseconds, so after
        `settle` seconds every write that overlapped ours has committed: a record missing
        then was lost, and is attached again (bounded; then exit 5, asking for a re-run)."""
        for _ in range(rounds):
            time.sleep(settle)
            now = self.release(release.index, release.name, release.version)
            listed = {(r.for_url, r.sha256) for r in now.results} if now else set()
            sent = [(f, body) for f, body in sent if (f.url, hashlib.sha256(body).hexdigest()) not in listed]
            if not sent:
                return
            console.step(f"index: {len(sent)} record(s) of {release.name}=={release.version} on {release.index} were lost "
                         "by the server (writes to one release at the same time); attaching them again")
            for f, body in sent:
                self.attach_result(f, body)
        raise IndexUnreachable(f"{release.index} kept losing records attached to {release.name}=={release.version}",
                               "run the stage again; a devpi-postgresql primary loses concurrent writes to one release (docs/scale.md)")

    def create_user(self, user: str, password: str) -> bool:
        console.add_secret(password)
        resp = self.request("PUT", quote(user), json={"password": password, "email": ""}, ok=(200, 201, 409))
        return resp.status_code != 409

    def create_index(self, index: str, *, volatile: bool, bases: list[str] | None = None) -> bool:
        """Create an index if missing; files and results may only be added by its owner.
        An existing index keeps its settings but gets the same tight ACLs."""
        owner = index.split("/", 1)[0]
        acls = {"acl_upload": [owner], "acl_toxresult_upload": [owner]}
        resp = self.request("PUT", index, ok=(200, 201, 409), json={"volatile": volatile, "bases": bases or [], **acls})
        if resp.status_code == 409:
            config = self.index_config(index)
            if any(config.get(k) != v for k, v in acls.items()):
                self.request("PATCH", index, json={**{k: v for k, v in config.items() if k not in ("projects", "type")}, **acls})
                console.step(f"server: {index}: uploads and results limited to {owner}")
        return resp.status_code != 409


def _is_devpi(resp: Any) -> bool:
    """devpi-server answers with its own headers (X-Devpi-Serial, X-Devpi-Uuid ...)."""
    return any(k.lower().startswith("x-devpi-") for k in resp.headers)


def _message(resp: Any) -> str:
    try:
        return str(resp.json().get("message", "")).strip() or resp.reason
    except ValueError:
        return resp.reason or ""
