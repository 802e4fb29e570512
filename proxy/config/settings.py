"""Settings: what the operator can tell the proxy, grouped in sections, filled from flags, then
``PROXY_*`` env vars, then defaults.

Every setting declares its help line next to its default; the command line, the env vars and
the settings table of ``docs/settings.md`` all come from it. A setting's flag and variable are
named by the setting alone (``llama_api``: ``--llama-api``, ``PROXY_LLAMA_API``), whatever
its section (``settings.upstream.llama_api``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from typing import Mapping, Optional, Sequence
from urllib.parse import urlsplit

from proxy.config import flags
from proxy.config.files import (
    parse_memory,
    parse_size,
    resolved,
    resolved_command_line,
    resolved_template,
)
from proxy.config.flags import flag_name

HISTORIC_FLAGS = ("chat_prompt", "user_name", "ai_name", "system_name")
# the steps that walk a body recursively take 160 levels, not 200 (jsonschema, checking a
# schema, runs out of Python's recursion first)
MOST_NESTING = 128
# what of a setting's value is a path (setting(path=…)), and how it is resolved
PATHS = {
    "file": resolved,
    "template": resolved_template,  # a file's path, or a preset's name
    "arguments": resolved_command_line,  # a command line, some of whose words name files
}
KEPT = ("bundled",)  # --llama-server's word for the bundled engine, no path


def setting(
    default,
    help: str,
    *,
    choices: Sequence[str] = (),
    secret: bool = False,
    metavar: Optional[str] = None,
    path: str = "",
):
    """Declare a setting: its default, its help line, and how the command line shows it.
    ``path``: what of its value is a path to resolve (:data:`PATHS`)."""
    return field(
        default=default,
        repr=not secret,
        metadata={"help": help, "choices": tuple(choices), "metavar": metavar, "path": path},
    )


@dataclass(frozen=True)
class UpstreamSettings:
    """The servers the proxy sends requests to, and how long it waits for them."""

    llama_api: tuple = setting(
        ("http://127.0.0.1:8080",),
        "base URL of the llama.cpp / PowerInfer server; several URLs are "
        "replicas of the same model (env: comma-separated)",
        metavar="URL",
    )
    embedding_api: str = setting(
        "", "base URL of a separate server.cpp for embeddings (default: --llama-api)", metavar="URL"
    )
    llama_api_key: str = setting(
        "", "API key the upstream server expects, if any", secret=True, metavar="KEY"
    )
    slots: int = setting(
        0,
        "generations the upstream runs at once; 0 = as the server reports, "
        "or as its answers show (PowerInfer, llama.cpp 2023)",
    )
    connect_timeout: float = setting(5.0, "seconds to wait for a connection to the upstream")
    upstream_timeout: float = setting(600.0, "seconds to wait for the upstream's next bytes")

    def __post_init__(self) -> None:
        if isinstance(self.llama_api, str):  # llama_api="http://…": one replica
            object.__setattr__(self, "llama_api", (self.llama_api,))


@dataclass(frozen=True)
class PromptSettings:
    """How chats become prompts: the template and the historic shim's flags."""

    chat_prompt: str = setting(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant follows the given rules no matter what.\\n",
        "text on top of every chat prompt of the historic template ('\\n' = newline)",
    )
    user_name: str = setting("\\nUSER: ", "prefix of user messages in the historic template")
    ai_name: str = setting(
        "\\nASSISTANT: ", "prefix of assistant messages in the historic template"
    )
    system_name: str = setting(
        "\\nASSISTANT's RULE: ", "prefix of system messages in the historic template"
    )
    stop: str = setting("</s>", "stop word of the historic template, sent in 'stop' (empty = none)")
    chat_template: str = setting(
        "",
        "chat template: auto (the model's own: the server renders "
        "chats where it can), historic (the flags above), a preset "
        "(chatml, llama2, llama3, mistral, vicuna, alpaca, zephyr, "
        "chatglm3) or a Jinja file (default: auto, or historic when "
        "one of the four flags above is given)",
        metavar="NAME|FILE|auto",
        path="template",
    )
    reasoning: str = setting(
        "auto",
        "how the model's thoughts are told from its answer: "
        "think-tags (<think>…</think>), none, or auto "
        "(think-tags when its chat template has them)",
        choices=("auto", "think-tags", "none"),
    )

    def __post_init__(self) -> None:
        if not self.chat_template:
            given = [
                name for name in HISTORIC_FLAGS if getattr(self, name) != _default(type(self), name)
            ]
            object.__setattr__(self, "chat_template", default_template(given))


