"""The bundled llama.cpp engine: llama-server's own HTTP server, from the ``xllamacpp`` wheel,
run as a child process of the proxy (``python -m proxy.servers.engine -m MODEL --port N …``).

It takes llama-server's flags (the common ones: :data:`FLAGS`), so a managed model's
``args`` mean the same whichever engine runs it; a flag it does not know is an error naming
it, raised when the proxy starts (:func:`check_args`), not when the model first loads.

The engine exits at once on SIGTERM: its state lives in its slots, which the proxy saves
over HTTP before it stops a server, and ``xllamacpp``'s own shutdown can wait for a
client's stream to end.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Optional, Sequence

LOOP_TIMEOUT = 10.0  # seconds the task loop may take to answer once the model is loaded
# seconds a failed start leaves llama.cpp's logger, which writes from a thread of its own, to
# write why before the process exits: without it the reason is sometimes never written
LOG_DRAIN = 0.5
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
FLASH_ATTENTION = {"auto": "AUTO", "on": "ENABLED", "off": "DISABLED"}
POOLING = ("none", "mean", "cls", "last", "rank")


class FlagError(ValueError):
    """A flag the engine does not take, or a value it cannot use."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print and exit: say it as ours
        raise FlagError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bundled llama.cpp engine", add_help=False, allow_abbrev=False)
    add = parser.add_argument
    add("-m", "--model", required=True)
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8080)
    add("-c", "--ctx-size", type=int, default=0)
    add("-np", "--parallel", type=int, default=1)
    add("-t", "--threads", type=int, default=-1)
    add("-tb", "--threads-batch", type=int, default=-1)
    add("-ngl", "--gpu-layers", "--n-gpu-layers", type=int, default=-1)
    add("-b", "--batch-size", type=int, default=2048)
    add("-ub", "--ubatch-size", type=int, default=512)
    add("-ctk", "--cache-type-k", choices=CACHE_TYPES, default="f16")
    add("-ctv", "--cache-type-v", choices=CACHE_TYPES, default="f16")
    add("-fa", "--flash-attn", choices=tuple(FLASH_ATTENTION), default="auto")
    add("--embedding", "--embeddings", action="store_true")
    add("--reranking", "--rerank", action="store_true")
    add("-mm", "--mmproj", default="")
    add("--pooling", choices=POOLING)
    add("--slot-save-path", default="")
    add("-a", "--alias", action="append", default=[])
    add("--chat-template", default="")
    add("--no-warmup", action="store_true")
    add("--cache-ram", "-cram", type=int)
    add("--no-webui", action="store_true")  # the engine has none to turn off
    add("--context-shift", action="store_true")
    add("-lv", "--verbosity", type=int, default=3)
    return parser


FLAGS = tuple(flag for action in _parser()._actions for flag in action.option_strings)


def check_args(args: Sequence[str]) -> None:
    """Raise :class:`FlagError` naming a flag (or value) the engine cannot take."""
    parse_args(["-m", "model", *args])


def parse_args(args: Sequence[str]) -> argparse.Namespace:
    parsed, unknown = _parser().parse_known_args(list(args))
    if unknown:
        raise FlagError(
            f"{unknown[0]} is not a flag the bundled llama.cpp engine takes; it "
            f"takes {', '.join(FLAGS)}"
        )
    return parsed


def version() -> Optional[str]:
    """The bundled engine's version, or ``None`` when it is not installed here."""
    try:
        import xllamacpp
    except ImportError:
        return None
    return xllamacpp.__version__


def _params(flags: argparse.Namespace):
    import xllamacpp as engine

    params = engine.CommonParams()
    params.model.path = flags.model
    params.hostnames = [flags.host]
    params.port = flags.port
    params.n_ctx = flags.ctx_size
    params.n_parallel = flags.parallel
    params.cpuparams.n_threads = flags.threads
    params.cpuparams_batch.n_threads = (
        flags.threads_batch if flags.threads_batch > 0 else flags.threads
    )
    params.n_gpu_layers = flags.gpu_layers
    params.n_batch = flags.batch_size
    params.n_ubatch = flags.ubatch_size
    params.cache_type_k = getattr(engine.ggml_type, f"GGML_TYPE_{flags.cache_type_k.upper()}")
    params.cache_type_v = getattr(engine.ggml_type, f"GGML_TYPE_{flags.cache_type_v.upper()}")
    params.flash_attn_type = getattr(
        engine.llama_flash_attn_type, f"LLAMA_FLASH_ATTN_TYPE_{FLASH_ATTENTION[flags.flash_attn]}"
    )
    params.embedding = flags.embedding or flags.reranking
    pooling = "rank" if flags.reranking else flags.pooling
    if pooling:
        params.pooling_type = getattr(
            engine.llama_pooling_type, f"LLAMA_POOLING_TYPE_{pooling.upper()}"
        )
    if flags.mmproj:
        params.mmproj.path = flags.mmproj
    if flags.slot_save_path:
        # llama-server adds the separator; the engine keeps the text as given and appends
        # file names to it
        os.makedirs(flags.slot_save_path, exist_ok=True)
        params.slot_save_path = os.path.join(flags.slot_save_path, "")
    if flags.alias:
        params.model_alias = set(flags.alias)
    if flags.chat_template:
        params.chat_template = flags.chat_template
    if flags.cache_ram is not None:
        params.cache_ram_mib = flags.cache_ram
    params.ctx_shift = flags.context_shift
    params.warmup = not flags.no_warmup
    params.endpoint_slots = True
    params.verbosity = flags.verbosity
    return params


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        flags = parse_args(sys.argv[1:] if argv is None else argv)
    except FlagError as exc:
        print(f"bundled llama.cpp engine: {exc}", file=sys.stderr)
        return 2
    import xllamacpp as engine

    print(
        f"bundled llama.cpp engine (xllamacpp {engine.__version__}) loading {flags.model}",
        file=sys.stderr,
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    # the engine's native threads inherit the mask: signals wait for the Python handler
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        server = engine.Server(_params(flags))  # returns once the model is loaded
    except RuntimeError as exc:
        time.sleep(LOG_DRAIN)
        print(f"bundled llama.cpp engine: {exc} (its log above says why)", file=sys.stderr)
        return 1
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
    _await_loop(server.listening_address)
    while not stopped.wait(1.0):
        pass
    os._exit(0)  # at once: see the module's docstring


def _await_loop(address: str) -> None:
    """Return once the engine's task loop answers (``GET /slots``): it starts a moment after
    the model is loaded, and a stop before it would be lost."""
    deadline = time.monotonic() + LOOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(address + "/slots", timeout=LOOP_TIMEOUT):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
