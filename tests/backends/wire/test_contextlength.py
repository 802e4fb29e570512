"""A prompt too long for the context in every engine's words: one real message per wording
(as the engine's source writes it, or as its users quote it), read for its numbers, and an
upstream's error body that says so is the client's ``context_length_exceeded``."""

from __future__ import annotations

import pytest

from proxy.backends.wire.contextlength import WORDINGS, too_long
from proxy.backends.wire.events import stream_error
from proxy.core.errors import ContextLengthError, InvalidRequestError

MESSAGES = [
    ("This model's maximum context length is 8192 tokens. However, your messages resulted in "
     "9000 tokens. Please reduce the length of the messages.", 9000, 8192),
    ("This model's maximum context length is 1024 tokens. However, you requested 1541 tokens "
     "(1041 in the messages, 500 in the completion). Please reduce the length of the messages "
     "or completion.", 1041, 1024),
    ("This model's maximum context length is 4097 tokens, however you requested 4200 tokens "
     "(4000 in your prompt; 200 for the completion). Please reduce your prompt; or completion "
     "length.", 4000, 4097),
    ("This model's maximum context length is 2048 tokens. However, you requested 256 output "
     "tokens and your prompt contains at least 1793 input tokens, for a total of at least 2049 "
     "tokens. Please reduce the length of the input prompt or the number of requested output "
     "tokens. (parameter=input_tokens, value=1793)", 1793, 2048),
    ("'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum context "
     "length is 2048 tokens and your request has 100 input tokens (2000 > 2048 - 100).",
     100, 2048),
    ("This model's maximum context length is 512 tokens. However, you requested 600 tokens in "
     "the input for embedding generation. Please reduce the length of the input.", 600, 512),
    ("This model's maximum context length is 2048 tokens. However, your request has 3000 input "
     "tokens. Please reduce the length of the input messages.", 3000, 2048),
    ("You passed 3000 input tokens and requested 100 output tokens. However, the model's "
     "context length is only 2048 tokens, resulting in a maximum input length of 1948 tokens. "
     "Please reduce the length of the input prompt.", 3000, 2048),
    ("The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make "
     "sure that `max_model_len` is no smaller than the number of text tokens.", 5000, 4096),
    ("Input tokens exceed the configured limit of 272000 tokens. Your messages resulted in "
     "300000 tokens. Please reduce the length of the messages.", 300000, 272000),
    ("Your input exceeds the context window of this model. Please adjust your input and try "
     "again.", None, None),
    ("request (1541 tokens) exceeds the available context size (1024 tokens), try increasing "
     "it", 1541, 1024),
    ("input (700 tokens) is larger than the max context size (512 tokens). skipping", 700, 512),
    ("the request exceeds the available context size. try increasing the context size or "
     "enable context shift", None, None),
    ("The input (2048 tokens) is longer than the model's context length (1024 tokens).",
     2048, 1024),
    ("Requested token count exceeds the model's maximum context length of 4096 tokens. You "
     "requested a total of 5000 tokens: 4000 tokens from the input messages and 1000 tokens "
     "for the completion. Please reduce the number of tokens in the input messages or the "
     "completion to fit within the limit.", 4000, 4096),
    ("Input length (9000 tokens) exceeds the maximum allowed length (8192 tokens). Use a "
     "shorter input or enable --allow-auto-truncate.", 9000, 8192),
    ("Trying to keep the first 5012 tokens when context the overflows. However, the model is "
     "loaded with context length of only 4096 tokens, which is not enough. Try to load the "
     "model with a larger context length, or provide a shorter input", 5012, 4096),
    ("The number of tokens to keep from the initial prompt is greater than the context length. "
     "Try to load the model with a larger context length, or provide a shorter input",
     None, None),
    ("Cannot truncate prompt with n_keep (5000) >= n_ctx (4096)", 5000, 4096),
    ("the prompt is longer than the context length currently available to the model; shorten "
     "the prompt, adjust the context length in settings, or use a model with a longer context "
     "length", None, None),
    ("the input length exceeds the context length", None, None),
    ("input length (9000 tokens) exceeds the model's maximum context length (8192 tokens)",
     9000, 8192),
    ("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 "
     "`inputs` tokens and 200 `max_new_tokens`", 4000, 4096),
    ("Input validation error: `inputs` must have less than 1024 tokens. Given: 1500", 1500, 1024),
    ("Requested tokens (5000) exceed context window of 4096", 5000, 4096),
    ("Prompt exceeds n_ctx: 5000 > 4096", 5000, 4096),
]  # fmt: skip


@pytest.mark.parametrize("message, prompt, limit", MESSAGES, ids=lambda m: str(m)[:40])
def test_each_engines_words_for_a_prompt_too_long_are_read_with_their_numbers(
    message, prompt, limit
):
    found = too_long(message)
    assert found is not None and (found.prompt, found.limit) == (prompt, limit)


def test_every_wording_has_a_real_message():
    read = {too_long(message).engine for message, _, _ in MESSAGES}
    assert read == {engine for engine, _, _ in WORDINGS}


@pytest.mark.parametrize(
    "message",
    [
        "max_tokens is too large: 5000. This model supports at most 4096 completion tokens",
        "Context size has been exceeded.",  # the cache filled while answering: not the prompt
        "'messages' must be a list",
        "Input validation error: `max_new_tokens` must be <= 1024. Given: 2000",
    ],
)
def test_other_refusals_are_not_read_as_a_prompt_too_long(message):
    assert too_long(message) is None


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": MESSAGES[1][0], "type": "BadRequestError", "code": 400}},
        {"object": "error", "message": MESSAGES[14][0], "type": "BadRequestError", "code": 400},
        {"error": MESSAGES[17][0]},  # LM Studio: the error a string
        {"error": MESSAGES[23][0], "error_type": "validation"},  # TGI
    ],
    ids=["vllm", "sglang", "lm-studio", "tgi"],
)
def test_an_engines_refusal_is_the_clients_context_length_exceeded(body):
    error = stream_error(body, "the engine")
    assert isinstance(error, ContextLengthError) and error.code == "context_length_exceeded"
    assert error.status == 400 and error.param == "messages"


def test_a_refusal_of_something_else_stays_the_engines_own():
    error = stream_error({"error": {"message": "'messages' must be a list", "code": 400}}, "x")
    assert type(error) is InvalidRequestError and error.code is None
