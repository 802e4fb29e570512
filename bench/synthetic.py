"""A synthetic llama.cpp server: the current ``/completion`` wire format with no model behind it.

It answers as fast as asyncio allows, so that through-the-proxy numbers show the proxy's own
cost. The prompt steers it, so a direct request and one through the proxy behave alike:
``rate=50`` paces the stream at 50 tokens a second (default: as fast as it can), and ``stamp``
makes each token's text the monotonic time it was written, in nanoseconds, so the client can
tell how long the chunk took to arrive. ``n_predict`` sets the number of tokens (default 16).

Like llama-server, it closes the connection after a stream (while announcing keep-alive).
Run it alone with ``python -m bench.synthetic --port 8090``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOKEN = " tok"
MODEL = "synthetic.gguf"


def dumps(payload: dict) -> bytes:
    """Compact JSON, as llama-server writes it."""
    return json.dumps(payload, separators=(",", ":")).encode()


def props() -> dict:
    """What ``GET /props`` says about the model; the proxy reads it to detect the server."""
    return {
        "default_generation_settings": {"n_ctx": 4096, "params": {"temperature": 0.8}},
        "total_slots": 4096,
        "model_alias": MODEL,
        "model_path": f"/models/{MODEL}",
        "chat_template": CHAT_TEMPLATE,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "build_info": "b0-synthetic",
        "modalities": {"vision": False, "audio": False},
    }


class Steering:
    """How one request is answered, read from its body."""

    def __init__(self, body: dict) -> None:
        words = str(body.get("prompt", "")).split()
        options = dict(word.partition("=")[::2] for word in words)
        self.tokens = max(int(body.get("n_predict") or 16), 0)
        rate = float(options.get("rate") or 0)
        self.interval = 1 / rate if rate > 0 else 0.0
        self.stamp = "stamp" in options
        self.prompt_tokens = max(len(words), 1)
        self.slot = body.get("id_slot", -1)

    def text(self) -> str:
        return f" {time.monotonic_ns()}" if self.stamp else TOKEN

    def partial(self, predicted: int) -> bytes:
        return dumps(
            {
                "index": 0,
                "content": self.text(),
                "tokens": [predicted + 300],
                "stop": False,
                "id_slot": self.slot,
                "tokens_predicted": predicted,
                "tokens_evaluated": self.prompt_tokens,
            }
        )

    def final(self, content: str, *, stream: bool) -> bytes:
        return dumps(
            {
                "index": 0,
                "content": content,
                "tokens": [],
                "id_slot": self.slot,
                "stop": True,
                "model": MODEL,
                "tokens_predicted": self.tokens,
                "tokens_evaluated": self.prompt_tokens,
                "generation_settings": {
                    "seed": 4294967295,
                    "temperature": 0.8,
                    "top_k": 40,
                    "top_p": 0.95,
                    "min_p": 0.05,
                    "n_predict": self.tokens,
                    "n_keep": -1,
                    "stream": stream,
                    "stop": [],
                },
                "prompt": "<s> bench",
                "has_new_line": False,
                "truncated": False,
                "stop_type": "limit",
                "stopping_word": "",
                "tokens_cached": self.prompt_tokens,
                "timings": {
                    "cache_n": 0,
                    "prompt_n": self.prompt_tokens,
                    "prompt_ms": 0.1,
                    "predicted_n": self.tokens,
                    "predicted_ms": 1.0,
                },
            }
        )


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve HTTP/1.1 requests on one connection until the client closes it or a stream ends."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, path, headers = parse_head(head)
            length = int(headers.get(b"content-length", b"0"))
            body = await reader.readexactly(length) if length else b""
            if not await respond(writer, method, path, body):
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def parse_head(head: bytes) -> tuple:
    request_line, *lines = head[:-4].split(b"\r\n")
    method, path, _ = request_line.split(b" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return method, path.split(b"?")[0], headers


async def respond(writer: asyncio.StreamWriter, method: bytes, path: bytes, body: bytes) -> bool:
    """Answer one request; False when the connection is to be closed."""
    if method == b"GET" and path in (b"/health", b"/v1/health"):
        send_json(writer, 200, b'{"status":"ok"}')
    elif method == b"GET" and path == b"/props":
        send_json(writer, 200, dumps(props()))
    elif method == b"GET" and path in (b"/v1/models", b"/models"):
        send_json(
            writer,
            200,
            dumps(
                {
                    "object": "list",
                    "data": [
                        {"id": MODEL, "object": "model", "created": 0, "owned_by": "llamacpp"}
                    ],
                }
            ),
        )
    elif method == b"POST" and path in (b"/completion", b"/completions"):
        request = json.loads(body or b"{}")
        steering = Steering(request)
        if request.get("stream"):
            await stream(writer, steering)
            return False
        await asyncio.sleep(steering.interval * steering.tokens)
        send_json(writer, 200, steering.final(TOKEN * steering.tokens, stream=False))
    else:
        send_json(
            writer,
            404,
            b'{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}',
        )
    return True


def send_json(writer: asyncio.StreamWriter, status: int, payload: bytes) -> None:
    reason = b"OK" if status == 200 else b"Not Found"
    writer.write(
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: %d\r\nKeep-Alive: timeout=5, max=100000\r\n\r\n%s"
        % (status, reason, len(payload), payload)
    )


async def stream(writer: asyncio.StreamWriter, steering: Steering) -> None:
    """Write one chunked SSE event per token, then the final ``stop: true`` event."""
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100000\r\n\r\n"
    )
    start = time.monotonic()
    for predicted in range(1, steering.tokens + 1):
        if steering.interval:
            await asyncio.sleep(max(start + predicted * steering.interval - time.monotonic(), 0))
        write_event(writer, steering.partial(predicted))
        await writer.drain()  # pauses while the client is behind; raises once it has gone
        if not steering.interval:
            await asyncio.sleep(0)  # let the other streams have a turn, as slots do
    write_event(writer, steering.final("", stream=True))
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def write_event(writer: asyncio.StreamWriter, payload: bytes) -> None:
    event = b"data: " + payload + b"\n\n"
    writer.write(b"%x\r\n%s\r\n" % (len(event), event))


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
