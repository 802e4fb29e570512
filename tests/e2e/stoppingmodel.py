"""A tiny GGUF that answers a fixed short text and stops, whatever the prompt.

Agent clients (Claude Code, Codex CLI) need answers that end. Here every layer's weights are
zero, so each token's embedding passes straight to the output layer and the next token depends
on the last token alone. The embeddings point each answer token, and every other token, in a
direction of their own, and the output matrix maps "any other token" to the answer's first
token, each answer token to the next, and the last to end of text: greedy and sampled decoding
alike write the answer and stop. The vocabulary is the tiny model's, with the answer's pieces
(``<think>``, ``</think>``, words) added as whole tokens, as reasoning models have them.
"""

from __future__ import annotations

import pathlib

import gguf
import numpy as np

from .tinymodel import EOS_ID, TINY, _vocabulary, write_llama_gguf

SPACE = "\u2581"
ANSWER = ("Hello", f"{SPACE}from", f"{SPACE}the", f"{SPACE}tiny", f"{SPACE}model.")
THINKING = ("<think>", f"{SPACE}Let", f"{SPACE}me", f"{SPACE}think.", "</think>", *ANSWER)
ANSWER_TEXT = "Hello from the tiny model."
THOUGHTS_TEXT = "Let me think."
CONTEXT = 262144  # room for an agent's prompt: tens of thousands of tokens
SCALE = 10.0  # logits of 80 against 0: no sampler strays
SHAPE = TINY._replace(layers=1)  # its layers do nothing: one is the least a server reads with
N_EMBD = SHAPE.width

# A chatml template that, like reasoning models' own, drops earlier thoughts from the history.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "{%- set content = message['content'] -%}\n"
    "{%- if message['role'] == 'assistant' and '</think>' in content -%}\n"
    "{%- set content = content.split('</think>')[-1] -%}\n"
    "{%- endif -%}\n"
    "<|im_start|>{{ message['role'] }}\n"
    "{{ content }}<|im_end|>\n"
    "{% endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "<|im_start|>assistant\n"
    "{% endif %}"
)


def write_stopping_gguf(path: pathlib.Path, answer: tuple = ANSWER) -> pathlib.Path:
    """Write a model that answers the pieces of ``answer`` and stops; return the path."""
    tokens, scores, types = _vocabulary()
    known = {token: index for index, token in enumerate(tokens)}
    chain = []
    for piece in answer:
        if piece not in known:
            known[piece] = len(tokens)
            tokens.append(piece)
            scores.append(float(len(piece)))
            types.append(gguf.TokenType.NORMAL)
        chain.append(known[piece])
    if len(set(chain)) < len(chain) or len(chain) >= N_EMBD:
        raise ValueError("the answer's pieces must be distinct, and fewer than the width")
    return write_llama_gguf(
        path,
        "tiny-stopping",
        (tokens, scores, types),
        _weights(len(tokens), chain),
        CONTEXT,
        CHAT_TEMPLATE,
        SHAPE,
    )


def _weights(vocab: int, chain: list) -> dict:
    """Direction 0 for every token outside the answer, direction i + 1 for its i-th token;
    the output row of each token reads the direction of the token before it."""
    embeddings = np.zeros((vocab, N_EMBD), dtype=np.float32)
    embeddings[:, 0] = 1.0
    output = np.zeros((vocab, N_EMBD), dtype=np.float32)
    for position, token in enumerate(chain):
        embeddings[token] = 0.0
        embeddings[token, position + 1] = 1.0
        output[token, position] = SCALE  # follows the token before (direction 0: any other)
    output[EOS_ID, len(chain)] = SCALE
    ones = np.ones(N_EMBD, dtype=np.float32)
    kv_width = SHAPE.heads_kv * N_EMBD // SHAPE.heads
    tensors = {"token_embd.weight": embeddings, "output_norm.weight": ones, "output.weight": output}
    for layer in range(SHAPE.layers):
        prefix = f"blk.{layer}."
        tensors.update(
            {
                prefix + "attn_norm.weight": ones,
                prefix + "attn_q.weight": np.zeros((N_EMBD, N_EMBD), np.float32),
                prefix + "attn_k.weight": np.zeros((kv_width, N_EMBD), np.float32),
                prefix + "attn_v.weight": np.zeros((kv_width, N_EMBD), np.float32),
                prefix + "attn_output.weight": np.zeros((N_EMBD, N_EMBD), np.float32),
                prefix + "ffn_norm.weight": ones,
                prefix + "ffn_gate.weight": np.zeros((SHAPE.ff, N_EMBD), np.float32),
                prefix + "ffn_up.weight": np.zeros((SHAPE.ff, N_EMBD), np.float32),
                prefix + "ffn_down.weight": np.zeros((N_EMBD, SHAPE.ff), np.float32),
            }
        )
    return tensors
