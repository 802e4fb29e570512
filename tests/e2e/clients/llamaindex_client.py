"""LlamaIndex's OpenAILike (the proxy's OpenAI API) and Ollama (its Ollama API) classes as
clients of the proxy: stream an answer, and a tool round trip (the model calls get_weather,
the FunctionTool runs, its result goes back, the model answers). Ollama asks /api/show for
the model's context length."""

import json
import sys

from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.llms.ollama import Ollama
from llama_index.llms.openai_like import OpenAILike

given = json.loads(sys.argv[1])


def get_weather(city: str) -> str:
    """The weather in a city now"""
    return given["result"] if city == "Paris" else "Unknown"


tool = FunctionTool.from_defaults(fn=get_weather)
llms = {
    "openai_like": OpenAILike(
        model=given["model"],
        api_base=given["url"] + "/v1",
        api_key=given["key"],
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=8192,
        max_retries=0,
    ),
    "ollama": Ollama(
        model=given["model"],
        base_url=given["url"],
        request_timeout=120,
        headers={"Authorization": f"Bearer {given['key']}"},
    ),
}
said = {}
for name, llm in llms.items():
    streamed = "".join(
        part.delta or "" for part in llm.stream_chat([ChatMessage(role="user", content="Hello?")])
    )
    question = ChatMessage(role="user", content=given["question"])
    called = llm.chat_with_tools([tool], chat_history=[question])
    calls = llm.get_tool_calls_from_response(called, error_on_no_tool_call=True)
    history = [question, called.message]
    for call in calls:
        history.append(
            ChatMessage(
                role="tool",
                content=str(tool(**call.tool_kwargs)),
                additional_kwargs={"tool_call_id": call.tool_id, "name": call.tool_name},
            )
        )
    answered = llm.chat_with_tools([tool], chat_history=history)
    said[name] = {
        "streamed": streamed,
        "calls": [[call.tool_name, call.tool_kwargs] for call in calls],
        "answer": answered.message.content,
    }
print(json.dumps(said))
