"""A tiny, deterministic llama-architecture GGUF for end-to-end tests.

Real models are hundreds of megabytes and cannot be downloaded on the test machines,
so the e2e suite builds its own: random weights (fixed seed) behind a real SPM
vocabulary and chat template.  The text it generates is gibberish, but llama-server
loads, tokenizes, samples and streams it exactly as it would a real model.
"""

import pathlib
from typing import NamedTuple, Optional

import gguf
import numpy as np


class Shape(NamedTuple):
    """A llama model's dimensions: width, layers, attention heads (all, and for keys and
    values), feed-forward width."""

    width: int
    layers: int
    heads: int
    heads_kv: int
    ff: int


TINY = Shape(width=64, layers=2, heads=4, heads_kv=4, ff=128)
# Big enough that evaluating a prompt of a few thousand tokens takes a second or more on a
# CPU, still written in a few seconds: for the benches that time a prompt's evaluation.
SMALL = Shape(width=512, layers=8, heads=8, heads_kv=4, ff=1408)
N_CTX_TRAIN = 2048
RMS_EPS = 1e-5  # the norms' epsilon
SEED = 1234

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2
FIRST_BYTE_ID = 3  # <0x00> .. <0xFF> occupy ids 3..258
FIRST_WORD_ID = FIRST_BYTE_ID + 256

