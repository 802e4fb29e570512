"""An image reaches the core from every dialect, in its place in the message's text; a bad one
is a 400 naming its field."""

from __future__ import annotations

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.core.types import Image
from proxy.dialects import anthropic, responses
from proxy.dialects.dialect import Limits
from proxy.dialects.ollama import chat as ollama_chat
from proxy.dialects.ollama import generate as ollama_generate
from proxy.dialects.openai import chat
from tests.images import base64_of, data_uri, picture

PNG = base64_of(picture())
LIMITS = Limits(max_image_size=1 << 20)
FETCHING = Limits(max_image_size=1 << 20, image_urls=True)


def shown(field: str, at: int = 0, url: str = "") -> Image:
    return Image(field, at, "" if url else "image/png", "" if url else PNG, url)


def anthropic_image(**source) -> dict:
    return {
        "type": "image",
        "source": source or {"type": "base64", "media_type": "image/png", "data": PNG},
    }


CASES = [
    pytest.param(
        chat,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is"},
                        {
                            "type": "image_url",
                            "image_url": {"url": data_uri(picture()), "detail": "low"},
                        },
                        {"type": "text", "text": "this?"},
                    ],
                }
            ]
        },
        0,
        "what is\nthis?",
        shown("messages[0].content[1].image_url.url", 7),
        id="openai",
    ),
    pytest.param(
        chat,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": data_uri(picture())}],
                }
            ]
        },
        0,
        "",
        shown("messages[0].content[0].image_url"),
        id="openai-url-as-a-string",
    ),
    pytest.param(
        anthropic,
        {
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [anthropic_image(), {"type": "text", "text": "what is this?"}],
                }
            ],
        },
        0,
        "what is this?",
        shown("messages[0].content[0].source.data"),
        id="anthropic",
    ),
    pytest.param(
        anthropic,
        {
            "max_tokens": 5,
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "Read",
                            "input": {"file_path": "a.png"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": [anthropic_image()]}
                    ],
                },
            ],
        },
        1,
        "",
        shown("messages[1].content[0].content[0].source.data"),
        id="anthropic-tool-result",
    ),
    pytest.param(
        anthropic,
        {
            "max_tokens": 5,
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "Read",
                            "input": {"file_path": "a.png"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": [{"type": "text", "text": "half read"}, anthropic_image()],
                        }
                    ],
                },
            ],
        },
        1,
        "Error: half read",
        shown("messages[1].content[0].content[1].source.data", 16),
        id="anthropic-failed-tool-result",
    ),
    pytest.param(
        responses,
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this?"},
                        {"type": "input_image", "image_url": data_uri(picture()), "detail": "auto"},
                    ],
                }
            ]
        },
        0,
        "what is this?",
        shown("input[0].content[1].image_url", 13),
        id="responses",
    ),
    pytest.param(
        responses,
        {
            "input": [
                {"type": "function_call", "call_id": "c1", "name": "view_image", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_image", "image_url": data_uri(picture())}],
                },
            ]
        },
        1,
        "",
        shown("input[1].output[0].image_url"),
        id="responses-call-output",
    ),
    pytest.param(
        ollama_chat,
        {"model": "m", "messages": [{"role": "user", "content": "what is this?", "images": [PNG]}]},
        0,
        "what is this?",
        shown("messages[0].images[0]"),
        id="ollama-chat",
    ),
    pytest.param(
        ollama_generate,
        {"model": "m", "prompt": "what is this?", "images": [PNG]},
        0,
        "what is this?",
        shown("images[0]"),
        id="ollama-generate",
    ),
]


@pytest.mark.parametrize("dialect, body, index, text, image", CASES)
def test_an_image_reaches_the_core_in_its_place(dialect, body, index, text, image):
    message = dialect.parse(body, LIMITS).request.messages[index]
    assert (message.content, message.images) == (text, (image,))


