"""LiteLLM as a client of the proxy, through its OpenAI API (``openai/`` models, given the
base and key) and its Ollama API (``ollama_chat/`` and ``ollama/`` models, the base and key in
``OLLAMA_API_BASE`` and ``OLLAMA_API_KEY``, which LiteLLM also reads for the ``/api/show`` it
asks before each chat, where a base and key given as arguments do not reach): list the
models, stream an answer, and a tool round trip (the model calls get_weather, whole and
streamed; the result goes back, it answers)."""

import json
import os
import sys

import litellm

given = json.loads(sys.argv[1])
os.environ.update(OLLAMA_API_BASE=given["url"], OLLAMA_API_KEY=given["key"])
tools = [{"type": "function", "function": given["tool"]}]
said = {"models": {}}
for provider, where, prefixes in (
    ("openai", {"api_base": given["url"] + "/v1", "api_key": given["key"]}, ("openai",)),
    ("ollama", {}, ("ollama_chat", "ollama")),
):
    said["models"][provider] = litellm.get_valid_models(
        check_provider_endpoint=True, custom_llm_provider=provider, **where
    )
    for prefix in prefixes:
        options = dict(model=f"{prefix}/{given['model']}", num_retries=0, **where)
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in litellm.completion(
                messages=[{"role": "user", "content": "Hello?"}], stream=True, **options
            )
        )
        said[prefix] = {"streamed": streamed}
        if prefix == "ollama":
            continue  # /api/generate: a prompt, no tools
        question = {"role": "user", "content": given["question"]}
        called = litellm.completion(messages=[question], tools=tools, **options)
        message = called.choices[0].message
        calls = [
            (call.function.name, json.loads(call.function.arguments)) for call in message.tool_calls
        ]
        deltas = list(litellm.completion(messages=[question], tools=tools, stream=True, **options))
        gathered = litellm.stream_chunk_builder(deltas).choices[0].message
        streamed_calls = [
            (call.function.name, json.loads(call.function.arguments))
            for call in gathered.tool_calls
        ]
        answered = litellm.completion(
            tools=tools,
            **options,
            messages=[
                question,
                message.model_dump(exclude_none=True),
                {
                    "role": "tool",
                    "tool_call_id": message.tool_calls[0].id,
                    "content": given["result"],
                },
            ],
        )
        said[prefix].update(
            calls=calls, streamed_calls=streamed_calls, answer=answered.choices[0].message.content
        )
print(json.dumps(said))
