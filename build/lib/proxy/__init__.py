"""oai-proxy: an OpenAI-compatible gateway for llama.cpp, PowerInfer and chatglm.cpp."""

__version__ = "0.1.0"
