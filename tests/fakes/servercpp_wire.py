"""Build server.cpp JSON bodies for each kind of server, with no HTTP involved.

Kept apart from the server plumbing in :mod:`.servercpp` so that every shape can be
checked against the wire reference (``servercpp-wire.md`` §1-§4) on its own.
Generations: ``"powerinfer"`` (A), ``"llamacpp-2023"`` (B), ``"llamacpp"`` (C).
"""

from __future__ import annotations

import json
import math
import re
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

A, B, C = "powerinfer", "llamacpp-2023", "llamacpp"
KINDS = (A, B, C)
UINT32_MAX = 4294967295

_INT_FIELDS = ("n_predict", "top_k", "seed", "mirostat", "n_keep", "n_probs", "repeat_last_n")
_NUM_FIELDS = (
    "temperature",
    "top_p",
    "min_p",
    "typical_p",
    "tfs_z",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "mirostat_tau",
    "mirostat_eta",
)
_BOOL_FIELDS = ("stream", "cache_prompt", "ignore_eos", "penalize_nl")
_STR_FIELDS = ("grammar",)


def dumps(gen: str, obj: Any) -> str:
    """Serialise like nlohmann: A/B ``json`` sorts keys, C ``ordered_json`` keeps order."""
    return json.dumps(obj, sort_keys=gen != C, separators=(",", ":"), ensure_ascii=False)


def slot_key(gen: str) -> str:
    """Name the slot-pinning field (renamed in llama.cpp 2002bc96b)."""
    return "id_slot" if gen == C else "slot_id"


def _is_num(value: Any) -> bool:
    # nlohmann converts booleans to arithmetic types without complaint.
    return isinstance(value, (int, float))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bias_ok(gen: str, bias: Any) -> bool:
    if gen == C and isinstance(bias, dict):
        return all((_is_num(v) and not isinstance(v, bool)) or v is False for v in bias.values())
    if not isinstance(bias, list):
        return False
    for pair in bias:
        if not (isinstance(pair, list) and len(pair) == 2):
            return False
        tok, val = pair
        if not (_is_int(tok) or (gen == C and isinstance(tok, str))):
            return False
        if not ((_is_num(val) and not isinstance(val, bool)) or val is False):
            return False
    return True


def check_types(gen: str, body: dict) -> tuple[list[str], str | None]:
    """Return the mistyped fields and the verdict: None, "abort" (A/B) or "reject" (C).

    A/B read every field with ``json.value()`` on the inference thread, so a type error
    aborts the process; null falls back to the default. A string ``stop`` and malformed
    ``logit_bias`` entries are silently ignored (recorded all the same). C logs and uses
    the default, except a non-string ``stop`` element, which is a 400.
    """
    bad: list[str] = []
    fatal = False
    kinds = [
        (_INT_FIELDS + (slot_key(gen),), _is_num),
        (_NUM_FIELDS, _is_num),
        (_BOOL_FIELDS, lambda v: isinstance(v, bool)),
        (_STR_FIELDS, lambda v: isinstance(v, str)),
    ]
    for names, ok in kinds:
        for name in names:
            if body.get(name) is not None and not ok(body[name]):
                bad.append(name)
                fatal = True
    stop = body.get("stop")
    if isinstance(stop, list):
        if any(w is not None and not isinstance(w, str) for w in stop):
            bad.append("stop")
            return bad, ("reject" if gen == C else "abort")
    elif stop is not None:
        bad.append("stop")
    if body.get("logit_bias") is not None and not _bias_ok(gen, body["logit_bias"]):
        bad.append("logit_bias")
    return bad, ("abort" if fatal and gen != C else None)