@dataclass(frozen=True)
class ModelSettings:
    """What serves the models: a models file, or the flags' one model."""

    config: str = setting(
        "",
        "models file (TOML): every model with its aliases, replicas, "
        "template and defaults; replaces --llama-api, --backend, --model, "
        "--chat-template, --model-name and --slots",
        metavar="PATH",
        path="file",
    )
    model_name: str = setting(
        "", "model id reported when a request names none (default: the upstream's model name)"
    )
    backend: str = setting(
        "servercpp",
        "what generates text: a server.cpp upstream, or a chatglm.cpp model loaded in-process",
        choices=("servercpp", "chatglm"),
    )
    model: str = setting(
        "",
        "model file: a GGUF the proxy starts llama-server for "
        "(servercpp), hf:<org>/<repo>[:<quant>] to download one from "
        "Hugging Face first, or a chatglm.cpp GGML .bin (--backend "
        "chatglm)",
        metavar="PATH",
        path="file",
    )
    affinity: str = setting(
        "on",
        "send each conversation back to the replica and slot that "
        "hold its KV cache; off = the least busy replica",
        choices=("on", "off"),
    )
    hosted_tools: str = setting(
        "refuse",
        "hosted tools a client asks for that the gateway does not run "
        "(web_search, file_search, mcp…): refuse (a 400 naming the "
        "tool) or drop (left out, named in a response header)",
        choices=("refuse", "drop"),
    )
    max_length: int = setting(
        4096,
        "chatglm: most tokens per generation, prompt plus answer "
        "(its KV cache; at most the model file's own)",
    )
    max_context_length: int = setting(
        2048, "chatglm: most prompt tokens; a longer prompt loses its oldest tokens"
    )


@dataclass(frozen=True)
class ServerSettings:
    """The model servers the proxy runs itself, their memory and saved caches."""

    llama_server: str = setting(
        "",
        "llama-server binary for --model (default: llama-server on "
        "PATH, else the one llama-cpp-python installed, else the "
        "llama.cpp engine the xllamacpp wheel bundles; 'bundled' "
        "picks that one)",
        metavar="PATH",
        path="file",
    )
    sd_server: str = setting(
        "",
        "sd-server binary (stable-diffusion.cpp's) for the models of "
        'backend = "sdserver" the proxy runs (default: sd-server on PATH)',
        metavar="PATH",
        path="file",
    )
    server_args: str = setting(
        "",
        'extra arguments for the llama-server started for --model (e.g. "-c 8192 -np 4 -ngl 99")',
        metavar="ARGS",
        path="arguments",
    )
    max_running: int = setting(
        0,
        "model servers the proxy runs at once; starting one more "
        "stops the least recently used idle one (0 = no limit)",
    )
    max_memory: str = setting(
        "",
        "memory the servers the proxy runs may take together, "
        "e.g. 20GiB; starting one more than fit stops the least "
        "recently used idle ones (default: the memory available "
        "when the proxy starts)",
        metavar="SIZE",
    )
    slot_save: str = setting(
        "on-stop",
        "when the servers the proxy runs save their "
        "conversations' KV caches to disk, to restore them "
        "when a conversation comes back: on-stop (before a "
        "swap, an idle stop or an unload), every-turn (after "
        "every answer too: they outlive a crash), or off",
        choices=("on-stop", "every-turn", "off"),
    )
    slot_cache_size: str = setting(
        "8GiB",
        "disk the saved KV caches may take; the least recently used go first",
        metavar="SIZE",
    )
    slot_cache_dir: str = setting(
        "",
        "folder for the saved KV caches (default: ~/.cache/oai-proxy/slots)",
        metavar="PATH",
        path="file",
    )
    log_dir: str = setting(
        "",
        "folder for the output of the servers the proxy runs (default: ~/.cache/oai-proxy/logs)",
        metavar="PATH",
        path="file",
    )


