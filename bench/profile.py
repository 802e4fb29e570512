"""``python -m bench.profile``: where the proxy's time goes while it streams a chat, by layer
and by function, sampled from the running process by py-spy.

For each client API, the proxy under waitress, gunicorn and granian (and, with
``--baseline DIR``, that checkout's proxy under waitress beside them) streams the same chat
from llama-server with the tests' tiny model, one request at a time, while py-spy samples
the threads holding the GIL: the time Python runs, which is what the proxy's shape costs
per chunk (the server's own time and the waits are not in it). Each sample is charged to
the innermost frame's file, grouped into the layers of the shape (the WSGI server, Flask,
each package of the proxy, Python's library). Writes
``bench/results/profile{,-quick}.md``.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from bench import cli, dialects, processes

RATE = 1000  # samples a second
SERVERS = (("proxy", "waitress"), ("proxy, gunicorn", "gunicorn"), ("proxy, granian", "granian"))
TOP = 12  # functions listed per API
# the layers a frame's file belongs to, by the start of its path as py-spy shows it
LAYERS = (
    ("waitress/", "waitress"),
    ("gunicorn/", "gunicorn"),
    ("granian/", "granian"),
    ("flask/", "Flask"),
    ("werkzeug/", "Flask"),
    ("proxy/api/", "proxy: API"),
    ("proxy/dialects/", "proxy: dialects"),
    ("proxy/core/", "proxy: core"),
    ("proxy/fleet/", "proxy: fleet"),
    ("proxy/backends/", "proxy: backend"),
    ("proxy/", "proxy: the rest"),
)


def spy() -> str:
    """py-spy's command (``pip install -e '.[bench]'``)."""
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("bench.profile samples with py-spy: pip install -e '.[bench]'")
    return found


# the frames where a thread blocks in a read or a poll: py-spy charges it such a sample when it
# was the last to hold the GIL and no other thread has taken it since (the process is idle)
WAITS = {
    "_receive (proxy/backends/wire/connections.py)",
    "poll2 (waitress/wasyncore.py)",
    "select (selectors.py)",
    "wait (threading.py)",
}
WAITING = "waiting (a blocking read or poll)"


def waits(frame: str) -> bool:
    """Whether ``frame`` blocks in a read or a poll (py-spy 0.4.3 and later show a method as
    ``Class.function``)."""
    function, _, path = frame.partition(" (")
    return f"{function.rpartition('.')[2]} ({path}" in WAITS


def layer(frame: str) -> str:
    """The layer of a frame shown as ``function (path)``."""
    if waits(frame):
        return WAITING
    path = frame.rpartition(" (")[2].rstrip(")")
    for prefix, name in LAYERS:
        if path.startswith(prefix):
            return name
    return "Python's library"


