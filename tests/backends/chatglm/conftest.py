"""Tiny chatglm.cpp models for the chatglm backend's tests, written once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backends.chatglm.tinymodels import write_chatglm2, write_chatglm3, write_glm4

REPLY = "Hello from tiny GLM 世界!!"
# "世" is split over two tokens, to exercise decoding of partial characters
REPLY_TOKENS = [b"Hello", b" from", b" tiny", b" GLM", b" \xe4\xb8", b"\x96", "界".encode(), b"!!"]
TOOL_CALL = ["get_weather\n", "```python\n", "tool_call(city='Paris', days=3)\n", "```"]
EVIL_CALL = ["get_weather\n", "```python\n", "__import__('os').system('touch pwned')\n", "```"]
CHATGLM2_REPLY = ["Hi", " there"]
ENDLESS_LENGTH = 65536


@dataclass(frozen=True)
class Models:
    reply: Path  # GLM-4: REPLY, then <|user|>
    endless: Path  # GLM-4: " la" forever, with room for ENDLESS_LENGTH tokens
    tool: Path  # ChatGLM3: TOOL_CALL, then <|observation|>
    evil: Path  # ChatGLM3: EVIL_CALL, then <|observation|>
    chatglm2: Path  # ChatGLM2: CHATGLM2_REPLY, then </s>


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    folder = tmp_path_factory.mktemp("chatglm-models")
    return Models(
        reply=write_glm4(folder / "tiny-glm4.bin", REPLY_TOKENS),
        endless=write_glm4(
            folder / "endless-glm4.bin", [b" la"], end=None, max_length=ENDLESS_LENGTH
        ),
        tool=write_chatglm3(folder / "tiny-chatglm3.bin", TOOL_CALL),
        evil=write_chatglm3(folder / "evil-chatglm3.bin", EVIL_CALL),
        chatglm2=write_chatglm2(folder / "tiny-chatglm2.bin", CHATGLM2_REPLY),
    )
