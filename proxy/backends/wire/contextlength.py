"""A prompt too long for the engine's context, in each engine's own words: the messages
OpenAI's API and the engines that serve it write when a request does not fit, each read for
the numbers it carries (the prompt's tokens, the context's). Pure.

Each row names its engine and where its words come from, so that a new wording is one row.
A message that carries no number (LM Studio's, Ollama's) says the prompt is too long all the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

N = r"(?P<{}>\d[\d,]*)"  # a count, as an engine writes it (some put thousands' commas)
PROMPT, LIMIT = N.format("prompt"), N.format("limit")

# (engine, where its words are made, what they say): ``prompt`` and ``limit`` where told
WORDINGS = (
    ("OpenAI, vLLM <= 0.10, llama-cpp-python's server, DeepSeek, FastChat",
     "OpenAI's API (chat and completions); vllm/entrypoints/openai/serving_engine.py "
     "_validate_input; llama_cpp/server/errors.py context_length_exceeded",
     rf"maximum context length is {LIMIT} tokens[.,] However,? (?:your messages resulted in |"
     rf"you requested \d[\d,]* tokens \(|your request has ){PROMPT}"),
    ("vLLM >= 0.18", "vllm/renderers/params.py _token_len_check",
     rf"maximum context length is {LIMIT} tokens\. However, you requested \d+ output tokens "
     rf"and your prompt contains (?:at least )?{PROMPT} input tokens"),
    ("vLLM 0.10.2 to 0.17 (max_tokens too large)", "vllm/entrypoints/openai/serving_engine.py",
     rf"maximum context length is {LIMIT} tokens and your request has {PROMPT} input tokens"),
    ("vLLM (embeddings, score)", "vllm/entrypoints/openai/serving_engine.py _validate_input",
     rf"maximum context length is {LIMIT} tokens\. However, you requested {PROMPT} tokens in "
     "the input"),
    ("vLLM (renderer)", "vllm/renderers/params.py _token_len_check",
     rf"You passed {PROMPT} input tokens and requested \d+ output tokens\. However, the "
     rf"model's context length is only {LIMIT} tokens"),
    ("vLLM V1 engine", "vllm/v1/engine/input_processor.py _validate_prompt_len",
     rf"prompt \(length {PROMPT}\)(?: plus the number of requested output tokens \(at least "
     rf"1\))? is longer than the maximum model length of {LIMIT}"),
    ("OpenAI (input cap)", "OpenAI's API",
     rf"Input tokens exceed the configured limit of {LIMIT} tokens\. Your messages resulted "
     rf"in {PROMPT} tokens"),
    ("OpenAI (Responses)", "OpenAI's API", r"Your input exceeds the context window of this model"),
    ("llama-server", "tools/server/server-context.cpp update_slots",
     rf"request \({PROMPT} tokens\) exceeds the available context size \({LIMIT} tokens\)"),
    ("llama-server (embeddings, rerank)", "tools/server/server-context.cpp update_slots",
     rf"input \({PROMPT} tokens\) is larger than the max context size \({LIMIT} tokens\)"),
    ("llama-server (2024 to 2025)", "examples/server/server.cpp update_slots",
     r"the request exceeds the available context size"),
    ("SGLang", "python/sglang/srt/managers/tokenizer_manager.py _validate_one_request",
     rf"The input \({PROMPT} tokens\) is longer than the model's context length "
     rf"\({LIMIT} tokens\)"),
    ("SGLang (prompt and completion)",
     "python/sglang/srt/managers/tokenizer_manager.py _validate_one_request",
     rf"exceeds the model's maximum context length of {LIMIT} tokens\. You requested a total "
     rf"of \d+ tokens: {PROMPT} tokens from the input"),
    ("SGLang (scheduler)", "python/sglang/srt/managers/utils.py validate_input_length",
     rf"Input length \({PROMPT} tokens\) exceeds the maximum allowed length \({LIMIT} tokens\)"),
    ("LM Studio <= 0.3.15", "LM Studio's server (closed source; its users' reports)",
     rf"Trying to keep the first {PROMPT} tokens when context the overflows\. However, the "
     rf"model is loaded with context length of only {LIMIT} tokens"),
    ("LM Studio 0.3 to 0.4", "LM Studio's server (closed source; its users' reports)",
     rf"tokens to keep from the initial prompt is greater than the context length"
     rf"(?: \(n_keep: {PROMPT}>= n_ctx: {LIMIT}\))?"),
    ("LM Studio 0.4.6", "LM Studio's server (closed source; its users' reports)",
     rf"Cannot truncate prompt with n_keep \({PROMPT}\) >= n_ctx \({LIMIT}\)"),
    ("Ollama >= 0.30.9", "llm/llama_server.go",
     r"the prompt is longer than the context length currently available to the model"),
    ("Ollama <= 0.29", "runner/ollamarunner/runner.go errorInputTooLong",
     r"the input length exceeds the context length"),
    ("Ollama (MLX runner)", "x/mlxrunner/pipeline.go",
     rf"input length \({PROMPT} tokens\) exceeds the model's maximum context length "
     rf"\({LIMIT} tokens\)"),
    ("Text Generation Inference", "router/src/validation.rs ValidationError::MaxTotalTokens",
     rf"`inputs` tokens \+ `max_new_tokens` must be <= {LIMIT}\. Given: {PROMPT} `inputs` "
     "tokens"),
    ("Text Generation Inference", "router/src/validation.rs ValidationError::InputLength",
     rf"`inputs` must have less than {LIMIT} tokens\. Given: {PROMPT}"),
    ("llama-cpp-python", "llama_cpp/llama.py Llama._create_completion",
     rf"Requested tokens \({PROMPT}\) exceed context window of {LIMIT}"),
    ("llama-cpp-python (multimodal)", "llama_cpp/llama_chat_format.py",
     rf"Prompt exceeds n_ctx: {PROMPT} > {LIMIT}"),
)  # fmt: skip
READ = tuple((engine, re.compile(words, re.IGNORECASE)) for engine, _, words in WORDINGS)


@dataclass(frozen=True)
class PromptTooLong:
    """A prompt too long for the engine's context: its tokens and the context's, where the
    engine told them (``None``: it did not)."""

    engine: str
    prompt: Optional[int] = None
    limit: Optional[int] = None


def too_long(message: str) -> Optional[PromptTooLong]:
    """What ``message`` says of a prompt too long for the context (``None``: it is about
    something else)."""
    for engine, words in READ:
        found = words.search(message)
        if found is not None:
            told = found.groupdict()
            return PromptTooLong(engine, _count(told.get("prompt")), _count(told.get("limit")))
    return None


def _count(text: Optional[str]) -> Optional[int]:
    return int(text.replace(",", "")) if text else None
