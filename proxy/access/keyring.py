"""Named API keys, as a TOML keys file declares them, and the keyring that finds one.

```toml
[[keys]]
name = "alice"
key = "sk-alice"            # or key_env = "ALICE_KEY"
models = ["qwen", "llama"]  # optional: every model when left out
local_only = true           # optional: only the models this machine's servers run
                            # (backends servercpp and chatglm), of its models if given
hidden = true               # optional: other models are "not found" rather than forbidden
requests_per_minute = 60    # optional
tokens_per_minute = 20000   # optional
manage = true               # optional: may unload and keep loaded the servers the proxy
                            # runs for every client (Ollama's keep_alive); false by default
capture = true              # optional: its exchanges are kept for the inspector
weight = 2                  # optional: its share of busy slots against other keys (1)
priority = 0                # optional: 0 to 255, the lower served first (128)
max_concurrent = 4          # optional: slots it may hold at once, across the fleet
request_priority = true     # optional: a request may ask for a higher priority than the
                            # key's (any request may ask for a lower one)
tokens_per_day = 1000000    # optional: prompt and completion tokens per UTC day
tokens_per_month = 20000000 # optional: and per UTC month
cached_token_cost = 0.1     # optional: what a prompt token served from the server's cache
                            # counts against them (1, the default: as much as any other)
usd_per_day = 5             # optional: US dollars per UTC day, at the models' prices
usd_per_month = 50          # optional: and per UTC month
kinds = ["text", "sd.image"] # optional: what it may ask its models to make (text,
                            # embedding, rerank, transcription, speech, image): a kind of
                            # every model, or of one as model.kind; every kind when left out
tools = ["fs", "web.web_search"] # optional: the hosted tools it may have the gateway run:
                            # a server's every tool by its name, one tool as server.tool,
                            # "*" for all; none when left out
store_outage = "serve"      # optional: while the store of its limits and budgets is down
                            # (Redis gone, a full disk), serve it uncounted and charge its
                            # answers once the store is back; "refuse" (the default): a 503
```

Each mistake in the file is named by its key, its line and its field, never by its secret.
The names the proxy counts its own requests under (``admin``, ``anonymous``) are no key's.

What a key makes and keeps (files, batches, stored responses, exchanges, sessions of MCP
servers) is its *owner*'s: a name drawn from its secret, so that a key taken out and added
again under the same name with another secret owns nothing of the old one's.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from proxy.config.files import read_toml
from proxy.core.party import DEFAULT_PRIORITY, HIGHEST, LOWEST

FIELDS = {
    "name",
    "key",
    "key_env",
    "models",
    "hidden",
    "requests_per_minute",
    "tokens_per_minute",
    "manage",
    "capture",
    "weight",
    "priority",
    "max_concurrent",
    "request_priority",
    "tokens_per_day",
    "tokens_per_month",
    "cached_token_cost",
    "usd_per_day",
    "usd_per_month",
    "local_only",
    "store_outage",
    "tools",
    "kinds",
}
# what a request may ask a model to make, as a key's ``kinds`` grants it
KINDS = ("text", "embedding", "rerank", "transcription", "speech", "image")
EVERY = "*"  # in a key's tools: every server's every tool
TOOL_GRANT = re.compile(r"\*|[A-Za-z0-9_-]{1,64}(\.[^\s.][^\s]{0,127})?")
LEAST_USD = 0.000001  # a money budget's smallest: one micro-dollar, what budgets count in
ADMIN = "admin"  # the name and owner of the admin key's requests
ANONYMOUS = "anonymous"  # the name and owner of requests when no keys are configured
OWN_NAMES = (ADMIN, ANONYMOUS)  # no key of the keys file may be named so
KEYS_TABLE = re.compile(r"^[ \t]*\[\[[ \t]*keys[ \t]*\]\]", re.MULTILINE)


@dataclass(frozen=True)
class KeySpec:
    name: str
    secret: bytes
    models: tuple = ()  # model ids; empty = every model
    hidden: bool = False
    rpm: int = 0  # requests per minute; 0 = no limit
    tpm: int = 0  # tokens per minute; 0 = no limit
    manage: bool = False  # may stop and keep the servers every key shares
    capture: bool = False  # its exchanges are kept for the inspector
    weight: float = 1.0  # its share of busy slots against other keys
    priority: int = DEFAULT_PRIORITY  # the lower, the sooner its requests are served
    max_concurrent: int = 0  # slots it may hold at once; 0 = no cap
    request_priority: bool = False  # a request may ask for a higher priority than the key's
    tokens_per_day: int = 0  # 0 = no budget
    tokens_per_month: int = 0
    cached_token_cost: float = 1.0  # what a cached prompt token counts against the budgets
    serve_in_outage: bool = False  # served while its limits and budgets cannot be read
    usd_per_day: float = 0.0  # US dollars at the models' prices; 0 = no budget
    usd_per_month: float = 0.0
    local_only: bool = False  # only the models this machine's servers run
    tools: tuple = ()  # hosted tools it may run: "server", "server.tool" or "*"
    kinds: tuple = ()  # what it may ask its models to make: "kind", "model.kind"; () = all

    owner: str = ""  # whose things its requests reach; made from its secret when not given

    def __post_init__(self) -> None:
        if not self.owner:
            object.__setattr__(self, "owner", owner_of(self.secret))

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm)

    @property
    def budgeted(self) -> bool:
        return bool(
            self.tokens_per_day or self.tokens_per_month or self.usd_per_day or self.usd_per_month
        )

    @property
    def restricted(self) -> bool:
        """Whether the key may use only some models (:attr:`models`, once the gate has
        narrowed a ``local_only`` key's to the local ones served now)."""
        return bool(self.models) or self.local_only

    def may_use(self, model_id: str) -> bool:
        """Whether the key may use the model ``model_id`` (and so learn that it exists)."""
        return not self.restricted or model_id in self.models

    def may_ask(self, model_id: str, kind: str) -> bool:
        """Whether the key may ask the model ``model_id`` to make ``kind`` (``text``…)."""
        grants = self.kinds
        return not grants or kind in grants or f"{model_id}.{kind}" in grants

    def may_run(self, server: str, tool: str) -> bool:
        """Whether the key may have the gateway run ``tool`` of ``server`` (``tool`` empty:
        any tool of it)."""
        grants = self.tools
        if EVERY in grants or server in grants:
            return True
        if tool:
            return f"{server}.{tool}" in grants
        return any(grant.startswith(server + ".") for grant in grants)


def owner_of(secret: bytes) -> str:
    """The owner a key of ``secret`` is: a digest of it, never its name, so that another
    secret under the same name owns nothing of the first's."""
    return "key-" + hashlib.sha256(b"oai-proxy key\0" + secret).hexdigest()[:32]


def described(key: KeySpec) -> dict:
    """What the admin API shows of ``key``: everything but its secret."""
    return {
        "name": key.name,
        "models": list(key.models),
        "tools": list(key.tools),
        "kinds": list(key.kinds),
        "hidden": key.hidden,
        "requests_per_minute": key.rpm,
        "tokens_per_minute": key.tpm,
        "manage": key.manage,
        "capture": key.capture,
        "weight": key.weight,
        "priority": key.priority,
        "max_concurrent": key.max_concurrent,
        "request_priority": key.request_priority,
        "tokens_per_day": key.tokens_per_day,
        "tokens_per_month": key.tokens_per_month,
        "cached_token_cost": key.cached_token_cost,
        "usd_per_day": key.usd_per_day,
        "usd_per_month": key.usd_per_month,
        "local_only": key.local_only,
        "store_outage": "serve" if key.serve_in_outage else "refuse",
    }


class Keyring:
    """Every key the proxy accepts; none means it accepts requests without one."""

    def __init__(self, keys: Sequence[KeySpec]) -> None:
        self.keys = tuple(keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def find(self, token: bytes) -> Optional[KeySpec]:
        """The key ``token`` is, compared with every key so the time taken tells nothing."""
        found = None
        for key in self.keys:
            if hmac.compare_digest(token, key.secret):
                found = key
        return found

    def owned(self, owner: str) -> Optional[KeySpec]:
        """The key that is ``owner`` now (``None``: none is, it was taken out)."""
        return next((key for key in self.keys if key.owner == owner), None)


def plain_keys(secrets: Sequence[str]) -> list:
    """Keys given as bare values (``--api-key``): unnamed, unlimited, every model and every
    tool."""
    return [
        KeySpec(f"key-{number}", secret.encode("utf-8"), tools=(EVERY,))
        for number, secret in enumerate(secrets, 1)
    ]


def load_keyring(path: str, environ: Mapping[str, str]) -> list:
    """The keys of a keys file; a ``ValueError`` naming the file, key and field otherwise."""
    data = read_toml(path, "keys file")
    with open(path, encoding="utf-8", errors="replace") as file:
        return parse_keys(data, path, environ, file.read())


def parse_keys(data: dict, source: str, environ: Mapping[str, str], text: str = "") -> list:
    """The keys ``data`` (the keys file's TOML, ``text`` as written) declares; a mistake
    named by the key, the line its ``[[keys]]`` table begins and the field."""
    entries = data.get("keys")
    if not isinstance(entries, list) or not entries or set(data) - {"keys"}:
        raise ValueError(f"{source}: expected one or more [[keys]] tables and nothing else")
    starts = [text.count("\n", 0, match.start()) + 1 for match in KEYS_TABLE.finditer(text)]
    keys, names, secrets = [], set(), set()
    for number, entry in enumerate(entries, 1):
        line = f" (line {starts[number - 1]})" if len(starts) == len(entries) else ""
        where = f"{source}: key {number}{line}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: 'name' must be a non-empty string")
        where = f"{source}: key {name!r}{line}"
        if name in OWN_NAMES:
            raise ValueError(f"{where}: the name {name!r} is the proxy's own; name the key "
                             "otherwise")  # fmt: skip
        unknown = set(entry) - FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        if name in names:
            raise ValueError(f"{where}: the name is used twice")
        secret = _secret(entry, where, environ)
        if secret in secrets:
            raise ValueError(f"{where}: the same key value as an earlier key")
        models = entry.get("models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise ValueError(f"{where}: 'models' must be a list of model ids")
        tools = entry.get("tools", [])
        if not isinstance(tools, list) or not all(
            isinstance(grant, str) and TOOL_GRANT.fullmatch(grant) for grant in tools
        ):
            raise ValueError(
                f"{where}: 'tools' must be a list of servers of tools ('fs'), tools of them "
                f"('fs.read_file') or '*'"
            )
        kinds = entry.get("kinds", [])
        if not isinstance(kinds, list) or not kinds and "kinds" in entry or not all(
            isinstance(grant, str) and _kind_of(grant) for grant in kinds
        ):  # fmt: skip
            raise ValueError(
                f"{where}: 'kinds' must be a list of what the key may ask for, of every model "
                f"({', '.join(KINDS)}) or of one ('sd.image')"
            )
        hidden, manage, capture, request_priority, local_only = (
            _flag(entry, field, where)
            for field in ("hidden", "manage", "capture", "request_priority", "local_only")
        )
        limits = [
            _limit(entry, field, where) for field in ("requests_per_minute", "tokens_per_minute")
        ]
        names.add(name)
        secrets.add(secret)
        keys.append(
            KeySpec(
                name,
                secret,
                tuple(models),
                hidden,
                *limits,
                manage=manage,
                capture=capture,
                weight=_weight(entry, where),
                priority=_priority(entry, where),
                max_concurrent=_limit(entry, "max_concurrent", where),
                request_priority=request_priority,
                tokens_per_day=_limit(entry, "tokens_per_day", where),
                tokens_per_month=_limit(entry, "tokens_per_month", where),
                cached_token_cost=_share(entry, "cached_token_cost", where),
                serve_in_outage=_outage(entry, where),
                usd_per_day=_dollars(entry, "usd_per_day", where),
                usd_per_month=_dollars(entry, "usd_per_month", where),
                local_only=local_only,
                tools=tuple(tools),
                kinds=tuple(kinds),
            )
        )
    return keys


def _kind_of(grant: str) -> str:
    """The kind a grant of ``kinds`` names ("": none): ``kind``, or ``model.kind``."""
    if grant in KINDS:
        return grant
    model, _, kind = grant.rpartition(".")
    return kind if model and kind in KINDS else ""


def _secret(entry: dict, where: str, environ: Mapping[str, str]) -> bytes:
    if ("key" in entry) == ("key_env" in entry):
        raise ValueError(f"{where}: give exactly one of 'key' and 'key_env'")
    if "key" in entry:
        value = entry["key"]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: 'key' must be a non-empty string")
        return value.encode("utf-8")
    variable = entry["key_env"]
    if not isinstance(variable, str) or not environ.get(variable, "").strip():
        raise ValueError(f"{where}: 'key_env' names an environment variable that is not set")
    return environ[variable].encode("utf-8")


def _flag(entry: dict, field: str, where: str) -> bool:
    value = entry.get(field, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: '{field}' must be true or false")
    return value


def _outage(entry: dict, where: str) -> bool:
    """Whether the key is served while the store of its limits and budgets is down."""
    value = entry.get("store_outage", "refuse")
    if value not in ("refuse", "serve"):
        raise ValueError(f'{where}: \'store_outage\' must be "refuse" or "serve"')
    return value == "serve"


def _weight(entry: dict, where: str) -> float:
    value = entry.get("weight", 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
        raise ValueError(f"{where}: 'weight' must be a number above 0, at most 1000")
    return float(value)


def _share(entry: dict, field: str, where: str) -> float:
    value = entry.get(field, 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{where}: '{field}' must be a number from 0 to 1")
    return float(value)


def _dollars(entry: dict, field: str, where: str) -> float:
    """A money budget in US dollars (0: none, when left out)."""
    if field not in entry:
        return 0.0
    value = entry[field]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < LEAST_USD:
        raise ValueError(
            f"{where}: '{field}' must be US dollars, a number above 0 (at least {LEAST_USD:f})"
        )
    return float(value)


def _priority(entry: dict, where: str) -> int:
    value = entry.get("priority", DEFAULT_PRIORITY)
    if isinstance(value, bool) or not isinstance(value, int) or not HIGHEST <= value <= LOWEST:
        raise ValueError(
            f"{where}: 'priority' must be a whole number from {HIGHEST} (first) to {LOWEST}"
        )
    return value


def _limit(entry: dict, field: str, where: str) -> int:
    value = entry.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: '{field}' must be a whole number, 0 or more")
    return value
