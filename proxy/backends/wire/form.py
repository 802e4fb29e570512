"""A multipart form (RFC 7578) as a request's body: what an upload goes to a server as. Pure.

Names and file names come from clients: each is written as browsers write them (HTML's
form encoding), a double quote, CR and LF percent-encoded, so that none ends its header
early. The boundary is random, and drawn again in the rare case a part holds it.
"""

from __future__ import annotations

import secrets
from typing import Iterable, Mapping, Optional, Tuple, Union

# a field's value: a text, a file as ``(name, type, bytes)``, or several (a repeated field)
File = Tuple[str, str, bytes]
Value = Union[str, File, Iterable[Union[str, File]]]
ESCAPED = {ord('"'): "%22", ord("\r"): "%0D", ord("\n"): "%0A"}


def encoded(fields: Mapping[str, Value], boundary: Optional[str] = None) -> tuple:
    """``(content type, body)`` of ``fields``, in their order."""
    parts = list(_parts(fields))
    while True:
        mark = (boundary or "oai-proxy-" + secrets.token_hex(16)).encode()
        if not any(mark in head or mark in data for head, data in parts):
            break
        boundary = None
    body = b"".join(b"--%s\r\n%s\r\n%s\r\n" % (mark, head, data) for head, data in parts)
    return f"multipart/form-data; boundary={mark.decode()}", body + b"--%s--\r\n" % mark


def with_uploads(fields: Mapping[str, Value], uploads: Iterable[tuple]) -> tuple:
    """``(content type, body)`` of ``fields`` and then ``uploads`` (``(field, upload)``, in
    their order; a field's several uploads together, as a repeated field)."""
    files: dict = {}
    for name, upload in uploads:
        files.setdefault(name, []).append((upload.filename, upload.content_type, upload.data))
    return encoded({**fields, **files})


def _parts(fields: Mapping[str, Value]) -> Iterable[tuple]:
    for name, value in fields.items():
        disposition = f'Content-Disposition: form-data; name="{quoted(name)}"'
        for each in (value,) if isinstance(value, (str, tuple)) else value:
            yield _part(disposition, each)


def _part(disposition: str, value: Union[str, File]) -> tuple:
    """``(head, data)`` of one part: a text, or a file."""
    if isinstance(value, str):
        return f"{disposition}\r\n".encode("utf-8"), value.encode("utf-8")
    filename, content_type, data = value
    head = (
        f'{disposition}; filename="{quoted(filename)}"\r\nContent-Type: {_type(content_type)}\r\n'
    )
    return head.encode("utf-8"), data


def quoted(text: str) -> str:
    """A name within a header's quotes, as browsers write it."""
    return text.translate(ESCAPED)


def _type(content_type: str) -> str:
    """A client's content type, kept where it is one plain line, else the generic one."""
    if content_type and content_type.isprintable() and content_type.isascii():
        return content_type
    return "application/octet-stream"
