"""Which of OpenAI's routes an upstream serves: chats, raw prompts (the legacy
completions), embeddings, reranking; declared in the models file (``endpoints``), else
learned from the upstream's own answers.

Not declared, every route is tried when a client asks for it: the servers this backend
fronts serve most of them where their model does (vLLM, SGLang, llama-server, LM Studio,
Ollama and LiteLLM answer completions and embeddings on the same base URL), and an upstream
that lacks one says so at no cost (404, 405, or llama-server's 501), where refusing by
default would refuse what the upstream would answer. No probe is sent: a request the
operator did not ask for, maybe on a metered API, whose answer to an empty body differs by
server. A route the upstream lacks is remembered, and refused by name from then on without
asking again, until the proxy starts anew (or the model changes in the models file).
Declared, the routes are exactly those: any other is refused by name before anything is
sent, and the model's card lists them from the start.

A model's card (``capabilities`` in ``/v1/models`` and Ollama's ``/api/show``) says what it
serves as far as is known: declared routes; not declared, chats (what every such upstream
is for) and raw prompts, and embeddings and reranking once the upstream has answered one;
less what it was found to lack.
"""

from __future__ import annotations

from typing import Iterable, Optional

from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError, ProxyError

PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "rerank": "/rerank",
    "responses": "/responses",  # declared only: a Responses client's own body goes there
    "transcriptions": "/audio/transcriptions",
    "translations": "/audio/translations",
    "speech": "/audio/speech",
    "image_generations": "/images/generations",
    "image_edits": "/images/edits",
}
OF_PATH = {path: endpoint for endpoint, path in PATHS.items()}
DOES = {  # what a model that lacks the endpoint does not do, as its refusal says
    "responses": "answer Responses bodies",
    "transcriptions": "transcribe audio",
    "translations": "translate audio",
    "speech": "speak",
    "image_generations": "draw pictures",
    "image_edits": "edit pictures",
}
ASSUMED = ("chat", "completions")  # served until the upstream says otherwise


class Endpoints:
    """The routes one upstream serves, as declared and as learned from its answers.

    What is learned is replaced whole, never changed in place: requests in other threads
    read it without a lock.
    """

    def __init__(self, model: str, declared: Iterable[str] = ()) -> None:
        """``model``: the id its errors name; ``declared``: the models file's ``endpoints``
        (empty: not declared)."""
        self.model = model
        self.declared = tuple(declared)
        self.lacking: dict = {}  # endpoint -> why: what the upstream answered
        self.answered: frozenset = frozenset()

    def refusal(self, endpoint: str) -> Optional[ProxyError]:
        """The error of a request for ``endpoint``, when it is known not to be served."""
        why = self.lacking.get(endpoint)
        if why is None and self.declared and endpoint not in self.declared:
            why = f"the models file gives its endpoints as {', '.join(self.declared)}"
        return None if why is None else absent(endpoint, self.model, why)

    def lacks(self, endpoint: str, why: str) -> ProxyError:
        """Remember that the upstream lacks ``endpoint`` (``why``: what it answered), and
        return the error its request gets."""
        self.lacking = {**self.lacking, endpoint: why}
        return absent(endpoint, self.model, why)

    def served(self, endpoint: str) -> None:
        """Remember that the upstream answered ``endpoint``."""
        if endpoint not in self.answered:
            self.answered = self.answered | {endpoint}

    def capabilities(self) -> tuple:
        """What the model's card says it can do."""
        known = self.declared or (*ASSUMED, *self.answered)
        return capabilities(endpoint for endpoint in known if endpoint not in self.lacking)


def capabilities(served: Iterable[str]) -> tuple:
    """A card's capabilities (Ollama's words) of the routes ``served``: chats call tools,
    raw prompts alone complete."""
    served = set(served)
    generates = (
        ("completion", "tools")
        if "chat" in served
        else ("completion",)
        if "completions" in served
        else ()
    )
    return (
        generates
        + (("embedding",) if "embeddings" in served else ())
        + (("rerank",) if "rerank" in served else ())
        + (("transcription",) if "transcriptions" in served else ())
        + (("speech",) if "speech" in served else ())
        + (("image_generation",) if served & {"image_generations", "image_edits"} else ())
    )


def absent(endpoint: str, model: str, why: str) -> ProxyError:
    """The error of a request for an ``endpoint`` the model does not serve, in the words and
    status its route gives whatever the backend: embeddings a 501, as a server without them
    gives; the others a 400 naming the field that asked for them."""
    named = f"the model {model!r}"
    if endpoint == "embeddings":
        return NotImplementedByBackendError(f"{named} has no embeddings: {why}")
    if endpoint == "rerank":
        return InvalidRequestError(f"{named} does not rerank: {why}", param="model")
    if endpoint == "completions":
        return InvalidRequestError(
            f"prompt cannot be served: {named} takes no raw prompt ({why}); send messages",
            param="prompt",
        )
    return InvalidRequestError(f"{named} does not {DOES.get(endpoint, 'chat')}: {why}",
                               param="model")  # fmt: skip