def param(body: dict, name: str, default: Any) -> Any:
    """Read a field the way ``json_value`` does: null or a wrong type gives the default."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(default, bool):
        return value if isinstance(value, bool) else default
    if isinstance(default, (int, float)):
        return type(default)(value) if _is_num(value) else default
    return value if isinstance(value, type(default)) else default


class Vocab:
    """Give each text piece a stable id so /tokenize, /detokenize and streams agree.

    Words of ASCII text are tokens of their own; a character outside ASCII is spelt in byte
    tokens (ids ``BYTE_BASE + byte``), as byte-fallback vocabularies spell Chinese or emoji.
    """

    SPECIAL = {1: "<s>", 2: "</s>"}
    BYTE_BASE = 3

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._pieces: dict[int, bytes] = {k: v.encode() for k, v in self.SPECIAL.items()}
        self._pieces.update({self.BYTE_BASE + b: bytes([b]) for b in range(256)})

    def id(self, piece: str) -> int:
        with self._lock:
            if piece not in self._ids:
                self._ids[piece] = 1000 + len(self._ids)
                self._pieces[self._ids[piece]] = piece.encode()
            return self._ids[piece]

    def piece(self, token: int) -> str:
        return self.piece_bytes(token).decode("utf-8", "replace")

    def piece_bytes(self, token: int) -> bytes:
        return self._pieces.get(token, b"")

    def text(self, tokens: list) -> bytes:
        return b"".join(self.piece_bytes(t) for t in tokens if isinstance(t, int))

    def tokenize(self, content: Any) -> list[int]:
        """Split text into words with their leading space; ints pass through (mixed prompts)."""
        parts = content if isinstance(content, list) else [content]
        out: list[int] = []
        for part in parts:
            if isinstance(part, int):
                out.append(part)
            elif isinstance(part, str):
                for word in re.findall(r"\s*\S+|\s+", part):
                    for run in re.findall(r"[\x00-\x7f]+|[^\x00-\x7f]", word):
                        if run.isascii():
                            out.append(self.id(run))
                        else:
                            out.extend(self.BYTE_BASE + b for b in run.encode())
        return out


def count_prompt_tokens(prompt: Any) -> int:
    """Count whitespace-separated words (ids count one each) plus the BOS token."""
    parts = prompt if isinstance(prompt, list) else [prompt]
    return 1 + sum(
        1 if isinstance(p, int) else len(p.split()) for p in parts if isinstance(p, (int, str))
    )


@dataclass
class Plan:
    """What one completion produces: per token, the piece and the text released for it."""

    steps: list[tuple[str, str]]
    content: str
    stop_type: str  # "eos" | "word" | "limit" | "none"
    stopping_word: str = ""
    hit_word: bool = False


def _partial_len(text: str, words: list[str]) -> int:
    best = 0
    for word in words:
        for k in range(min(len(word) - 1, len(text)), best, -1):
            if word.startswith(text[-k:]):
                best = k
                break
    return best


def plan(gen: str, tokens: list[str], stop_reason: str, n_predict: int, stop: list[str]) -> Plan:
    """Apply n_predict and stop words to the scripted tokens, holding back stop prefixes."""
    pieces, end = list(tokens), stop_reason
    limit = n_predict
    if gen != C and 0 <= limit < 3:
        limit = -1  # llama.cpp #4047/#4790: A/B do not honour n_predict < 3
    if 0 <= limit < len(pieces):
        pieces, end = pieces[:limit], "limit"
    text, sent, steps = "", 0, []
    for i, piece in enumerate(pieces):
        text += piece
        hits = [(text.find(w), w) for w in stop if w and w in text]
        if hits:
            pos, word = min(hits, key=lambda h: h[0])
            steps.append((piece, text[sent : max(pos, sent)]))
            return Plan(steps, text[:pos], "word", word, hit_word=True)
        upto = len(text) if i == len(pieces) - 1 else len(text) - _partial_len(text, stop)
        steps.append((piece, text[sent:upto]))
        sent = upto
    word = (stop[0] if stop else "") if end == "word" else ""
    return Plan(steps, text, end, word)


@dataclass
class Job:
    """Everything a response body needs besides the plan."""

    gen: str
    vocab: Vocab
    slot: int
    model: str
    prompt: Any
    n_prompt: int
    truncated: bool
    settings: dict
    n_probs: int = 0
    return_tokens: bool = False
    token_ms: float = 10.0
    extra: dict = field(default_factory=dict)


def _top(job: Job, piece: str) -> list[tuple[str, float]]:
    alts = [piece] + [f" alt{j}" for j in range(1, job.n_probs)]
    return [(s, 0.9 if j == 0 else 0.1 / 2**j) for j, s in enumerate(alts)]


def prob_entry(job: Job, piece: str) -> dict:
    """One ``completion_probabilities`` item in the kind's shape."""
    if job.gen != C:
        return {"content": piece, "probs": [{"tok_str": s, "prob": p} for s, p in _top(job, piece)]}

    def item(s: str, p: float) -> dict:
        return {
            "id": job.vocab.id(s),
            "token": s,
            "bytes": list(s.encode()),
            "logprob": math.log(p),
        }

    return {**item(piece, 0.9), "top_logprobs": [item(s, p) for s, p in _top(job, piece)]}


