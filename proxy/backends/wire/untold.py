"""The usage of an answer whose engine told none (a stream without its usage chunk, though
asked for one, as llama-cpp-python's server and others send them). Pure.

The prompt's tokens are the engine's own count where it gives one: the same request, whole
and one token long, answered with its usage (the prompt the engine has just read again, from
its cache where it keeps one). A prompt the engine would not count is estimated from all it
read (:func:`proxy.core.textsize.prompt_size`): its texts at four bytes a token and its JSON
at three and a half, and what a chat template adds to them, as llama.cpp's model templates
add it (the medians over those of them that render each part, counted with SmolLM2's
tokenizer, a special token as one); and :data:`IMAGE_TOKENS` for each image.

The answer's tokens are estimated: a stream's as a token for each piece of text, of thoughts
and of a call's arguments (:class:`PieceCount`: such engines send a token an event), a whole
answer's from its bytes, its calls' names and arguments too. Never fewer than its bytes allow
(:func:`proxy.core.textsize.fewest`). Either way the usage says it is ``estimated``.
"""

from __future__ import annotations

from typing import Optional

from proxy.core import textsize
from proxy.core.answers import ESTIMATED, Chunk, Completion, Usage
from proxy.core.types import GenerationRequest

# tokens a template adds: the median (and quartiles) over llama.cpp's model templates
# that render the part (61 a chat, 54 tools, 50 calls and their results)
TEMPLATE_REQUEST = 7  # around a chat with its system message (3, 27; 20 given none)
TEMPLATE_MESSAGE = 6  # around a message (5.5: 4, 6.5)
TEMPLATE_RESULT = 16  # around a tool's result, a message of its own (11, 18)
TEMPLATE_CALL = 22  # around an earlier call, beside its name and arguments (22.5: 12, 28)
TEMPLATE_TOOLS = 110  # to introduce the tools, beside their definitions (4, 190)
# an image's tokens: LLaVA-1.5's projector (CLIP ViT-L/14 at 336 pixels) makes one of each
# of its 24 x 24 patches; Gemma 3's makes 256, Qwen2-VL's one per 28 x 28 pixels
IMAGE_TOKENS = 576
SOUND_TOKENS = 750  # what an audio projector makes of a clip of up to 30 s (Whisper's window)


def probe(body: dict) -> dict:
    """The whole, one-token request whose usage counts ``body``'s prompt."""
    asked = {name: value for name, value in body.items() if name != "max_completion_tokens"}
    asked.pop("stream_options", None)
    return {**asked, "stream": False, "max_tokens": 1}


def usage(request: GenerationRequest, prompt: Optional[int], made: int) -> Usage:
    """The usage of ``request``'s answer of ``made`` tokens (:func:`answered`, or a stream's
    :attr:`PieceCount.tokens`): ``prompt``, the engine's count (``None``: it gave none)."""
    if prompt is None:
        prompt = prompt_estimate(request)
    return Usage(prompt, made, how=ESTIMATED)


def prompt_estimate(request: GenerationRequest) -> int:
    """A prompt's tokens, estimated from all that its engine reads."""
    size = textsize.prompt_size(request)
    tokens = textsize.about(size.text, size.json) + IMAGE_TOKENS * size.images
    tokens += SOUND_TOKENS * size.sounds
    if not request.is_chat:
        return tokens  # a raw prompt: no template
    marks = TEMPLATE_MESSAGE * (size.messages - size.results) + TEMPLATE_RESULT * size.results
    marks += TEMPLATE_CALL * size.calls + TEMPLATE_TOOLS * size.tools
    return tokens + TEMPLATE_REQUEST + marks


def answered(completion: Completion) -> int:
    """A whole answer's tokens, estimated from its text, thoughts and calls."""
    calls = completion.tool_calls
    text = textsize.total([completion.text, completion.reasoning, *(call.name for call in calls)])
    return textsize.about(text, textsize.total(call.arguments for call in calls))


class PieceCount:
    """A stream's answer as it comes, for its usage should its engine tell none: a token for
    each piece of text, of thoughts and of a call's arguments, and for a piece that opens a
    call by its name alone. A call's name beside its arguments is the engine's label, not a
    token: llama-cpp-python's server repeats it on every piece of a call it was told to make,
    whose name the model never wrote. The pieces' bytes (each call's name once) set the
    fewest tokens they can be."""

    __slots__ = ("pieces", "bytes", "calls")

    def __init__(self) -> None:
        self.pieces = 0
        self.bytes = 0
        self.calls: set = set()  # the indexes of the calls named so far

    def add(self, chunk: Chunk) -> None:
        """Count ``chunk``'s pieces of answer."""
        for text in (chunk.text, chunk.reasoning):
            if text:
                self.pieces += 1
                self.bytes += textsize.size(text)
        for piece in chunk.tool_calls:
            opens = piece.name is not None and piece.index not in self.calls
            if opens:
                self.calls.add(piece.index)
                self.bytes += textsize.size(piece.name)
            if piece.arguments:
                self.pieces += 1
                self.bytes += textsize.size(piece.arguments)
            elif opens:
                self.pieces += 1

    @property
    def tokens(self) -> int:
        """The answer's tokens so far, estimated."""
        return max(self.pieces, textsize.fewest(self.bytes))
