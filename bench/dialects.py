"""``python -m bench.dialects``: what each client API costs over chat completions, and what
a chat costs through a server's own chat layer against a prompt the proxy renders.

1. The same question, one request at a time, asked through one waitress proxy in front of
   the synthetic upstream, in each dialect the proxy speaks: OpenAI chat completions (the
   floor), Anthropic's Messages API, OpenAI's Responses API and Ollama's chat (each when the
   proxy serves it), whole and streamed (64 tokens). The dialects take turns over three
   rounds, so drift on the machine touches each alike; the proxy's own CPU time is read from
   its process for each batch.
2. On real llama-server (the tests' tiny model, 64 tokens, greedy): each client API asked
   of the server's own route for it, and through the proxy's default path (the server's
   chat layer), and chat completions through a proxy that renders the model's template
   itself onto ``/completion`` (beside the server's own ``/completion`` with the prompt
   its template renders); with ``--baseline DIR``, through that checkout's proxy too,
   in the same run; and through the floors of :mod:`bench.passthrough` (a Python relay of
   bytes, a bare WSGI app under waitress, a Flask app under waitress), each the least one
   more layer of the proxy's shape can do in front of the server. For each way:
   the whole answer's p50, the streamed answer's first byte and end, and the proxy's CPU
   per answer and per streamed chunk, the ways taking turns request by request.

Writes ``bench/results/dialects{,-quick}.md``.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import requests

from bench import cli, processes
from bench.resources import ProcessTree

TOKENS = 64
QUESTION = "hello there"
DIALECTS = {
    "chat completions": (
        "/v1/chat/completions",
        {
            "model": "tiny",
            "max_tokens": TOKENS,
            "messages": [{"role": "user", "content": QUESTION}],
        },
    ),
    "Messages": (
        "/v1/messages",
        {
            "model": "tiny",
            "max_tokens": TOKENS,
            "messages": [{"role": "user", "content": QUESTION}],
        },
    ),
    "Responses": (
        "/v1/responses",
        {"model": "tiny", "max_output_tokens": TOKENS, "input": QUESTION, "store": False},
    ),
    "Ollama chat": (
        "/api/chat",
        {
            "model": "tiny",
            "options": {"num_predict": TOKENS},
            "messages": [{"role": "user", "content": QUESTION}],
        },
    ),
}


def served(url: str, answered: bool = False) -> dict:
    """The dialects this proxy answers (a route it lacks answers 404); ``answered``: those
    it answers with 200 (another gateway may fail a route it has)."""
    session = requests.Session()
    found = {}
    for name, spec in DIALECTS.items():
        status = session.post(url + spec[0], json=spec[1], timeout=60).status_code
        if status == 200 or (status != 404 and not answered):
            found[name] = spec
    return found


def batch(
    session: requests.Session, url: str, spec: tuple, count: int, stream: bool, proxy: ProcessTree
) -> tuple:
    """p50 ms of ``count`` requests, and the proxy's CPU ms per request."""
    path, body = spec
    body = {**body, "stream": stream}
    times = []
    cpu = proxy.cpu_seconds()
    for _ in range(count):
        started = time.perf_counter()
        with session.post(url + path, json=body, timeout=30, stream=stream) as response:
            response.raise_for_status()
            for _ in response.iter_content(chunk_size=None):
                pass
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, (proxy.cpu_seconds() - cpu) * 1000 / count