@dataclass(frozen=True)
class AccessSettings:
    """Who may call: keys, the admin and metrics keys, browsers' origins."""

    api_key: tuple = setting(
        (),
        "API key(s) clients must send as 'Authorization: Bearer KEY' "
        "or 'x-api-key: KEY'; none = no key required (env: "
        "comma-separated)",
        secret=True,
        metavar="KEY",
    )
    api_key_file: str = setting(
        "", "file with one API key per line, added to --api-key", metavar="PATH", path="file"
    )
    keys: str = setting(
        "",
        "keys file (TOML): named keys, the models each may use, requests "
        "and tokens per minute; added to --api-key",
        metavar="PATH",
        path="file",
    )
    watch: str = setting(
        "off",
        "read the keys file and the models file again whenever "
        "either changes (on); they are read again on SIGHUP and "
        "through POST /admin/reload too",
        choices=("off", "on"),
    )
    admin_key: str = setting(
        "",
        "key for the admin API (/admin/...): list, load and unload "
        "models, read their logs; it shows /health and the fleet "
        "page in full, and with keys on the API takes it too (every "
        "model, managing servers); none = admin API off",
        secret=True,
        metavar="KEY",
    )
    metrics_key: str = setting(
        "",
        "key for GET /metrics (the admin key opens it too); none = "
        "/metrics is public without keys, and with keys only the "
        "admin key opens it (its counts name each key)",
        secret=True,
        metavar="KEY",
    )
    cors_origins: tuple = setting(
        (),
        "origins of other sites whose pages may call the API "
        "from a browser ('*' = any); none = only the proxy's own "
        "pages and pages of this machine",
        metavar="ORIGIN",
    )
    allowed_hosts: tuple = setting(
        (),
        "host names served besides this machine's own when the "
        "proxy listens on a loopback address (a name in "
        "/etc/hosts, a reverse proxy's)",
        metavar="HOST",
    )
    image_urls: str = setting(
        "off",
        "fetch the images clients give as http(s) URLs: off "
        "(only images sent inline are read), public (from "
        "addresses on the internet only), any (the LAN's too); "
        "a request's URLs are fetched at once, within 10 "
        "seconds together",
        choices=("off", "public", "any"),
    )


@dataclass(frozen=True)
class StoreSettings:
    """What is kept and shared: usage, stored responses, Redis for every proxy."""

    usage_db: str = setting(
        "",
        "SQLite file for usage per key and model (default: "
        "~/.cache/oai-proxy/usage.sqlite3; Redis with --redis-url)",
        metavar="PATH",
        path="file",
    )
    responses_db: str = setting(
        "",
        "SQLite file for the responses the Responses API stores "
        "(default: ~/.cache/oai-proxy/responses.sqlite3; Redis "
        "with --redis-url)",
        metavar="PATH",
        path="file",
    )
    responses_retention: float = setting(30.0, "days a stored response is kept")
    exchanges_db: str = setting(
        "",
        "SQLite file for the exchanges kept for the inspector "
        "(default: ~/.cache/oai-proxy/exchanges.sqlite3)",
        metavar="PATH",
        path="file",
    )
    capture_max_exchanges: int = setting(10_000, "exchanges the inspector keeps at most")
    capture_max_mib: int = setting(256, "MiB of exchanges the inspector keeps at most")
    capture_retention: float = setting(7.0, "days the inspector keeps an exchange")
    redis_url: str = setting(
        "",
        "Redis for rate limits, usage, stored responses and the "
        "live conversations placement balances, shared by every "
        "proxy process (e.g. redis://host:6379/0); none = per "
        "machine",
        secret=True,
        metavar="URL",
    )
    live_window: float = setting(
        60.0,
        "seconds a conversation counts as live on its replica "
        "after its last turn, for the placement every proxy "
        "shares through --redis-url",
    )
    files_dir: str = setting(
        "",
        "folder for the files clients upload and the batches they run (default: "
        "~/.cache/oai-proxy/files); proxies that share it share the batches",
        metavar="PATH",
        path="file",
    )
    max_file_size: int = setting(200 * 1024 * 1024, "largest file a client may upload, in bytes")
    max_batch_lines: int = setting(50_000, "most requests one batch (its input file) may hold")
    files_per_key: int = setting(1000, "most files one key may keep")
    files_bytes_per_key: int = setting(
        1024**3, "most bytes of files one key may keep, its batches' answers counted"
    )
    files_reserve: int = setting(
        1024**3,
        "bytes the files' disk keeps free for the proxy's other stores (usage and budgets): "
        "an upload or a batch's answer that would take them is refused (503) or waits",
    )
    batches_per_key: int = setting(16, "batches one key may have under way at once")
    batch_lines_per_key: int = setting(
        100_000, "requests one key's batches under way may hold in all"
    )
    files_retention: float = setting(
        30.0, "days a file (uploaded, or a batch's answers) is kept; 0: until it is deleted"
    )
    batch_lines_at_once: int = setting(
        4, "requests of one batch a proxy runs at once, each only when a slot is free for it"
    )