def partials(job: Job, result: Plan) -> list[dict]:
    """Build the ``stop:false`` stream chunks, one per generated token."""
    out, pending = [], []
    for i, (piece, delta) in enumerate(result.steps):
        if job.gen == C:
            chunk = {
                "index": 0,
                "content": delta,
                "tokens": [job.vocab.id(piece)],
                "stop": False,
                "id_slot": job.slot,
                "tokens_predicted": i + 1,
                "tokens_evaluated": job.n_prompt,
            }
            if job.n_probs > 0:
                chunk["completion_probabilities"] = [prob_entry(job, piece)]
        else:
            chunk = {"content": delta, "stop": False, "slot_id": job.slot, "multimodal": False}
            pending.append(prob_entry(job, piece))
            if job.n_probs > 0:  # A/B re-tokenise the released text: nothing while held back
                chunk["completion_probabilities"] = pending if delta else []
            if delta:
                pending = []
        out.append(chunk)
    return out


def _timings(job: Job, n: int) -> dict:
    t = {"cache_n": 0} if job.gen == C else {}
    prompt_ms, predicted_ms = job.n_prompt * 0.5, n * job.token_ms
    t.update(
        prompt_n=job.n_prompt,
        prompt_ms=prompt_ms,
        prompt_per_token_ms=prompt_ms / job.n_prompt,
        prompt_per_second=1e3 * job.n_prompt / prompt_ms,
        predicted_n=n,
        predicted_ms=predicted_ms,
        predicted_per_token_ms=predicted_ms / n if n else None,  # NaN is dumped as null
        predicted_per_second=1e3 * n / predicted_ms if predicted_ms else 0.0,
    )
    return t


def final(job: Job, result: Plan, *, streamed: bool) -> dict:
    """Build the full result: the non-stream body, or the last (``stop:true``) stream chunk."""
    n = len(result.steps)
    content = "" if streamed else result.content
    if job.gen == C:
        ids = (
            [job.vocab.id(p) for p, _ in result.steps] if job.return_tokens and not streamed else []
        )
        body = {
            "index": 0,
            "content": content,
            "tokens": ids,
            "id_slot": job.slot,
            "stop": True,
            "model": job.model,
            "tokens_predicted": n,
            "tokens_evaluated": job.n_prompt,
            "generation_settings": job.settings,
            "prompt": job.prompt,
            "has_new_line": "\n" in result.content,
            "truncated": job.truncated,
            "stop_type": result.stop_type,
            "stopping_word": result.stopping_word,
            "tokens_cached": job.n_prompt + n,
            "timings": _timings(job, n),
        }
        if job.n_probs > 0 and not streamed:
            body["completion_probabilities"] = [prob_entry(job, p) for p, _ in result.steps]
        return body
    body = {
        "content": content,
        "stop": True,
        "slot_id": job.slot,
        "model": job.model,
        "tokens_predicted": n,
        "tokens_evaluated": job.n_prompt,
        "tokens_cached": job.n_prompt + n,
        "truncated": job.truncated,
        "stopped_eos": result.stop_type == "eos",
        "stopped_word": result.stop_type == "word",
        "stopped_limit": result.stop_type == "limit",
        "stopping_word": result.stopping_word,
        "generation_settings": job.settings,
        "prompt": job.prompt,
        "timings": _timings(job, n),
    }
    if job.n_probs > 0:
        entries = [prob_entry(job, p) for p, _ in result.steps]
        if not streamed:  # bug fixed in 012cf349a: only a stop word leaves anything here
            entries = (
                (entries[:-1] if result.hit_word else entries) if result.stop_type == "word" else []
            )
        body["completion_probabilities"] = entries
    return body