def run(count: int, work: Path, warmup: int) -> tuple:
    with ExitStack() as stack:
        upstream = stack.enter_context(processes.running(processes.synthetic(work)))
        proxy = stack.enter_context(
            processes.running(
                processes.proxy(
                    "waitress", upstream.url, work, threads=16, workers=1, name="dialects"
                )
            )
        )
        dialects = served(proxy.url)
        tree = ProcessTree(proxy.pid)
        session = requests.Session()
        figures = {(name, stream): [] for name in dialects for stream in (False, True)}
        for spec in dialects.values():  # warm up each way
            for stream in (False, True):
                batch(session, proxy.url, spec, warmup, stream, tree)
        for _ in range(3):
            for (name, stream), found in figures.items():
                found.append(batch(session, proxy.url, dialects[name], count // 3, stream, tree))
    return {
        key: (
            statistics.median(p50 for p50, _ in found),
            statistics.median(cpu for _, cpu in found),
        )
        for key, found in figures.items()
    }


# each client API on llama-server's own route for it (its chat route for Ollama's, which it
# does not speak), and the same question through the proxy
SERVER_ROUTES = {
    "chat completions": "/v1/chat/completions",
    "Messages": "/v1/messages",
    "Responses": "/v1/responses",
    "Ollama chat": "/v1/chat/completions",
}


def server_spec(name: str) -> tuple:
    """``(path, body)``: the client API ``name`` asked of the server's own route for it, in
    chat completions' words for Ollama's, which the server does not speak."""
    return SERVER_ROUTES[name], DIALECTS["chat completions" if name == "Ollama chat" else name][1]


# the floors under the proxy's shape (bench.passthrough), each a layer more than the last
FLOORS = {  # label: (kind, server)
    "relay": ("relay", "waitress"),
    "bare WSGI": ("wsgi", "waitress"),
    "pass-through": ("flask", "waitress"),
    "reading pass-through": ("json", "waitress"),
    "pass-through, gunicorn": ("flask", "gunicorn"),
    "bare WSGI, granian": ("wsgi", "granian"),
    "pass-through, granian": ("flask", "granian"),
}
PROXIES = {"proxy": "waitress", "proxy, gunicorn": "gunicorn", "proxy, granian": "granian"}
GENERIC = "proxy, OpenAI upstream"  # the server's /v1 as a model of backend = "openai"
LITELLM = "LiteLLM's proxy"  # the same /v1 as a model of LiteLLM's proxy, beside it


def litellm_command() -> tuple:
    """``(the command that starts LiteLLM's proxy, '')``, found where the e2e tests find it
    (``.ci/clients.sh`` installs it), or ``(None, why it is not measured)``."""
    from tests.e2e.libraries import litellm_proxy

    try:
        return litellm_proxy(), ""
    except FileNotFoundError as exc:
        return None, f"LiteLLM's proxy is not measured: it is not installed ({exc})"


@dataclass(frozen=True)
class Way:
    """Where a question goes: a base URL and route, its body, and the proxy process whose
    CPU time is read (None: the server asked directly)."""

    url: str
    path: str
    body: dict
    proxy: Optional[ProcessTree] = None


@dataclass(frozen=True)
class Figures:
    """One way's medians: whole answer, streamed answer to its first byte and to its end
    (ms), and the proxy's CPU per whole answer and per streamed chunk (ms); and each
    round's three times, for comparing ways round by round (:func:`paired`)."""

    whole: float
    first_byte: float
    streamed: float
    cpu_request: Optional[float]
    cpu_chunk: Optional[float]
    rounds: tuple = ()  # (whole, first byte, streamed) ms, one per round


@dataclass(frozen=True)
class Gap:
    """How much longer one way took than another, as the median of their differences round
    by round, and the 95% interval of that median."""

    median: float
    low: float
    high: float


def paired(ours: Sequence[float], theirs: Sequence[float]) -> Gap:
    """The gap between two ways that took turns, from their times round by round: a drift
    in the machine's speed touches both times of a round alike, and leaves their
    difference. The interval holds the median of such differences with 95% confidence:
    between the order statistics (counted from 1) n/2 - 1.96 sqrt(n)/2 and
    1 + n/2 + 1.96 sqrt(n)/2, where a fair binomial count of n puts them."""
    differences = sorted(a - b for a, b in zip(ours, theirs, strict=True))
    count = len(differences)
    spread = 0.98 * math.sqrt(count)
    low = max(round(count / 2 - spread), 1)
    high = min(round(1 + count / 2 + spread), count)
    return Gap(statistics.median(differences), differences[low - 1], differences[high - 1])


def chat_layer(
    count: int, work: Path, baseline: Optional[Path], warmup: int, litellm: Optional[list]
) -> dict:
    """Every client API through the server's chat layer, against the server directly: each
    API the proxy serves, by the proxy under waitress and under gunicorn (and by a
    ``baseline`` checkout's proxy, when given), and chat completions by the proxy's own
    template on ``/completion`` too; each API LiteLLM's proxy answers, by it, when its
    ``litellm`` command is given; one API at a time, its ways taking turns request by
    request, after ``warmup`` of each."""
    from tests.e2e.tinymodel import CHAT_TEMPLATE

    template = work / "template.jinja"
    template.write_text(CHAT_TEMPLATE)
    with ExitStack() as stack:
        server = stack.enter_context(processes.llama_server(work, parallel=1))
        proxies = {
            label: processes.proxy(
                kind, server.url, work, threads=16, workers=1, name=f"chat-layer-{kind}"
            )
            for label, kind in PROXIES.items()
        }
        if baseline is not None:
            proxies["baseline"] = processes.proxy(
                "waitress", server.url, work, threads=16, workers=1, name="baseline", root=baseline
            )
        floors = {
            label: processes.passthrough(server.url, work, kind, floor_server)
            for label, (kind, floor_server) in FLOORS.items()
        }
        rendered = processes.proxy(
            "waitress",
            server.url,
            work,
            threads=16,
            workers=1,
            name="rendered",
            args=["--chat-template", str(template)],
        )
        generic_models = work / "openai-upstream.toml"
        generic_models.write_text(
            f'[models.tiny]\nbackend = "openai"\nupstreams = ["{server.url}/v1"]\n'
        )
        proxies[GENERIC] = processes.proxy(
            "waitress",
            server.url,
            work,
            threads=16,
            workers=1,
            name="openai-upstream",
            args=["--config", str(generic_models)],
        )
        peers = {LITELLM: processes.litellm(litellm, server.url, work, "tiny")} if litellm else {}
        stack.enter_context(
            processes.all_running({**proxies, **floors, **peers, "rendered": rendered})
        )
        ways = {}
        for name, (path, body) in served(proxies["proxy"].url).items():
            body = {**body, "temperature": 0}
            route, words = server_spec(name)
            ways[name, "server"] = Way(server.url, route, {**words, "temperature": 0})
            for label, floor in floors.items():
                ways[name, label] = Way(
                    floor.url,
                    ways[name, "server"].path,
                    ways[name, "server"].body,
                    ProcessTree(floor.pid),
                )
            for label, proxy in proxies.items():
                ways[name, label] = Way(proxy.url, path, body, ProcessTree(proxy.pid))
        for label, peer in peers.items():
            for name, (path, body) in served(peer.url, answered=True).items():
                ways[name, label] = Way(
                    peer.url, path, {**body, "temperature": 0}, ProcessTree(peer.pid)
                )
        path, body = DIALECTS["chat completions"]
        body = {**body, "temperature": 0}
        prompt = requests.post(server.url + "/apply-template", json=body, timeout=30).json()
        ways["chat completions", "server, /completion"] = Way(
            server.url,
            "/completion",
            {"prompt": prompt["prompt"], "n_predict": TOKENS, "temperature": 0},
        )
        ways["chat completions", "/completion"] = Way(
            rendered.url, path, body, ProcessTree(rendered.pid)
        )
        rotated(ways, warmup)  # warm up each way
        found = {}
        for name in dict.fromkeys(name for name, _ in ways):  # one proxy serves every API:
            # its CPU is told apart by asking one API at a time
            found.update(rotated({key: way for key, way in ways.items() if key[0] == name}, count))
        return found


def rotated(ways: dict, count: int) -> dict:
    """Each way's figures from ``count`` whole answers, then ``count`` streamed ones, the ways
    taking turns request by request in a shuffled order, so that a drift in the machine's
    speed touches each alike; each request on a connection of its own (llama-server closes a
    kept one after a stream). The CPU of a way's own process is read before and after."""
    order = list(ways)
    shuffle = random.Random(0).shuffle
    times: dict = {(key, stream): [] for key in ways for stream in (False, True)}
    cpu: dict = {}
    for stream in (False, True):
        before = {key: way.proxy.cpu_seconds() for key, way in ways.items() if way.proxy}
        for _ in range(count):
            shuffle(order)
            for key in order:
                times[key, stream].append(timed(ways[key], stream=stream))
        for key, start in before.items():
            cpu[key, stream] = (ways[key].proxy.cpu_seconds() - start) * 1000 / count
    return {
        key: Figures(
            statistics.median(end for _, end in times[key, False]),
            statistics.median(first for first, _ in times[key, True]),
            statistics.median(end for _, end in times[key, True]),
            cpu.get((key, False)),
            (cpu[key, True] - cpu[key, False]) / TOKENS if (key, False) in cpu else None,
            tuple(
                (whole, first, end)
                for (_, whole), (first, end) in zip(
                    times[key, False], times[key, True], strict=True
                )
            ),
        )
        for key in ways
    }


def timed(way: Way, *, stream: bool) -> tuple:
    """ms to the answer's first byte and to its end."""
    started = time.perf_counter()
    first = None
    with requests.post(
        way.url + way.path, json={**way.body, "stream": stream}, timeout=60, stream=stream
    ) as response:
        response.raise_for_status()
        for _ in response.iter_content(chunk_size=None):
            if first is None:
                first = time.perf_counter()
    ended = time.perf_counter()
    return (first - started) * 1000, (ended - started) * 1000


def chat_layer_table(
    figures: dict, count: int, baseline: Optional[Path], unmeasured: str = ""
) -> str:
    against = f" and by the proxy at {cli.commit_of(baseline)} (baseline)" if baseline else ""
    peer = (
        f" {unmeasured}."
        if unmeasured
        else " LiteLLM's proxy (one worker, no keys) in front of the same `/v1`, on each "
        "API it answers, is the peer the OpenAI upstream way compares with."
    )
    lines = [
        "",
        "## Every client API through the server's chat layer",
        "",
        f"One chat ({TOKENS} tokens back, greedy) on llama-server with the tests' tiny "
        f"model: each client API on the server's own route for it (chat completions for "
        f"Ollama's, which it does not speak), through the floors under the proxy's shape "
        f"(`bench/passthrough.py`: relay, a Python process copying bytes between two "
        f"sockets; bare WSGI, an app under waitress (or granian) that only passes bytes on; "
        f"pass-through, the same as a Flask app, under each server; reading pass-through, the "
        f"Flask app reading and writing again every JSON body and streamed event, under "
        f"waitress) and through the proxy "
        f"under waitress (`oai-proxy`'s default), under gunicorn's threads (production's `gunicorn "
        f"proxy.wsgi`) and under granian (`oai-proxy --server granian`), and by the proxy "
        f'with the server\'s own `/v1` as a model of `backend = "openai"` (OpenAI '
        f"upstream: what any OpenAI-compatible server costs behind the proxy)"
        f"{against}; chat "
        f"completions also by the proxy's own template on `/completion` and on the "
        f"server's own `/completion` (the prompt its template renders). {count} "
        "requests per way and answer, one API at a time, its ways taking turns request by "
        "request in a shuffled order. Added: the way's p50 "
        "less the server's own; CPU: the proxy's, per whole answer and per streamed "
        "chunk (a streamed answer's CPU less a whole one's, over its chunks)." + peer,
        "",
        "| API | way | whole p50 ms | added | first byte p50 ms | added | streamed p50 ms "
        "| added | CPU ms/answer | CPU µs/chunk |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, way), found in figures.items():
        floor = figures[name, "server"]
        added = way != "server"

        def cell(value: float, base: float, added: bool = added) -> str:
            return f"{value - base:+.3f}" if added else ""

        cpu = "" if found.cpu_request is None else f"{found.cpu_request:.3f}"
        chunk = "" if found.cpu_chunk is None else f"{found.cpu_chunk * 1000:.1f}"
        lines.append(
            f"| {name} | {way} | {found.whole:.3f} | {cell(found.whole, floor.whole)} "
            f"| {found.first_byte:.3f} | {cell(found.first_byte, floor.first_byte)} "
            f"| {found.streamed:.3f} | {cell(found.streamed, floor.streamed)} "
            f"| {cpu} | {chunk} |"
        )
    return "\n".join(lines) + "\n"


FLOOR = "pass-through"  # what the proxy's own cost is told over
OVER_FLOOR = ("proxy", "baseline", "reading pass-through")


def over_floor_table(figures: dict, count: int) -> str:
    """What each API costs through the proxy (and the baseline's and the reading
    pass-through) over the pass-through under waitress, compared round by round."""
    lines = [
        "",
        f"## Over the {FLOOR}, round by round",
        "",
        f"The same runs as above: each way's time less the {FLOOR}'s of the same round "
        f"(under waitress, both), the median of the {count} differences and its 95% "
        "interval (ms); CPU per streamed chunk as a ratio of the "
        f"{FLOOR}'s.",
        "",
        "| API | way | whole | first byte | streamed | CPU/chunk |",
        "|---|---|---|---|---|---:|",
    ]
    for (name, way), found in figures.items():
        floor = figures.get((name, FLOOR))
        if way not in OVER_FLOOR or floor is None:
            continue
        cells = []
        for at in range(3):
            gap = paired([r[at] for r in found.rounds], [r[at] for r in floor.rounds])
            cells.append(f"{gap.median:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}]")
        ratio = found.cpu_chunk / floor.cpu_chunk if found.cpu_chunk and floor.cpu_chunk else None
        lines.append(
            f"| {name} | {way} | {' | '.join(cells)} | {'' if ratio is None else f'{ratio:.2f}×'} |"
        )
    return "\n".join(lines) + "\n"


def table(figures: dict, count: int, quick: bool) -> str:
    lines = [
        f"# What each client API costs{' (quick run)' if quick else ''}",
        "",
        f"The same question ({TOKENS} tokens back), one request at a time, {count} per "
        f"way over three interleaved rounds, through waitress to the synthetic upstream "
        f"(`python -m bench.dialects{' --quick' if quick else ''}`).",
        "",
        "| API | answer | p50 ms | vs chat completions | proxy CPU ms/request "
        "| vs chat completions |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (name, stream), (p50, cpu) in figures.items():
        floor_p50, floor_cpu = figures["chat completions", stream]
        lines.append(
            f"| {name} | {'streamed' if stream else 'whole'} | {p50:.3f} | "
            f"{p50 - floor_p50:+.3f} ms | {cpu:.3f} | {cpu - floor_cpu:+.3f} ms |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.with_baseline(cli.arguments("dialects", "What each client API costs.")).parse_args()
    # requests per way, and to warm each way up first
    count, layered_count, warmups = (15, 4, (3, 2)) if args.quick else (1500, 600, (30, 20))
    litellm, unmeasured = litellm_command()
    if unmeasured:
        print(unmeasured, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-dialects-") as work:
        figures = run(count, Path(work), warmups[0])
        layered = chat_layer(layered_count, Path(work), args.baseline, warmups[1], litellm)
    report = (
        table(figures, count, args.quick)
        + chat_layer_table(layered, layered_count, args.baseline, unmeasured)
        + over_floor_table(layered, layered_count)
    )
    cli.publish(args, "dialects", report)


if __name__ == "__main__":
    main()