UPLOAD_OVERHEAD = 1 << 20  # bytes of a multipart upload beside its file


def largest_upload(stores: "StoreSettings") -> int:
    """The largest body an upload of a file may be: the file, and its form around it."""
    return stores.max_file_size + UPLOAD_OVERHEAD


@dataclass(frozen=True)
class LimitSettings:
    """What one request may ask, and how long it may wait for a slot."""

    max_queue: int = setting(
        256,
        "requests that may wait for a free slot (or, with chatglm, "
        "for the model); more get 503 with Retry-After",
    )
    queue_timeout: float = setting(
        300.0, "seconds a request may wait for a free slot before it gets 503 with Retry-After"
    )
    max_body_size: int = setting(
        32 * 1024 * 1024, "largest request body accepted, in bytes (its images' base64 included)"
    )
    max_image_size: int = setting(
        20 * 1024 * 1024,
        "largest image accepted, in bytes; the "
        "images of one request given by URL may "
        "be as large together",
    )
    max_audio_size: int = setting(
        25 * 1024 * 1024, "largest audio file a transcription may upload, in bytes"
    )
    max_image_pixels: int = setting(
        4096 * 4096,
        "most pixels an image may declare (width x "
        "height, read from its header, never "
        "decoded): 4096x4096 holds a 12-megapixel "
        "photo or a 5K screenshot, more than vision "
        "models see; a few bytes can declare "
        "gigabytes, which the server would decode",
    )
    max_choices: int = setting(8, "largest 'n' (choices per request) accepted")
    max_batch: int = setting(
        256,
        "most inputs accepted in one embeddings request, and most documents in one rerank request",
    )
    max_containers: int = setting(
        65536,
        "most arrays and objects in one request body, counted "
        "before it is read: read, each takes the proxy 60 "
        "bytes and more for two or three of JSON (7 MiB of "
        "tools took 150 MiB); a long agent session holds some "
        "ten thousand",
    )
    max_nesting: int = setting(
        64,
        f"deepest nesting of arrays and objects accepted in a "
        f"request body (at most {MOST_NESTING}): the steps that walk "
        f"a body recurse (encoding it for a server, checking a "
        f"schema, compiling a grammar), and run out of Python's "
        f"recursion near 200 levels; real requests nest a dozen",
    )
    max_tools: int = setting(
        128,
        "most tools one request may offer (OpenAI's own limit): the "
        "model server compiles every tool's schema into the grammar "
        "of its answer",
    )
    max_schema_size: int = setting(
        32 * 1024,
        "largest JSON Schema accepted (a tool's "
        "parameters, a response format), in bytes of its "
        "JSON: llama-server compiles a schema of 32 KiB "
        "into a grammar in a tenth of a second, one of "
        "256 KiB in most of a minute",
    )


@dataclass(frozen=True)
class ServingSettings:
    """The HTTP server: where it listens, its workers and deadlines."""

    host: str = setting(
        "127.0.0.1",
        "address to listen on; several comma-separated (127.0.0.1,::1), as llama-server's",
    )
    port: int = setting(8081, "port to listen on")
    server: str = setting(
        "waitress",
        "HTTP server for the oai-proxy command: waitress (pure Python), gunicorn, or granian "
        "(HTTP in Rust)",
        choices=("waitress", "gunicorn", "granian"),
    )
    workers: int = setting(1, "worker processes (gunicorn, granian)")
    threads: int = setting(
        1024,
        "threads per worker; each open stream, request waiting for a "
        "slot or request being read holds one",
    )
    client_timeout: float = setting(
        30.0,
        "seconds a client may leave its request half-sent, "
        "or its answer unread, before it is dropped "
        "(gunicorn; waitress buffers requests itself)",
    )
    graceful_timeout: float = setting(
        30.0,
        "seconds streams in flight may take to finish once "
        "the proxy is told to stop (SIGTERM); the rest "
        "end with an error event",
    )

    @property
    def hosts(self) -> tuple:
        """The addresses ``host`` lists."""
        return hosts(self.host)

    def addresses(self) -> list:
        """``host:port`` of each address, an IPv6 one in brackets."""
        return [f"[{h}]:{self.port}" if ":" in h else f"{h}:{self.port}" for h in self.hosts]