@pytest.mark.parametrize(
    "dialect, body, field",
    [
        pytest.param(
            chat,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.com/cat.png"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            id="openai",
        ),
        pytest.param(
            anthropic,
            {
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [anthropic_image(type="url", url="https://example.com/cat.png")],
                    }
                ],
            },
            "messages[0].content[0].source.url",
            id="anthropic",
        ),
        pytest.param(
            responses,
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "https://example.com/cat.png"}
                        ],
                    }
                ]
            },
            "input[0].content[0].image_url",
            id="responses",
        ),
    ],
)
def test_a_url_is_refused_unless_fetching_is_on_and_else_kept_to_fetch(dialect, body, field):
    with pytest.raises(InvalidRequestError, match="fetches no images") as caught:
        dialect.parse(body, LIMITS)
    assert caught.value.param == field
    (image,) = dialect.parse(body, FETCHING).request.images
    assert image == shown(field, url="https://example.com/cat.png")


@pytest.mark.parametrize(
    "dialect, body, field, says",
    [
        pytest.param(
            chat,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:text/plain;base64,aGk="},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "not of an image",
            id="openai-not-an-image",
        ),
        pytest.param(
            chat,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "data URI or an http(s) URL",
            id="openai-file-url",
        ),
        pytest.param(
            chat,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://[::1"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "data URI or an http(s) URL",
            id="openai-malformed-url",
        ),
        pytest.param(
            chat,
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].image_url.url",
            "is required",
            id="openai-no-url",
        ),
        pytest.param(
            anthropic,
            {
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            anthropic_image(type="base64", media_type="image/png", data=PNG[:-5])
                        ],
                    }
                ],
            },
            "messages[0].content[0].source.data",
            "cut short",
            id="anthropic-truncated",
        ),
        pytest.param(
            anthropic,
            {
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            anthropic_image(type="base64", media_type="application/pdf", data=PNG)
                        ],
                    }
                ],
            },
            "messages[0].content[0].source.media_type",
            "image's media type",
            id="anthropic-not-an-image-type",
        ),
        pytest.param(
            anthropic,
            {
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [anthropic_image(type="file", file_id="f1")]}
                ],
            },
            "messages[0].content[0].source.type",
            "base64 or url",
            id="anthropic-file",
        ),
        pytest.param(
            anthropic,
            {"max_tokens": 5, "messages": [{"role": "assistant", "content": [anthropic_image()]}]},
            "messages[0].content[0].type",
            "assistant message",
            id="anthropic-assistant-image",
        ),
        pytest.param(
            responses,
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}
                ]
            },
            "input[0].content[0].file_id",
            "does not keep",
            id="responses-file-id",
        ),
        pytest.param(
            ollama_chat,
            {"model": "m", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]},
            "messages[0].images[0]",
            "is not an image",
            id="ollama-not-an-image",
        ),
        pytest.param(
            ollama_chat,
            {"model": "m", "messages": [{"role": "user", "content": "x", "images": "aGk="}]},
            "messages[0].images",
            "must be a list",
            id="ollama-not-a-list",
        ),
        pytest.param(
            ollama_generate,
            {"model": "m", "prompt": "x", "raw": True, "images": [PNG]},
            "images",
            "raw",
            id="ollama-raw",
        ),
    ],
)
def test_bad_images_are_named(dialect, body, field, says):
    with pytest.raises(InvalidRequestError) as caught:
        dialect.parse(body, LIMITS)
    assert caught.value.param == field
    assert says in caught.value.message


def test_an_image_over_the_limit_is_named():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_uri(picture(size=(64, 64)))}}
                ],
            }
        ]
    }
    with pytest.raises(InvalidRequestError, match="larger than the 64 bytes") as caught:
        chat.parse(body, Limits(max_image_size=64))
    assert caught.value.param == "messages[0].content[0].image_url.url"


def test_a_stored_response_keeps_a_placeholder_for_each_image():
    body = {
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": data_uri(picture())},
                ],
            }
        ]
    }
    ask = responses.parse(body, LIMITS)
    kept = responses.kept(ask.notes.input_items)
    assert kept[0]["content"] == [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "detail": "auto", "image_url": None, "file_id": None},
    ]
    assert PNG not in repr(kept)
    # a later turn that continues it reads the placeholder as words, not as an image
    later = responses.continuing(responses.parse({"input": "and now?"}, LIMITS), kept)
    assert later.request.messages[0].content == "look\n(an image, not kept)"
    assert later.request.images == ()
