"""Read-your-writes against devpi replicas: part of the index layer (index.py owns the
HTTP session and calls this on every answer; nothing else uses it).

Why: a job pointed at a replica writes through it (devpi relays writes to the primary)
and reads from it, and a replica applies the primary's changes a little later. devpi
numbers every change with a serial and puts on every answer the serial of the server
that gave it (`X-Devpi-Serial`: the new serial for a write, the serial the server had
reached for a read). So:

- after each write, remember its serial; an answer to a read made at an older serial is
  stale: wait until the server has reached it, then ask again;
- on the first read from a replica (every answer also says whose it is: `X-Devpi-Uuid`
  differs from `X-Devpi-Primary-Uuid` only on a replica), first wait for the serial
  the primary had then, so that a job sees everything the jobs before it wrote, on any
  server (job 1 pushed through the primary, job 2 reads from a replica);
- a server that does not get there within replica-wait seconds is an error naming both
  serials (exit 5), never a stale answer acted on.

Against a standalone server or the primary this costs nothing: no request is added, and
the answers' serials are never older than our own writes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ci_kit import console
from ci_kit.errors import IndexUnreachable

if TYPE_CHECKING:
    from ci_kit.index import Index

READS = frozenset({"GET", "HEAD"})


def serial_of(resp: Any) -> int | None:
    """The serial devpi put on an answer; None for an answer that is not devpi's."""
    try:
        return int(resp.headers["X-Devpi-Serial"])
    except (KeyError, TypeError, ValueError):
        return None


def is_replica(resp: Any) -> bool:
    """Whether a devpi answer came from a replica: only there is the node's own uuid
    not the primary's (a standalone server and a primary name themselves twice; a
    replica that has not reached its primary yet names no primary)."""
    uuid = resp.headers.get("X-Devpi-Uuid")
    return bool(uuid) and uuid != resp.headers.get("X-Devpi-Primary-Uuid")