@dataclass(frozen=True)
class ObservingSettings:
    """What an operator sees: metrics and logs."""

    metrics: str = setting(
        "on",
        "Prometheus metrics at /metrics; off = none kept (the overhead header stays)",
        choices=("on", "off"),
    )
    log_level: str = setting("info", "logging level", choices=("debug", "info", "warning", "error"))
    access_log: str = setting(
        "on",
        "a line per request at the info level: client, method, "
        "path, status, seconds, model and key name; off = none",
        choices=("on", "off"),
    )
    otel: str = setting(
        "off",
        "a trace of every request, exported over OTLP as OpenTelemetry's OTEL_* variables "
        "say (needs oai-proxy[otel]); off = nothing traced, nothing of it loaded",
        choices=("on", "off"),
    )
    otel_key_names: str = setting(
        "off", "name the key of each request on its span; off = no key named", choices=("on", "off")
    )
    capture: str = setting(
        "off",
        "keep every exchange (the request as sent, what went upstream, the prompt the "
        "model saw, the text it wrote, the answer, its facts) for the inspector, "
        "/admin/exchanges; off = only those of keys and models with capture = true",
        choices=("on", "off"),
    )


SECTIONS = {
    "upstream": UpstreamSettings,
    "prompts": PromptSettings,
    "models": ModelSettings,
    "servers": ServerSettings,
    "access": AccessSettings,
    "stores": StoreSettings,
    "limits": LimitSettings,
    "serving": ServingSettings,
    "observing": ObservingSettings,
}


