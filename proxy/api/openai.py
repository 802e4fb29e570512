"""The OpenAI endpoints, with and without the ``/v1`` prefix."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from proxy.api.body import read_json
from proxy.api.call import this_call
from proxy.api.requestmodel import answer_name
from proxy.api.serve import asked, caller, embed_texts, serve, versioned
from proxy.api.state import Routes, get_state
from proxy.core.fields import asked_model
from proxy.dialects.openai import answer, chat, completions, embeddings, fim

bp = Blueprint("openai", __name__)
routes = Routes(bp, "Chat and text completions, streaming or not; models, embeddings, tokens")


@versioned(bp, "/chat/completions")
def create_chat_completion() -> Response:
    return serve(chat, asked(chat))


@versioned(bp, "/completions")
def create_completion() -> Response:
    return serve(completions, asked(completions))


@versioned(bp, "/fim/completions")
def create_fim_completion() -> Response:
    return serve(fim, asked(fim))


@versioned(bp, "/embeddings")
def create_embedding() -> Response:
    state = get_state()
    wanted = embeddings.parse(read_json(), state.limits)
    texts = [
        "".join(
            run if isinstance(run, str) else state.router.detokenize(run, wanted.model, caller())
            for run in embeddings.runs(item)
        )
        for item in wanted.inputs
    ]
    result = embed_texts(texts, wanted.model)
    return jsonify(
        embeddings.render(result, answer_name(), wanted.encoding_format, wanted.dimensions)
    )


@bp.post("/v1/tokenize")
def tokenize() -> Response:
    """Token ids and their text pieces, for clients that count or inspect embeddings."""
    body = read_json()
    text = embeddings.parse_tokenize(body)
    return jsonify(
        embeddings.render_tokens(get_state().router.tokenize(text, asked_model(body), caller()))
    )


@bp.post("/v1/detokenize")
def detokenize() -> Response:
    body = read_json()
    ids = embeddings.parse_detokenize(body)
    model = asked_model(body)
    return jsonify(
        embeddings.render_text(get_state().router.detokenize(ids, model, caller()) if ids else "")
    )


@versioned(bp, "/models", "GET")
def list_models() -> Response:
    """Every model, or with a key limited to some, those it may use."""
    router = get_state().router
    models = router.models()
    key = this_call().key
    if key is not None and key.restricted:
        models = [model for model in models if key.may_use(router.resolve(model.id).id)]
    return jsonify(answer.model_list(models))
