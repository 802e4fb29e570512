"""llama.cpp's own grammar engine, to hold the proxy's grammars to: the tiny model's vocabulary
(loaded alone, no weights) spells any text in byte tokens."""

from __future__ import annotations

import ctypes

import llama_cpp
import pytest

from tests.e2e.tinymodel import EOS_ID, FIRST_BYTE_ID, write_tiny_llama_gguf


class LlamaGrammars:
    """Parse grammars and feed them text the way the server's sampler does."""

    def __init__(self, model_path: str) -> None:
        self._quiet = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(self._quiet, ctypes.c_void_p(0))
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(model_path.encode(), params)
        assert self.model, "the tiny model's vocabulary did not load"
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)

    def _sampler(self, grammar: str):
        return llama_cpp.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")

    def parses(self, grammar: str) -> bool:
        sampler = self._sampler(grammar)
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        return bool(sampler)

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether the grammar lets a model write ``text`` byte by byte, then stop."""
        sampler = self._sampler(grammar)
        assert sampler, "the grammar does not parse"
        try:
            for token in [FIRST_BYTE_ID + byte for byte in text.encode()] + [EOS_ID]:
                candidate = (llama_cpp.llama_token_data * 1)(
                    llama_cpp.llama_token_data(token, 0.0, 0.0)
                )
                candidates = llama_cpp.llama_token_data_array(candidate, 1, -1, False)
                llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
                if candidate[0].logit == float("-inf"):
                    return False
                if token != EOS_ID:
                    llama_cpp.llama_sampler_accept(sampler, token)
            return True
        finally:
            llama_cpp.llama_sampler_free(sampler)


@pytest.fixture(scope="session")
def llama(tmp_path_factory) -> LlamaGrammars:
    model = write_tiny_llama_gguf(tmp_path_factory.mktemp("vocab") / "tiny.gguf")
    engine = LlamaGrammars(str(model))
    yield engine
    llama_cpp.llama_model_free(engine.model)
