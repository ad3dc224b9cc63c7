"""A real webhook endpoint for tests: an HTTP server on a free loopback port, in a thread of
its own, that verifies every delivery with the Standard Webhooks reference library and reads
its body with the CloudEvents SDK."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.bindings import http
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Policy = Callable[[str, int], int]
"""The status to answer a message (its `webhook-id`), given how often it was tried before."""


class Receiver:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.secret: str | None = None
        """Until it is set, every request gets 503."""
        self.requests: list[tuple[str, int]] = []  # (webhook-id, status answered), in order
        self.accepted: list[dict[str, Any]] = []  # the CloudEvents first accepted, in order
        self.refused: list[str] = []  # what failed verification, and why
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def accepted_ids(self) -> list[str]:
        with self._lock:
            return [e["id"] for e in self.accepted]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(receiver.answer(dict(self.headers.items()), body))
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            if self.secret is None:
                return 503
            message_id = headers.get("webhook-id", "")
            try:
                Webhook(self.secret).verify(body, headers)
                event = http.from_http_event(http.HTTPMessage(headers=headers, body=body))
            except (WebhookVerificationError, ValueError) as exc:
                self.refused.append(f"{message_id}: {exc}")
                return 400
            tries = sum(1 for seen, _ in self.requests if seen == message_id)
            status = self.policy(message_id, tries)
            self.requests.append((message_id, status))
            if 200 <= status < 300 and message_id not in {e["id"] for e in self.accepted}:
                self.accepted.append({**event.get_attributes(), "data": event.get_data()})
            return status


@contextlib.contextmanager
def receiving(policy: Policy) -> Iterator[Receiver]:
    receiver = Receiver(policy)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
