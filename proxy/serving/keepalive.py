"""waitress, keeping the connection after a streamed answer.

waitress (3.0) closes the connection after every answer that has no ``Content-Length``,
chunked or not: each streamed chat costs its client a new connection, and an agent sending
hundreds of them opens hundreds. A chunked answer says itself where it ends, so under
HTTP/1.1 its connection carries the client's next request, unless the client asked to close
it or the answer failed (waitress closes those itself).
"""

from __future__ import annotations

from waitress.channel import HTTPChannel
from waitress.task import WSGITask

CLOSING = b"\r\nConnection: close\r\n"


class KeptTask(WSGITask):
    """A task whose chunked answer leaves its connection open."""

    def build_response_header(self) -> bytes:
        asked = self.request.headers.get("CONNECTION", "").lower()
        closing = self.close_on_finish or asked == "close"
        head = super().build_response_header()
        if self.chunked_response and self.version == "1.1" and not closing:
            self.close_on_finish = False
            head = head.replace(CLOSING, b"\r\n", 1)
        return head


class KeptChannel(HTTPChannel):
    task_class = KeptTask