# Deliberately not any known model's template, so a test can tell it was read from this file.
# No trailing newline: llama-server strips trailing whitespace from the template it reports.
CHAT_TEMPLATE = (
    "{#- tiny-llama e2e template -#}\n"
    "{%- for message in messages -%}\n"
    "<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n"
    "{% endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

_WORDS = """
the a an and or but not of to in on at by for with from as is are was were be been
it this that these those he she they we you i me my your our his her their its
have has had do does did will would can could should may might must shall
one two three four five six seven eight nine ten first last next new old good bad
big small long short high low hot cold red blue green black white yes no ok
hello world test model token text word time day year way man woman child people
cat dog bird fish tree water fire earth air sun moon star sky sea city house
say said go went come came make made take took see saw know knew think thought
get got give gave find found tell told ask asked work worked call called try
what who when where why how which all some any each many much more most other
very also just only well even still again never always here there now then
""".split()

_SPACE = "\u2581"  # SentencePiece's word-boundary marker


def _word_pieces() -> list[str]:
    """Word pieces in vocab order: marker, letters, digits, punctuation, then words.

    Every prefix of a word is added too, because the SPM tokenizer only reaches a word
    by merging adjacent pieces that are themselves in the vocabulary.
    """
    pieces = [_SPACE]
    pieces += list("abcdefghijklmnopqrstuvwxyz")
    pieces += list("0123456789")
    pieces += list(".,!?;:'\"-()")
    for word in _WORDS:
        marked = _SPACE + word
        pieces += [marked[:end] for end in range(2, len(marked) + 1)]
    return list(dict.fromkeys(pieces))


_PIECES = _word_pieces()
_PIECE_IDS = {piece: FIRST_WORD_ID + i for i, piece in enumerate(_PIECES)}
VOCAB_SIZE = FIRST_WORD_ID + len(_PIECES)


def token_id(piece: str) -> int:
    """Id of a word piece, so tests can aim logit_bias at it.

    A plain word means the word with a leading space ("hello" -> "▁hello");
    pass the marker explicitly for anything else.
    """
    if not piece.startswith(_SPACE) and _SPACE + piece in _PIECE_IDS:
        piece = _SPACE + piece
    return _PIECE_IDS[piece]


def _vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types; longer pieces score higher so SPM prefers them."""
    tokens = ["<unk>", "<s>", "</s>"]
    scores = [0.0, 0.0, 0.0]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)
    for rank, piece in enumerate(_PIECES):
        tokens.append(piece)
        scores.append(float(len(piece)) - rank / 10000.0)
        types.append(gguf.TokenType.NORMAL)
    return tokens, scores, types


def _weights(
    rng: np.random.Generator, shape: Shape, vocab_size: int = VOCAB_SIZE
) -> dict[str, np.ndarray]:
    """Random F32 tensors in numpy (rows, cols) order, as GGUF/llama.cpp expect.

    The output projection is scaled up so logits are well separated and greedy
    decoding does not flip on rounding noise; its rows for control and byte tokens are
    scaled down, so generated text is readable UTF-8 and eos comes only when a test
    asks for it (logit_bias).
    """

    def matrix(rows: int, cols: int, std: float) -> np.ndarray:
        return rng.normal(0.0, std, size=(rows, cols)).astype(np.float32)

    width = shape.width
    ones = np.ones(width, dtype=np.float32)
    kv_width = shape.heads_kv * width // shape.heads
    output = matrix(vocab_size, width, 0.5)
    output[:FIRST_WORD_ID] *= 0.1
    output[VOCAB_SIZE:] *= 0.1  # tokens added after the words: special ones
    tensors = {
        "token_embd.weight": matrix(vocab_size, width, 1.0),
        "output_norm.weight": ones,
        "output.weight": output,
    }
    for layer in range(shape.layers):
        prefix = f"blk.{layer}."
        tensors.update(
            {
                prefix + "attn_norm.weight": ones,
                prefix + "attn_q.weight": matrix(width, width, 0.1),
                prefix + "attn_k.weight": matrix(kv_width, width, 0.1),
                prefix + "attn_v.weight": matrix(kv_width, width, 0.1),
                prefix + "attn_output.weight": matrix(width, width, 0.1),
                prefix + "ffn_norm.weight": ones,
                prefix + "ffn_gate.weight": matrix(shape.ff, width, 0.1),
                prefix + "ffn_up.weight": matrix(shape.ff, width, 0.1),
                prefix + "ffn_down.weight": matrix(width, shape.ff, 0.1),
            }
        )
    return tensors


def write_tiny_llama_gguf(
    path: pathlib.Path,
    shape: Shape = TINY,
    context: int = N_CTX_TRAIN,
    *,
    control: tuple = (),
    **written,
) -> pathlib.Path:
    """Write the tiny model (or one of another ``shape`` and trained ``context``) to `path`,
    the same bytes every time, and return the path; ``control`` tokens go after the words
    (a family's special ones), ``written`` to :func:`write_llama_gguf`."""
    tokens, scores, types = _vocabulary()
    tokens, scores = tokens + list(control), scores + [0.0] * len(control)
    types = types + [gguf.TokenType.CONTROL] * len(control)
    return write_llama_gguf(
        path,
        written.pop("name", "tiny-llama"),
        (tokens, scores, types),
        _weights(np.random.default_rng(SEED), shape, len(tokens)),
        context,
        CHAT_TEMPLATE,
        shape,
        **written,
    )


def write_llama_gguf(
    path: pathlib.Path,
    name: str,
    vocabulary: tuple,
    tensors: dict,
    context: int,
    chat_template: Optional[str],
    shape: Shape = TINY,
    *,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    add_bos: bool = True,
    add_eos: bool = False,
    head_width: Optional[int] = None,
    rope_freq_base: Optional[float] = None,
    merges: Optional[list] = None,
    pooling: Optional[gguf.PoolingType] = None,
    fields: Optional[dict] = None,
) -> pathlib.Path:
    """Write a llama-architecture GGUF of ``shape``: its name, ``(tokens, scores, types)``,
    F32 ``tensors``, trained context and chat template (``None``: none); ``head_width`` sets
    the attention heads' width apart from ``shape.width / shape.heads``; ``merges`` make the
    vocabulary byte-level BPE (else it is SentencePiece's); ``pooling`` is the one the
    model declares (a reranker's ``RANK``); ``fields`` are more of its numbers (token ids)."""
    path = pathlib.Path(path)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(context)
    writer.add_embedding_length(shape.width)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ff)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.heads_kv)
    writer.add_rope_dimension_count(head_width or shape.width // shape.heads)
    if head_width:
        writer.add_key_length(head_width)
        writer.add_value_length(head_width)
    if rope_freq_base:
        writer.add_rope_freq_base(rope_freq_base)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    if pooling is not None:
        writer.add_pooling_type(pooling)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens, scores, types = vocabulary
    if merges is None:
        writer.add_tokenizer_model("llama")
        writer.add_unk_token_id(UNK_ID)
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_merges(merges)
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(bos_id)
    writer.add_eos_token_id(eos_id)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(add_eos)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for key, value in (fields or {}).items():
        writer.add_uint32(key, value)

    return finished(writer, tensors, path)


def finished(writer, tensors: dict, path: pathlib.Path) -> pathlib.Path:
    """``path``, once ``writer`` has written its fields and ``tensors`` there."""
    for tensor_name, tensor in tensors.items():
        writer.add_tensor(tensor_name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
