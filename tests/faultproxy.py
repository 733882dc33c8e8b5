"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real devpi-server.

Tests point ci-kit's index-url at the proxy and add rules that match a request (method
and a predicate on path and body) and then delay it, answer 500, drop the connection
before forwarding, forward and drop the answer (the server acted, the client never
hears), or hang: hold the request for `seconds` and drop it unforwarded (an answer that
never comes, with no late side effect on the server). Each rule fires a bounded number of times; everything else is forwarded as is.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}


@dataclass
class Rule:
    method: str
    match: Callable[[str, bytes], bool]
    action: str  # "delay", "error", "drop-before", "drop-after", "hang"
    seconds: float = 0.0
    times: int = 1
    fired: int = 0
    hit: threading.Event | None = None  # set when the rule fires (before the delay)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.rules: list[Rule] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rule = proxy._rule(self.command, self.path, body)
                if rule is not None and rule.hit is not None:
                    rule.hit.set()
                if rule is not None and rule.action in ("delay", "hang"):
                    time.sleep(rule.seconds)
                if rule is not None and rule.action in ("drop-before", "hang"):
                    self.close_connection = True
                    with contextlib.suppress(OSError):  # the client may have given up already
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if rule is not None and rule.action == "error":
                    self._answer(500, [("Content-Type", "application/json")], b'{"message": "injected fault"}')
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
                headers["Host"] = f"{proxy.upstream.hostname}:{proxy.upstream.port}"
                # devpi writes absolute URLs from the Host header; keep them pointing at the proxy
                headers["X-Outside-Url"] = f"http://127.0.0.1:{proxy.port}"
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if rule is not None and rule.action == "drop-after":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._answer(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP | {"content-length"}], data)

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_PUSH = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _rule(self, method: str, path: str, body: bytes) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.fired < rule.times and rule.method == method and rule.match(path, body):
                    rule.fired += 1
                    return rule
        return None

    def add(self, method: str, match: Callable[[str, bytes], bool], action: str, seconds: float = 0.0,
            times: int = 1) -> Rule:
        rule = Rule(method, match, action, seconds, times, hit=threading.Event())
        with self.lock:
            self.rules.append(rule)
        return rule

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
