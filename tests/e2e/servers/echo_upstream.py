"""An OpenAI-compatible engine that keeps every body it is sent (``GET /received``, emptied
by ``POST /received/clear``) and answers each chat with the last message's text: whole
with its usage, streamed without any (as several engines stream, whatever
``stream_options`` asks). Its audio routes keep what they were sent too: a transcription's
form (its fields, and its file's name, type, size and SHA-256), answered with that digest
and counted tokens (as events, a word at a time, where it asks for a stream); speech's
body, answered with audio bytes made from its text (a WAV that plays, where it asks for
``wav``), the first piece at once and the rest once ``POST /received/release`` lets them
go. Its image routes keep a generation's body and an edit's form (its files as a
transcription's), answered with ``n`` pictures (PNGs of one pixel) made from the prompt,
and counted tokens. The standard library alone, so that it starts at once
(:class:`tests.e2e.refusing.EchoServer` runs it).

``python tests/e2e/servers/echo_upstream.py --port PORT``
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import hashlib
import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def picture(prompt: str, number: int) -> bytes:
    """The ``number``-th picture the engine draws of ``prompt``: a PNG of one pixel, its red
    and green the first bytes of the prompt's digest, its blue the number."""
    digest = hashlib.sha256(prompt.encode()).digest()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))  # fmt: skip

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00" + digest[:2] + bytes([number]))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))  # fmt: skip


def wav_header(size: int) -> bytes:
    """The header of a WAV of ``size`` bytes of 16-bit mono samples, 16,000 a second."""
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
            + b"data" + struct.pack("<I", size))  # fmt: skip


def handler() -> type:
    received: list = []
    keeping = threading.Lock()
    released = threading.Event()

    class Echoing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # a head and a body written apart: no delayed ACK

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/received/clear":
                with keeping:
                    received.clear()
                released.clear()
                self.reply(200, {"cleared": True})
                return
            if self.path == "/received/release":
                released.set()
                self.reply(200, {"released": True})
                return
            if self.path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
                self.transcribe(body)
                return
            if self.path == "/v1/audio/speech":
                self.speak(json.loads(body))
                return
            if self.path == "/v1/images/generations":
                asked = json.loads(body)
                with keeping:
                    received.append({"path": self.path, "body": asked})
                self.draw(asked["prompt"], int(asked.get("n", 1)))
                return
            if self.path == "/v1/images/edits":
                fields, files = self.form(body)
                with keeping:
                    received.append({"path": self.path, "fields": fields, "files": files})
                self.draw(fields["prompt"][0], int(fields.get("n", ["1"])[0]))
                return
            asked = json.loads(body)
            with keeping:
                received.append(asked)
            said = str(asked["messages"][-1].get("content"))
            if asked.get("stream"):
                self.stream(asked["model"], said)
                return
            prompt = len(json.dumps(asked["messages"])) // 4
            self.reply(200, {
                "id": "chatcmpl-echo", "object": "chat.completion", "created": 1,
                "model": asked["model"], "system_fingerprint": "fp_echo",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": said},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": len(said.split()),
                          "total_tokens": prompt + len(said.split())},
            })  # fmt: skip

        def do_GET(self) -> None:
            if self.path == "/received":
                with keeping:
                    self.reply(200, {"bodies": list(received)})
            elif self.path == "/v1/models":
                self.reply(200, {"object": "list", "data": [{"id": "echo", "object": "model"}]})
            else:
                self.reply(404, {"error": {"message": "not found", "type": "invalid_request"}})

        def stream(self, model: str, said: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            words = said.split(" ")  # a piece each, its space kept
            pieces = (
                [{"role": "assistant"}]
                + [{"content": word + " "} for word in words[:-1]]
                + [{"content": words[-1]}]
            )
            for delta in pieces + [{}]:
                event = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "model": model,
                         "choices": [{"index": 0, "delta": delta,
                                      "finish_reason": None if delta else "stop"}]}  # fmt: skip
                self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

        def form(self, body: bytes) -> tuple:
            """``(fields, files)`` of a multipart form: each field's texts, and each file as
            its field's name, file name, type, size and SHA-256, in order."""
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            form = email.message_from_bytes(head + body, policy=email.policy.HTTP)
            fields: dict = {}
            files: list = []
            for part in form.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True)
                if part.get_filename() is not None:
                    files.append({
                        "field": name,
                        "filename": part.get_filename(),
                        "type": part.get_content_type(),
                        "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    })  # fmt: skip
                else:
                    fields.setdefault(name, []).append(data.decode())
            return fields, files

        def draw(self, prompt: str, n: int) -> None:
            """Pictures made of the prompt (:func:`picture`)."""
            drawn = [base64.b64encode(picture(prompt, each)).decode() for each in range(n)]
            words = len(prompt.split())
            usage = {"input_tokens": words, "output_tokens": 272 * n,
                     "total_tokens": words + 272 * n}  # fmt: skip
            self.reply(200, {"created": 1, "data": [{"b64_json": each} for each in drawn],
                             "usage": usage})  # fmt: skip

        def transcribe(self, body: bytes) -> None:
            fields, files = self.form(body)
            audio = {key: value for key, value in files[0].items() if key != "field"}
            with keeping:
                received.append({"path": self.path, "fields": fields, "file": audio})
            text = f"heard {audio['sha256'][:16]} of {audio['size']} bytes"
            if fields.get("response_format", ["json"])[0] == "text":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text.encode())
                return
            usage = {"type": "tokens", "input_tokens": audio["size"] // 100, "output_tokens": 6,
                     "total_tokens": audio["size"] // 100 + 6}  # fmt: skip
            if fields.get("stream") == ["true"]:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for word in text.split(" "):
                    delta = {"type": "transcript.text.delta", "delta": word + " "}
                    self.wfile.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
                    self.wfile.flush()
                done = {"type": "transcript.text.done", "text": text, "usage": usage}
                self.wfile.write(b"data: " + json.dumps(done).encode() + b"\n\n")
                self.close_connection = True
                return
            self.reply(200, {"text": text, "usage": usage})

        def speak(self, asked: dict) -> None:
            with keeping:
                received.append({"path": self.path, "body": asked})
            piece = hashlib.sha256(asked["input"].encode()).digest() * 128  # 4 KiB
            wav = asked.get("response_format") == "wav"
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav" if wav else "audio/mpeg")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write((wav_header(len(piece) * 4) if wav else b"") + piece)
            self.wfile.flush()
            released.wait(30)
            for _ in range(3):
                self.wfile.write(piece)
            self.close_connection = True

        def reply(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Echoing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), handler()).serve_forever()


if __name__ == "__main__":
    main()