class Serials:
    """The serial this job must see, and the bounded wait for a replica to reach it."""

    def __init__(self, index: Index, primary_url: str = "", wait: float = 60.0) -> None:
        self.index = index
        self.primary_url = primary_url  # asked for the primary's serial when set; else the replica's +status
        self.wait = wait
        self.written = -1  # the newest serial our own writes produced
        self.replica: bool | None = None  # learned from the first devpi answer
        self.synced = False  # the first read from a replica has waited for the primary's serial
        self.waited = 0.0  # seconds spent waiting, in all (for progress output and benchmarks)

    def before(self, method: str) -> None:
        """Before this job's first write: learn whether the server is a replica (one GET
        of its cheapest page) and, if so, let it catch up with the primary first. A
        replica answers a relayed write only once it holds the write's serial, so a
        login through a replica still far behind would otherwise hang for index-timeout."""
        if self.replica is None and method.upper() not in READS:
            self.index.request("GET", "+api")  # a read: its answer comes back through stale(), which syncs
            self.replica = bool(self.replica)  # an answer without devpi's headers: ask once only

    def stale(self, method: str, resp: Any) -> bool:
        """Record a write's serial; for a read, True after waiting when its answer was
        older than what this job must see (the caller asks again), else False."""
        serial = serial_of(resp)
        if serial is None:
            return False
        if self.replica is None:
            self.replica = is_replica(resp)
        if method.upper() not in READS:
            self.written = max(self.written, serial)
            return False
        if self.replica and not self.synced:
            return self.sync(serial)
        if serial >= self.written:
            return False
        self.reach(self.written, serial, "this job's last write")
        return True

    def sync(self, serial: int | None) -> bool:
        """Once per job on a replica: wait for the serial the primary has now, so the job
        sees everything written before it began (job 1 through the primary, job 2 here)."""
        self.synced = True
        need, why = self.written, "this job's last write"
        primary = self.primary_serial()
        if primary > need:
            need, why = primary, "the primary's when this job began"
        if serial is None or serial >= need:
            return False
        self.reach(need, serial, why)
        return True

    def retry(self, method: str, resp: Any) -> bool:
        """True (after a pause) for a 500 that a replica gives while it is still fetching
        the file asked for from its primary (devpi's replica and its file-replication
        thread race to write it); bounded by replica-wait over the whole job."""
        return resp.status_code == 500 and method.upper() in READS and self.again()

    def again(self) -> bool:
        """On a replica, within the job's replica-wait: pause, then True (ask again).
        devpi's replicas copy files from the primary in the background, and under load
        can answer with a 500 or with the part of a file copied so far; both pass."""
        if not self.replica or self.waited >= self.wait:
            return False
        console.step("index: the replica is still copying from its primary; asking again in 0.5s")
        time.sleep(0.5)
        self.waited += 0.5
        return True

    def reach(self, need: int, have: int, why: str) -> None:
        """Wait until the server has reached serial `need`; polls its cheapest page."""
        started = time.monotonic()
        delay = 0.05
        while have < need:
            left = self.wait - (time.monotonic() - started)
            if left <= 0:
                raise IndexUnreachable(
                    f"the index at {self.index.url} is a replica at serial {have} and did not reach serial {need} "
                    f"({why}) within {self.wait:.0f}s",
                    "check its replication (GET /+status: primary-serial, replication-errors), or point index-url at "
                    "the primary; run the stage again once it has caught up (replica-wait sets the wait)")
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)
            have = self.serial(self.index.url, "+api")
        spent = time.monotonic() - started
        self.waited += spent
        console.step(f"index: waited {spent:.2f}s for the replica to reach serial {need} ({why})")

    def primary_serial(self) -> int:
        """The primary's serial now, from the primary itself: primary-url when set, else
        the URL the replica's +status names. A replica's own idea of the primary's serial
        (its +status primary-serial) lags by the very delay at stake, so it is only the
        fallback when the primary cannot be reached from here."""
        if self.primary_url:
            return self.serial(self.primary_url, "+api")
        status = self.status()
        url = str(status.get("primary-url") or "").rstrip("/")
        if url.startswith(("http://", "https://")):
            try:
                return self.serial(url, "+api")
            except IndexUnreachable:
                console.step(f"index: the primary the replica follows ({url}) does not answer here; "
                             "relying on the replica's view of its serial (set primary-url to a URL that answers)")
        started = time.monotonic()
        while not isinstance(status.get("primary-serial"), int):  # it has not heard from its primary yet
            if time.monotonic() - started > self.wait:
                raise IndexUnreachable(f"the replica at {self.index.url} has not heard from its primary "
                                       f"({url or 'unknown'}) within {self.wait:.0f}s",
                                       "check that the primary runs and the replica reaches it (GET /+status on both)")
            time.sleep(0.2)
            status = self.status()
        return int(status["primary-serial"])

    def status(self) -> dict[str, Any]:
        """The replica's +status; a 500 (devpi renders replication state that its threads
        are changing) is asked again within replica-wait."""
        while True:
            try:
                result = self.get(self.index.url, "+status").json().get("result")
                return result if isinstance(result, dict) else {}
            except (ValueError, AttributeError):
                return {}
            except IndexUnreachable:
                if not self.again():
                    raise

    def serial(self, url: str, page: str) -> int:
        serial = serial_of(self.get(url, page))
        if serial is None:
            raise IndexUnreachable(f"{url} did not answer like a devpi-server (no X-Devpi-Serial on /{page})",
                                   "check index-url and primary-url: each must be the root URL of a devpi-server")
        return serial

    def get(self, url: str, page: str) -> Any:
        """One GET on the index's session, not through Index.request (which calls us)."""
        import requests

        try:
            resp = self.index.session.get(f"{url}/{page}", timeout=(min(10.0, self.index.timeout), self.index.timeout))
        except requests.RequestException as exc:
            raise IndexUnreachable(f"cannot ask {url} for its serial ({type(exc).__name__})",
                                   "check the server (and primary-url, if set), then run the stage again") from None
        if resp.status_code != 200:
            raise IndexUnreachable(f"{url}/{page} answered {resp.status_code} {resp.reason}",
                                   "check the server (and primary-url, if set), then run the stage again")
        return resp