def generation_settings(gen: str, body: dict, *, n_ctx: int, model: str, n_keep: int) -> dict:
    """Echo the sampling parameters as each kind names them."""
    stop = [w for w in body["stop"] if w] if isinstance(body.get("stop"), list) else []
    bias = body["logit_bias"] if _bias_ok(gen, body.get("logit_bias")) else []
    seed = param(body, "seed", -1)
    common = dict(
        seed=seed % (UINT32_MAX + 1),
        top_k=param(body, "top_k", 40),
        top_p=param(body, "top_p", 0.95),
        min_p=param(body, "min_p", 0.05),
        typical_p=param(body, "typical_p", 1.0),
        repeat_last_n=param(body, "repeat_last_n", 64),
        repeat_penalty=param(body, "repeat_penalty", 1.0 if gen == C else 1.1),
        presence_penalty=param(body, "presence_penalty", 0.0),
        frequency_penalty=param(body, "frequency_penalty", 0.0),
        mirostat=param(body, "mirostat", 0),
        mirostat_tau=param(body, "mirostat_tau", 5.0),
        mirostat_eta=param(body, "mirostat_eta", 0.1),
        stop=stop,
        n_predict=param(body, "n_predict", -1),
        n_keep=n_keep,
        ignore_eos=param(body, "ignore_eos", False),
        stream=param(body, "stream", False),
        logit_bias=bias,
        n_probs=param(body, "n_probs", 0),
        grammar=param(body, "grammar", ""),
    )
    temperature = param(body, "temperature", 0.8)
    if gen == C:
        return {
            "seed": common.pop("seed"),
            "temperature": temperature,
            "dynatemp_range": 0.0,
            "dynatemp_exponent": 1.0,
            **common,
            "max_tokens": common["n_predict"],
            "n_discard": 0,
            "min_keep": 0,
            "samplers": [
                "penalties",
                "dry",
                "top_n_sigma",
                "top_k",
                "typ_p",
                "top_p",
                "min_p",
                "xtc",
                "temperature",
            ],
            "timings_per_token": False,
            "post_sampling_probs": False,
            "lora": [],
        }
    out = dict(
        common,
        n_ctx=n_ctx,
        model=model,
        tfs_z=param(body, "tfs_z", 1.0),
        penalize_nl=param(body, "penalize_nl", True),
    )
    out["temp" if gen == A else "temperature"] = temperature
    if gen == B:
        out.update(penalty_prompt_tokens=[], use_penalty_prompt_tokens=False)
    return out


def embedding_vector(text: str, n_embd: int, enabled: bool) -> list[float]:
    """Return a deterministic unit vector; A/B without --embedding return zeros."""
    if not enabled:
        return [0.0] * n_embd
    raw = [((zlib.crc32(f"{i}:{text}".encode()) % 2001) - 1000) / 1000 for i in range(n_embd)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def line_batches(reads: list) -> list:
    """The lines a connection hands the stream parser for ``reads`` (bytes, one per socket
    read): for each read that ended any, the lines it ended; a last unended line at the end."""
    batches, pending = [], b""
    for read in reads:
        pending += read
        if b"\n" in read:
            *ended, pending = pending.split(b"\n")
            batches.append(ended)
    return batches + [[pending]] if pending else batches