def sampled(pid: int, way: dialects.Way, count: int, work: Path) -> tuple:
    """``(samples, path)`` while ``count`` streamed answers come through the process ``pid``
    (and its workers: gunicorn's): samples by the innermost frame (``function (path)``), and
    the longest path a chunk takes (see :func:`chunk_path`)."""
    out = work / f"spy-{pid}-{time.monotonic_ns()}.txt"
    recorder = subprocess.Popen(
        [spy(), "record", "-p", str(pid), "-r", str(RATE), "-f", "raw", "-o", str(out)]
        + ["--gil", "--nonblocking", "--nolineno", "--subprocesses"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    for _ in range(count):
        dialects.timed(way, stream=True)
    recorder.send_signal(signal.SIGINT)
    if recorder.wait(timeout=30) != 0 or not out.exists():
        raise SystemExit("py-spy could not sample the proxy (does this user may ptrace it?)")
    found: collections.Counter = collections.Counter()
    longest: list = []
    for line in out.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if samples.isdigit() and not frames[-1].startswith("process "):  # not a name alone
            found[frames[-1]] += int(samples)
            longest = max(longest, chunk_path(frames), key=len)
    return found, longest


def chunk_path(frames: list) -> list:
    """The proxy's frames in a stack that waits on the upstream's socket mid-stream, in the
    thread the WSGI server iterates the answer in (the view has returned): every layer a
    chunk passes through on its way to the WSGI server, from the stream the server iterates
    to the socket read. Empty for any other stack (a view, or a thread a patient stream
    reads its first event in, still waiting for the first byte)."""
    if not frames or "(proxy/backends/wire/connections.py)" not in frames[-1]:
        return []
    if not frames[-1].partition(" (")[0].endswith("_receive"):
        return []
    if any(" (flask/" in frame for frame in frames):  # a view still running: not mid-stream
        return []
    if not any(frame.startswith("event_stream (proxy/core/sse.py)") for frame in frames):
        return []
    first = next(i for i, frame in enumerate(frames) if " (proxy/" in frame)
    return frames[first:]


def profiles(
    count: int, work: Path, baseline: Optional[Path], warmup: int = 10, servers: tuple = SERVERS
) -> tuple:
    """``{(API, proxy): samples}`` and ``{(API, proxy): a chunk's path}`` for every client
    API the proxy serves, under each of ``servers``, each way warmed up by ``warmup``
    streams first."""
    with ExitStack() as stack:
        server = stack.enter_context(processes.llama_server(work, parallel=1))
        kinds = {
            **{label: (server, processes.ROOT) for label, server in servers},
            **({"baseline": ("waitress", baseline)} if baseline else {}),
        }
        proxies = {
            label: processes.proxy(
                kind,
                server.url,
                work,
                threads=16,
                workers=1,
                name=f"profile-{label.replace(', ', '-')}",
                root=root,
            )
            for label, (kind, root) in kinds.items()
        }
        stack.enter_context(processes.all_running(proxies))
        found, paths = {}, {}
        for name, (path, body) in dialects.served(proxies["proxy"].url).items():
            for label, proxy in proxies.items():
                way = dialects.Way(proxy.url, path, {**body, "temperature": 0})
                for _ in range(warmup):
                    dialects.timed(way, stream=True)
                found[name, label], paths[name, label] = sampled(proxy.pid, way, count, work)
        return found, paths


def found_in(found: dict, name: str):
    """The samples of every profile that fall in layer ``name``."""
    return (n for samples in found.values() for frame, n in samples.items() if layer(frame) == name)


def table(found: dict, paths: dict, count: int, baseline: Optional[Path]) -> str:
    per_chunk = 1e6 / RATE / count / dialects.TOKENS  # µs per chunk of one sample
    labels = list(dict.fromkeys(label for _, label in found))
    names = list(dict.fromkeys(name for name, _ in found))
    layers = list(dict.fromkeys([name for _, name in LAYERS] + ["Python's library"]))
    layers = [name for name in layers if any(found_in(found, name))]
    against = (
        f", and the proxy at {cli.commit_of(baseline)} (baseline) beside it" if baseline else ""
    )
    lines = [
        "# Where a streamed chat's time goes in the proxy",
        "",
        f"`python -m bench.profile`: {count} streamed chats ({dialects.TOKENS} tokens) per "
        f"client API through the proxy under waitress, gunicorn's threads and granian{against}, "
        "from llama-server with the "
        f"tests' tiny model; py-spy samples the threads holding the GIL {RATE} times a "
        "second. Each sample is charged to its innermost frame's layer; figures are µs of "
        "Python per streamed chunk (the answer's own work, once per request, spread over "
        "its chunks). py-spy also charges a thread blocked in a read or a poll when it was "
        "the last to hold the GIL and no other has taken it since: those samples are "
        "counted apart, not in the total.",
        "",
        "| API | proxy | " + " | ".join(layers) + f" | all | {WAITING} |",
        "|---|---|" + "---:|" * (len(layers) + 2),
    ]
    for name in names:
        for label in labels:
            samples = found[name, label]
            by_layer = collections.Counter()
            for frame, n in samples.items():
                by_layer[layer(frame)] += n
            cells = " | ".join(f"{by_layer[each] * per_chunk:.1f}" for each in layers)
            total = sum(by_layer[each] for each in layers) * per_chunk
            waiting = by_layer[WAITING] * per_chunk
            lines.append(f"| {name} | {label} | {cells} | {total:.1f} | {waiting:.1f} |")
    for name in names:
        lines += ["", f"## {name}: the functions that take longest (µs per chunk)", ""]
        lines += ["| function | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        samples = found[name, "proxy"]
        working = collections.Counter({f: n for f, n in samples.items() if not waits(f)})
        for frame, n in working.most_common(TOP):
            others = "".join(
                f" | {found[name, label][frame] * per_chunk:.1f}" for label in labels[1:]
            )
            lines.append(f"| `{frame}` | {n * per_chunk:.1f}{others} |")
    lines += [
        "",
        "## The path of a chunk",
        "",
        "The proxy's frames on a stack sampled while a stream waits on the upstream's socket "
        "(the deepest such stack): each layer a chunk passes on its way from the socket to "
        "the WSGI server.",
        "",
        "| API | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for name in names:
        lines.append(
            f"| {name} | " + " | ".join(str(len(paths[name, label])) for label in labels) + " |"
        )
    lines += ["", f"The chat completions path under `{labels[0]}`, outermost first:", ""]
    lines += [f"{i}. `{frame}`" for i, frame in enumerate(paths[names[0], labels[0]], 1)]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli.with_baseline(
        cli.arguments("profile", "Where a streamed chat's time goes in the proxy.")
    ).parse_args()
    count, warmup, servers = (10, 2, SERVERS[:1]) if args.quick else (300, 10, SERVERS)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as work:
        found, paths = profiles(count, Path(work), args.baseline, warmup, servers)
    cli.publish(args, "profile", table(found, paths, count, args.baseline))


if __name__ == "__main__":
    main()
