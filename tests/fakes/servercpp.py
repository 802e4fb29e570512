"""Serve a scriptable, wire-faithful fake of llama.cpp/PowerInfer ``server`` on a real port.

The proxy's adapter and live tests need an upstream that fails the way the real ones do
(404 ``File Not Found`` for a busy slot, aborting on mistyped JSON, streams that end
without ``stop:true``), which a canned ``responses`` mock cannot do. Shapes live in
:mod:`.servercpp_wire`; this module holds routing, streaming and the server lifecycle.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from typing import Any, Iterable, Iterator

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from . import servercpp_wire as wire
from .servercpp_wire import A, B, C

_DEFAULTS: dict[str, Any] = dict(
    tokens=["Hello", ",", " world", "!"],
    stop_reason="eos",
    token_delay=0.0,
    fail_mode=None,
    model_alias=None,
    model_path="models/tiny-llama.gguf",
    gate=None,
    api_key=None,
    embedding=False,
    keepalive=False,
    loading=False,
    prompt_tokens=None,
    n_ctx=None,
    n_slots=None,
    n_embd=8,
    busy_wait=0.2,
    fim=True,  # the model has fill-in-the-middle tokens (C's /infill answers 501 without)
    chat_template="{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
)
_FAIL_MODES = (None, "busy", "http500", "garbage", "midstream_error", "truncated_stream", "hang")
_C_PUBLIC = ("/health", "/v1/health", "/models", "/v1/models", "/")
_NOT_FOUND = "File Not Found"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:  # one line per request drowns test output
        pass


class _Dropped(ConnectionAbortedError):
    """Raised after shutting the socket; werkzeug treats it as a dropped connection."""


class FakeServerCpp:
    """Run one server.cpp kind in a daemon thread; script it through attributes.

    ``FakeServerCpp("powerinfer" | "llamacpp-2023" | "llamacpp", **script)`` where the
    script keys are those of ``_DEFAULTS``. All of them stay settable between requests.
    """

    def __init__(self, kind: str, **script: Any) -> None:
        if kind not in wire.KINDS:
            raise ValueError(f"kind must be one of {wire.KINDS}, not {kind!r}")
        unknown = set(script) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown script keys: {sorted(unknown)}")
        if kind == A and script.get("api_key"):
            raise ValueError("PowerInfer's server has no --api-key")
        self.kind = kind
        for key, value in _DEFAULTS.items():
            setattr(self, key, list(value) if isinstance(value, list) else value)
        for key, value in script.items():
            setattr(self, key, value)
        if self.n_ctx is None:
            self.n_ctx = 4096 if kind == C else 512
        if self.n_slots is None:
            self.n_slots = 4 if kind == C else 1
        self._last_used = {i: 0.0 for i in range(self.n_slots)}  # A/B pick free slots by it
        self.vocab = wire.Vocab()
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._port = 0
        self._in_flight = 0
        self._busy: set[int] = set()
        self._slot_n_keep: dict[int, int] = {}
        self.reset()

    def reset(self) -> None:
        """Forget what was recorded, keeping the script."""
        self.requests: list[tuple[str, dict, dict]] = []
        self.type_violations: list[str] = []
        self.requested_slots: list[Any] = []
        self.cancelled = threading.Event()
        self.gate_released_in_time: bool | None = None
        self.active_streams = 0
        self.refusals = 0
        self.peak_in_flight = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeServerCpp:
        """Listen (again, on the same port after the first start) and serve in a thread."""
        if self._server is not None:
            return self
        deadline = time.monotonic() + 5
        while True:  # someone else may hold the port for a moment: retry, then give up
            try:  # werkzeug prints and raises SystemExit when the port is taken
                if self._port:
                    _probe(self._port)
                server = make_server(
                    "127.0.0.1", self._port, self._app, threaded=True, request_handler=_QuietHandler
                )
                break
            except (OSError, SystemExit) as exc:
                if not self._port or time.monotonic() > deadline:
                    raise OSError(f"cannot listen on 127.0.0.1:{self._port}") from exc
                time.sleep(0.05)
        self._stopping = threading.Event()
        self._server, self._port = server, server.port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{self.kind}-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop like a killed process: close the listener and drop every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()  # serve_forever() then closes the listening socket itself
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            _shutdown(conn)

    def __enter__(self) -> FakeServerCpp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing --------------------------------------------------------------------------

    def _app(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        sock, stopping = environ.get("werkzeug.socket"), self._stopping
        if stopping.is_set():
            _drop(sock)
        with self._lock:
            self._conns.add(sock)
        try:
            result = self._dispatch(environ, start_response, stopping)
        except BaseException:
            self._forget(sock)
            raise
        return self._closing(result, sock)

    def _closing(self, result: Iterable[bytes], sock: socket.socket) -> Iterator[bytes]:
        try:
            yield from result
        finally:
            self._forget(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)

    def _send(
        self,
        start_response: Any,
        status: int,
        body: Any,
        ctype: str | None = None,
        headers: tuple = (),
    ) -> list[bytes]:
        if not isinstance(body, str):
            body = wire.dumps(self.kind, body)
            ctype = ctype or (
                "application/json; charset=utf-8" if self.kind == C else "application/json"
            )
        data = body.encode()
        start_response(
            f"{status} {HTTP_STATUS_CODES[status]}",
            [("Content-Type", ctype or "text/plain"), ("Content-Length", str(len(data))), *headers],
        )
        return [data]

    def _error(self, start_response: Any, status: int, message: str, kind: str) -> list[bytes]:
        """Answer an error the kind's way: text/plain for A/B, typed JSON for C."""
        if self.kind != C:
            return self._send(start_response, status, message)
        if kind in ("authentication_error", "unavailable_error", "not_found_error"):
            # built in server-http.cpp: key order message/type/code
            err = {"message": message, "type": kind, "code": status}
        else:
            err = {"code": status, "message": message, "type": kind}
        return self._send(start_response, status, {"error": err})

    def _wait(self, stopping: threading.Event, seconds: float, sock: socket.socket) -> None:
        if stopping.wait(seconds):
            _drop(sock)

    # -- routes ----------------------------------------------------------------------------

    def _dispatch(self, environ: dict, start_response: Any, stopping: threading.Event):
        req = Request(environ)
        raw = req.get_data()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        path, gen = req.path, self.kind
        self.requests.append((path, body if isinstance(body, dict) else {}, dict(req.headers)))
        if gen == C and self.loading:
            return self._error(start_response, 503, "Loading model", "unavailable_error")
        if gen == C and self.api_key and path not in _C_PUBLIC and not self._c_key_ok(req):
            return self._error(start_response, 401, "Invalid API Key", "authentication_error")
        routes = {
            ("POST", "/completion"): self._completion,
            ("POST", "/tokenize"): self._tokenize,
            ("POST", "/detokenize"): self._detokenize,
            ("GET", "/props"): self._props,
            ("POST", "/embedding"): self._embedding,
        }
        if gen == C:
            routes.update({("GET", p): self._health for p in ("/health", "/v1/health")})
            routes.update({("GET", p): self._models for p in ("/models", "/v1/models")})
            routes.update(
                {
                    ("GET", "/slots"): self._slots,
                    ("POST", "/embeddings"): self._embedding,
                    ("POST", "/infill"): self._infill,
                }
            )
        else:
            routes[("GET", "/model.json")] = self._model_json
            if gen == B:
                routes[("GET", "/v1/models")] = self._models
        view = routes.get((req.method, path))
        if view is None:
            return self._error(start_response, 404, _NOT_FOUND, "not_found_error")
        return view(start_response, body, req, environ, stopping)

    def _c_key_ok(self, req: Request) -> bool:
        auth = req.headers.get("Authorization", "")
        given = [auth[7:] if auth.startswith("Bearer ") else auth, req.headers.get("X-Api-Key")]
        return self.api_key in given

    @property
    def model_name(self) -> str:
        """A/B report the alias or the model path; C the alias or the file name."""
        if self.model_alias:
            return self.model_alias
        return os.path.basename(self.model_path) if self.kind == C else self.model_path

    def _infill(self, start_response, body, req, environ, stopping):
        """C's fill-in-the-middle: the gap's two sides in the model's FIM prompt, then as
        ``/completion`` goes on."""
        if not self.fim:
            return self._error(
                start_response,
                501,
                "Infill is not supported by this model: prefix token is missing.",
                "not_supported_error",
            )
        if not isinstance(body, dict):
            return self._completion(start_response, body, req, environ, stopping)
        sides = body.get("input_prefix", ""), body.get("input_suffix", "")
        prompt = "<PRE>{}<SUF>{}<MID>{}".format(*sides, body.get("prompt", ""))
        return self._completion(start_response, {**body, "prompt": prompt}, req, environ, stopping)

    def _completion(self, start_response, body, req, environ, stopping):
        gen, sock = self.kind, environ.get("werkzeug.socket")
        if (
            gen == B
            and self.api_key
            and req.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return self._send(start_response, 401, "Unauthorized")
        if not isinstance(body, dict):
            msg = "[json.exception.parse_error.101] parse error at line 1, column 1: syntax error"
            return self._error(
                start_response,
                500,
                f"500 Internal Server Error\n{msg}" if gen != C else msg,
                "server_error",
            )
        bad, verdict = wire.check_types(gen, body)
        self.type_violations.extend(bad)
        if verdict == "abort":  # A/B: std::terminate on the inference thread
            _drop(sock)
        if verdict == "reject":
            return self._error(
                start_response, 400, '"stop" must be an array of strings', "invalid_request_error"
            )
        if "prompt" not in body and gen != A:
            if gen == B:
                return self._error(
                    start_response,
                    500,
                    "500 Internal Server Error\n[json.exception."
                    "out_of_range.403] key 'prompt' not found",
                    "server_error",
                )
            return self._error(
                start_response, 400, '"prompt" must be provided', "invalid_request_error"
            )
        prompt = body.get("prompt", "")
        slot_asked = body.get(wire.slot_key(gen))
        self.requested_slots.append(slot_asked)
        slot = wire.param(body, wire.slot_key(gen), -1)
        if gen == C:
            slot = slot % self.n_slots if slot >= 0 else 0
        elif not 0 <= slot < self.n_slots:
            slot = -1  # any free one
        stream = wire.param(body, "stream", False)
        mode = self.fail_mode
        if mode not in _FAIL_MODES:
            raise ValueError(f"unknown fail_mode {mode!r}")
        if mode == "hang":
            self._wait(stopping, 30, sock)
        elif mode == "busy" and gen == C:  # C queues the task until a slot frees
            self._wait(stopping, self.busy_wait, sock)
        elif mode == "busy" or (mode == "midstream_error" and not stream):
            if gen == C:
                return self._error(start_response, 500, "fake generation failure", "server_error")
            return self._refuse(start_response, stream)
        elif mode == "http500":
            return self._error(
                start_response,
                500,
                "500 Internal Server Error\nfake failure" if gen != C else "fake failure",
                "server_error",
            )
        elif mode == "garbage":
            return self._send(
                start_response,
                200,
                "data: {garbage\n\n" if stream else "<html>oops",
                "text/event-stream" if stream else "application/json",
            )
        n_prompt = self.prompt_tokens or wire.count_prompt_tokens(prompt)
        if gen == C and n_prompt >= self.n_ctx:
            err = {
                "code": 400,
                "message": f"request ({n_prompt} tokens) exceeds the available context "
                f"size ({self.n_ctx} tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": n_prompt,
                "n_ctx": self.n_ctx,
            }
            return self._send(start_response, 400, {"error": err})
        slot = self._take_slot(slot)
        if slot is None:  # A/B have no queue: every slot busy is a refusal
            self.refusals += 1
            return self._refuse(start_response, stream)
        job, result = self._job(body, prompt, slot, n_prompt)
        if gen == B and isinstance(prompt, list) and len(prompt) > 1:
            self._give_slot(slot)
            self.type_violations.append("prompt")  # split_multiprompt_task: broken before 4ffc7a17d
            empty = wire.final(job, wire.Plan([], "", "eos"), streamed=False)
            return self._send(start_response, 200, ["results", [empty] * len(prompt)])
        if mode == "truncated_stream" and not stream:
            self._give_slot(slot)
            data = wire.dumps(gen, wire.final(job, result, streamed=False)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return self._truncated(data[: len(data) // 2], sock)
        if not stream:
            try:
                self._wait(stopping, self.token_delay * len(result.steps), sock)
            finally:
                self._give_slot(slot)
            return self._send(start_response, 200, wire.final(job, result, streamed=False))
        headers = [("Content-Type", "text/event-stream")]
        if gen == C:
            headers.append(("X-Accel-Buffering", "no"))
        start_response("200 OK", headers)
        return self._events(job, result, sock, stopping)

    def _job(self, body: dict, prompt: Any, slot: int, n_prompt: int) -> tuple[wire.Job, wire.Plan]:
        gen = self.kind
        n_keep = wire.param(body, "n_keep", self._slot_n_keep.get(slot, 0) if gen != C else 0)
        truncated = False
        if gen != C:
            if n_keep < 0:
                n_keep = n_prompt
            self._slot_n_keep[slot] = n_keep  # A/B: an omitted n_keep inherits the slot's last one
            if n_prompt >= self.n_ctx:  # A/B drop middle blocks instead of failing
                keep = min(n_keep, self.n_ctx - 4)
                block = (self.n_ctx - keep) // 2
                erased = (n_prompt - keep - block) // block
                n_prompt, truncated = n_prompt - erased * block, True
        n_predict = wire.param(body, "n_predict", -1)
        if gen == C and body.get("n_predict") is None:  # C only: OpenAI-style aliases
            n_predict = wire.param(
                body, "max_tokens", wire.param(body, "max_completion_tokens", -1)
            )
        stop = [w for w in body["stop"] if w] if isinstance(body.get("stop"), list) else []
        result = wire.plan(gen, self.tokens, self.stop_reason, n_predict, stop)
        if gen == A and "prompt" not in body:
            result = wire.Plan([], "", "none")  # A treats a missing prompt as "" and stops at once
        echo = prompt
        if gen == C:
            parts = prompt if isinstance(prompt, list) else [prompt]
            text = "".join(
                p if isinstance(p, str) else self.vocab.piece(p)
                for p in parts
                if isinstance(p, (str, int))
            )
            echo = "<s> " + text
        settings = wire.generation_settings(
            gen, body, n_ctx=self.n_ctx, model=self.model_name, n_keep=n_keep
        )
        job = wire.Job(
            gen,
            self.vocab,
            slot,
            self.model_name,
            echo,
            n_prompt,
            truncated,
            settings,
            n_probs=wire.param(body, "n_probs", 0),
            return_tokens=wire.param(body, "return_tokens", False),
            token_ms=self.token_delay * 1e3 or 10.0,
        )
        return job, result

    def _events(
        self, job: wire.Job, result: wire.Plan, sock: socket.socket, stopping: threading.Event
    ) -> Iterator[bytes]:
        """Stream token chunks; an early close() or a vanished client counts as cancelled."""
        gen, finished, given = self.kind, False, False
        with self._lock:
            self.active_streams += 1
        try:
            if gen == C and self.keepalive:
                yield b":\n\n"
            for i, chunk in enumerate(wire.partials(job, result)):
                if i and self.token_delay:
                    self._wait(stopping, self.token_delay, sock)
                if _client_gone(sock):
                    return
                yield _event(gen, chunk)
                if i == 0 and self.fail_mode in ("midstream_error", "truncated_stream"):
                    finished = True
                    if self.fail_mode == "truncated_stream":
                        _drop(sock)
                    if gen == B:
                        yield b'error: {"content":"fake generation failure"}\n\n'
                    elif gen == C:
                        yield _event(
                            gen,
                            {
                                "error": {
                                    "code": 500,
                                    "message": "fake generation failure",
                                    "type": "server_error",
                                }
                            },
                        )
                    return
                if i == 0 and self.gate is not None:
                    self.gate_released_in_time = self._wait_gate(stopping, sock)
            given = True  # as a server's slot, free before its last event goes out
            self._give_slot(job.slot)
            yield _event(gen, wire.final(job, result, streamed=True))
            finished = True
        finally:
            with self._lock:
                self.active_streams -= 1
            if not given:
                self._give_slot(job.slot)
            if not finished and not stopping.is_set():
                self.cancelled.set()

    def _take_slot(self, asked: int) -> int | None:
        """Occupy a slot: the one asked for if free, else the least recently used free one.

        C queues instead of refusing, so it always gets one in the end; A and B answer None.
        """
        with self._lock:
            if self.kind == C:
                taken = asked
            else:
                free = [i for i in self._last_used if i not in self._busy]
                if not free:
                    return None
                taken = asked if asked in free else min(free, key=self._last_used.get)
                self._busy.add(taken)
                self._last_used[taken] = time.monotonic()
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return taken

    def _give_slot(self, slot: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._busy.discard(slot)

    def _refuse(self, start_response: Any, stream: bool) -> list[bytes]:
        """What A and B answer when no slot is free."""
        if not stream:  # httplib's error handler rewrites the body of every 404
            return self._send(start_response, 404, _NOT_FOUND)
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return [b'error: {"content":"slot unavailable"}\n\n'] if self.kind == B else []

    def _wait_gate(self, stopping: threading.Event, sock: socket.socket) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.gate.wait(0.05):
                return True
            if stopping.is_set():
                _drop(sock)
        return False

    def _truncated(self, data: bytes, sock: socket.socket) -> Iterator[bytes]:
        yield data
        _drop(sock)

    def _tokenize(self, start_response, body, req, environ, stopping):
        body = body if isinstance(body, dict) else {}
        ids = self.vocab.tokenize(body.get("content", ""))
        if self.kind == C and body.get("with_pieces"):
            return self._send(
                start_response,
                200,
                {
                    "tokens": [
                        {"id": t, "piece": _text_or_bytes(self.vocab.piece_bytes(t))} for t in ids
                    ]
                },
            )
        return self._send(start_response, 200, {"tokens": ids})

    def _detokenize(self, start_response, body, req, environ, stopping):
        tokens = (body or {}).get("tokens", []) if isinstance(body, dict) else []
        data = self.vocab.text(tokens)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if self.kind != C:  # their JSON writer throws on a piece of a character
                self.type_violations.append("detokenize: incomplete UTF-8")
                return self._send(
                    start_response,
                    500,
                    "500 Internal Server Error\n[json."
                    "exception.type_error.316] incomplete UTF-8 string",
                )
            text = data.decode("utf-8", "replace")
        return self._send(start_response, 200, {"content": text})

    def _health(self, start_response, body, req, environ, stopping):
        return self._send(start_response, 200, {"status": "ok"})

    def _models(self, start_response, body, req, environ, stopping):
        name, created = self.model_name, int(time.time())
        if self.kind == B:
            return self._send(
                start_response,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": created, "owned_by": "llamacpp"}
                    ],
                },
            )
        meta = {
            "vocab_type": 1,
            "n_vocab": 32000,
            "n_ctx": self.n_ctx,
            "n_ctx_train": self.n_ctx,
            "n_embd": self.n_embd,
            "n_params": 1_100_048_384,
            "size": 667_815_936,
        }
        ollama = {
            "name": name,
            "model": name,
            "modified_at": "",
            "size": "",
            "digest": "",
            "type": "model",
            "description": "",
            "tags": [""],
            "capabilities": ["completion"],
            "parameters": "",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "",
                "families": [""],
                "parameter_size": "",
                "quantization_level": "",
            },
        }
        return self._send(
            start_response,
            200,
            {
                "models": [ollama],
                "object": "list",
                "data": [
                    {
                        "id": name,
                        "aliases": [name],
                        "tags": [],
                        "object": "model",
                        "created": created,
                        "owned_by": "llamacpp",
                        "meta": meta,
                    }
                ],
            },
        )

    def _settings(self) -> dict:
        return wire.generation_settings(
            self.kind, {}, n_ctx=self.n_ctx, model=self.model_name, n_keep=0
        )

    def _props(self, start_response, body, req, environ, stopping):
        if self.kind != C:
            return self._send(start_response, 200, {"user_name": "", "assistant_name": ""})
        return self._send(
            start_response,
            200,
            {
                "default_generation_settings": {"params": self._settings(), "n_ctx": self.n_ctx},
                "total_slots": self.n_slots,
                "model_alias": self.model_name,
                "model_path": self.model_path,
                "modalities": {"vision": False, "audio": False},
                "chat_template": self.chat_template,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "build_info": "b9553-9e3b928fd",
                "is_sleeping": False,
            },
        )

    def _model_json(self, start_response, body, req, environ, stopping):
        return self._send(start_response, 200, self._settings())

    def _slots(self, start_response, body, req, environ, stopping):
        busy = min(self._in_flight, self.n_slots)
        if req.args.get("fail_on_no_slot") and busy >= self.n_slots:
            return self._error(start_response, 503, "no slot available", "unavailable_error")
        return self._send(
            start_response,
            200,
            [
                {
                    "id": i,
                    "n_ctx": self.n_ctx,
                    "speculative": False,
                    "is_processing": i < busy,
                    "id_task": -1,
                    "params": self._settings(),
                }
                for i in range(self.n_slots)
            ],
        )

    def _embedding(self, start_response, body, req, environ, stopping):
        body = body if isinstance(body, dict) else {}
        if self.kind != C:
            content = body.get("content", "")
            vec = wire.embedding_vector(str(content), self.n_embd, self.embedding)
            return self._send(start_response, 200, {"embedding": vec})
        if not self.embedding:
            return self._error(
                start_response,
                501,
                "This server does not support embeddings. Start it with `--embeddings`",
                "not_supported_error",
            )
        inputs = body.get("input", body.get("content"))
        inputs = (
            inputs
            if isinstance(inputs, list) and all(isinstance(x, str) for x in inputs)
            else [inputs]
        )
        if not inputs or any(x in (None, "", []) for x in inputs):
            return self._error(
                start_response, 400, "Input content cannot be empty", "invalid_request_error"
            )
        return self._send(
            start_response,
            200,
            [
                {"index": i, "embedding": [wire.embedding_vector(str(x), self.n_embd, True)]}
                for i, x in enumerate(inputs)
            ],
        )


def _text_or_bytes(data: bytes) -> Any:
    """A piece as current llama-server writes it: text, or its byte values when incomplete."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return list(data)


def _event(gen: str, obj: dict) -> bytes:
    return f"data: {wire.dumps(gen, obj)}\n\n".encode()


def _probe(port: int) -> None:
    """Raise OSError if the port cannot be bound, before werkzeug prints about it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
        probe.bind(("127.0.0.1", port))


def _shutdown(sock: socket.socket | None) -> None:
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _drop(sock: socket.socket | None) -> None:
    """Close the connection without (the rest of) a response, like a crashed process."""
    _shutdown(sock)
    raise _Dropped("fake server dropped the connection")


def _client_gone(sock: socket.socket | None) -> bool:
    """Peek for EOF the way httplib's ``is_writable`` notices a client that went away.
    Readiness is asked by ``poll``: ``select`` fails on a descriptor above 1023, which a test
    worker that has opened many reaches."""
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0)) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