@dataclass(frozen=True)
class Settings:
    """Everything the proxy can be told, by section; CLI > env > default."""

    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    prompts: PromptSettings = field(default_factory=PromptSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    servers: ServerSettings = field(default_factory=ServerSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    stores: StoreSettings = field(default_factory=StoreSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    observing: ObservingSettings = field(default_factory=ObservingSettings)

    def __post_init__(self) -> None:
        _validate(self.flat())

    @classmethod
    def of(cls, **values) -> "Settings":
        """Settings from flat names, as flags and variables name them; the rest default."""
        section_of = {spec.name: section for section, spec in setting_fields()}
        unknown = sorted(set(values) - set(section_of))
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        return cls(
            **{
                section: kind(
                    **{name: value for name, value in values.items() if section_of[name] == section}
                )
                for section, kind in SECTIONS.items()
            }
        )

    def flat(self) -> dict:
        """Every setting by its own name."""
        return {
            spec.name: getattr(getattr(self, section), spec.name)
            for section, spec in setting_fields()
        }

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """Build settings from ``PROXY_*`` variables (for ``gunicorn proxy.wsgi``)."""
        return cls.from_args([], environ)

    @classmethod
    def from_args(
        cls, argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None
    ) -> "Settings":
        """Build settings from command-line flags over ``PROXY_*`` variables."""
        environ = os.environ if environ is None else environ
        specs = [spec for _, spec in setting_fields()]
        parser = flags.build_parser(specs, environ)
        values = flags.parsed(parser, specs, argv, environ)
        if not values["chat_template"]:
            given = flags.given(specs, argv, environ)
            values["chat_template"] = default_template(
                [name for name in HISTORIC_FLAGS if name in given]
            )
        try:
            return cls.of(**_with_key_file(with_paths_resolved(values, os.getcwd())))
        except ValueError as exc:
            parser.error(str(exc))


def setting_fields() -> list:
    """``(section, field)`` of every setting, in the order ``--help`` lists them."""
    return [(section, spec) for section, kind in SECTIONS.items() for spec in fields(kind)]


def with_paths_resolved(values: dict, folder: str) -> dict:
    """``values`` with every path in them absolute, taken from ``folder`` where relative."""
    kinds = {spec.name: spec.metadata["path"] for _, spec in setting_fields()}
    return {
        name: PATHS[kinds[name]](value, folder)
        if kinds.get(name) and value and value not in KEPT
        else value
        for name, value in values.items()
    }


def _with_key_file(values: dict) -> dict:
    """``values`` with the keys of ``--api-key-file`` added to ``--api-key``."""
    path = values.get("api_key_file")
    if not path:
        return values
    try:
        with open(path, encoding="utf-8") as handle:
            keys = [line.strip() for line in handle if line.strip()]
    except OSError as exc:
        raise ValueError(f"cannot read --api-key-file {path}: {exc.strerror}") from None
    return {**values, "api_key": tuple(values.get("api_key", ())) + tuple(keys)}


def default_template(historic_flags_given: Sequence[str]) -> str:
    """``auto`` (the model's own template), unless the historic template's flags are given:
    then ``historic``, as the original shim rendered chats."""
    return "historic" if historic_flags_given else "auto"


def hosts(host: str) -> tuple:
    """The addresses of a ``--host`` value: one, or several comma-separated."""
    return tuple(part.strip() for part in host.split(","))


def _default(kind: type, name: str):
    return next(spec.default for spec in fields(kind) if spec.name == name)


def _validate(settings: dict) -> None:
    """Cross-checks of the flat settings; a ``ValueError`` names the flag."""
    if not settings["llama_api"]:
        raise ValueError("--llama-api needs at least one URL")
    for name, value in [("llama_api", url) for url in settings["llama_api"]] + [
        ("embedding_api", settings["embedding_api"])
    ]:
        url = urlsplit(value)
        if (value or name == "llama_api") and (
            url.scheme not in ("http", "https") or not url.netloc
        ):
            raise ValueError(f"{flag_name(name)} must be an http(s) URL, got {value!r}")
    if len(set(settings["llama_api"])) < len(settings["llama_api"]):
        raise ValueError("--llama-api names the same URL twice")
    listening = hosts(settings["host"])
    if not listening or not all(listening):
        raise ValueError(f"--host must list addresses, comma-separated, got {settings['host']!r}")
    if len(listening) > 1 and settings["server"] == "granian":
        raise ValueError(
            f"--host lists {len(listening)} addresses and granian listens on one: serve "
            "with waitress or gunicorn, or give one address (:: listens on every one)"
        )
    if not 0 < settings["port"] < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {settings['port']}")
    for name in (
        "workers",
        "threads",
        "max_body_size",
        "max_image_size",
        "max_audio_size",
        "max_image_pixels",
        "max_choices",
        "max_batch",
        "max_containers",
        "max_tools",
        "max_schema_size",
        "max_file_size",
        "max_batch_lines",
        "files_per_key",
        "files_bytes_per_key",
        "batches_per_key",
        "batch_lines_per_key",
        "batch_lines_at_once",
    ):
        if settings[name] < 1:
            raise ValueError(f"{flag_name(name)} must be at least 1")
    if not 1 <= settings["max_nesting"] <= MOST_NESTING:
        raise ValueError(
            f"--max-nesting must be between 1 and {MOST_NESTING}: deeper bodies "
            f"would reach Python's recursion limit"
        )
    for name in (
        "client_timeout",
        "connect_timeout",
        "upstream_timeout",
        "queue_timeout",
        "graceful_timeout",
        "responses_retention",
        "live_window",
    ):
        if not 0 < settings[name] < math.inf:
            raise ValueError(f"{flag_name(name)} must be a positive number of seconds")
    for _, spec in setting_fields():
        choices = spec.metadata["choices"]
        if choices and settings[spec.name] not in choices:
            raise ValueError(
                f"{flag_name(spec.name)} must be one of {', '.join(choices)}, "
                f"got {settings[spec.name]!r}"
            )
    if any(not key or key.isspace() for key in settings["api_key"]):
        raise ValueError("--api-key must not be empty")
    for name in ("max_queue", "slots", "max_running", "files_retention", "files_reserve"):
        if not 0 <= settings[name] < math.inf:
            raise ValueError(f"{flag_name(name)} must be 0 or more")
    if settings["max_memory"]:
        parse_memory(settings["max_memory"])
    try:
        parse_size(settings["slot_cache_size"])
    except ValueError as exc:
        raise ValueError(f"--slot-cache-size: {exc}") from None
    if not 0 < settings["max_context_length"] < settings["max_length"]:
        raise ValueError(
            "--max-context-length must be at least 1 and less than --max-length, "
            "to leave room for the answer"
        )
    if settings["backend"] == "chatglm" and not settings["config"]:
        if not settings["model"]:
            raise ValueError("--backend chatglm needs --model PATH (a chatglm.cpp model file)")
        if settings["workers"] != 1:
            raise ValueError(
                "--backend chatglm holds one model per process and serializes "
                "generations: use --workers 1"
            )


def unescape(text: str) -> str:
    """Turn the historic flags' two-character ``\\n`` escapes into newlines."""
    return text.replace("\\n", "\n")
