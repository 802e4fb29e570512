"""A multipart form as the proxy writes it: names as browsers write them, the boundary in no
part."""

from __future__ import annotations

import email
import email.policy

from proxy.backends.wire.form import encoded, with_uploads
from proxy.core.audio import Upload


def parsed(content_type: str, body: bytes) -> list:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    form = email.message_from_bytes(head + body, policy=email.policy.HTTP)
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in form.iter_parts()
    ]


def test_fields_repeated_fields_and_a_file_in_order():
    content_type, body = encoded(
        {
            "model": "m",
            "granularity[]": ["word", "segment"],
            "file": ("a.wav", "audio/wav", b"RIFF"),
        }
    )
    assert parsed(content_type, body) == [
        ("model", None, "text/plain", b"m"),
        ("granularity[]", None, "text/plain", b"word"),
        ("granularity[]", None, "text/plain", b"segment"),
        ("file", "a.wav", "audio/wav", b"RIFF"),
    ]


def test_a_repeated_file_field_keeps_its_files_in_order():
    content_type, body = encoded(
        {"image[]": [("a.png", "image/png", b"A"), ("b.jpg", "image/jpeg", b"B")], "n": "2"}
    )
    assert parsed(content_type, body) == [
        ("image[]", "a.png", "image/png", b"A"),
        ("image[]", "b.jpg", "image/jpeg", b"B"),
        ("n", None, "text/plain", b"2"),
    ]


def test_uploads_follow_the_fields_each_fields_together_in_order():
    a, b, m = (Upload(f"{n}.png", "image/png", n.encode()) for n in ("a", "b", "m"))
    content_type, body = with_uploads({"prompt": "x"}, [("image[]", a), ("mask", m),
                                                        ("image[]", b)])  # fmt: skip
    assert parsed(content_type, body) == [
        ("prompt", None, "text/plain", b"x"),
        ("image[]", "a.png", "image/png", b"a"),
        ("image[]", "b.png", "image/png", b"b"),
        ("mask", "m.png", "image/png", b"m"),
    ]


def test_a_clients_names_cannot_end_a_header():
    _, body = encoded({'a"\r\nX-Evil: 1': "v", "file": ('b"\r\n.wav', "audio/wav\r\nX: y", b"")})
    assert b"\r\nX-Evil" not in body and b"\r\nX: y" not in body
    assert b'name="a%22%0D%0AX-Evil: 1"' in body
    assert b"Content-Type: application/octet-stream" in body


def test_a_boundary_a_part_holds_is_drawn_again():
    content_type, body = encoded({"text": "--B inside"}, boundary="B")
    assert not content_type.endswith("boundary=B")
    assert parsed(content_type, body) == [("text", None, "text/plain", b"--B inside")]
