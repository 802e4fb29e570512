"""The openai backend: any server that speaks OpenAI's chat completions."""

from proxy.backends.openai.backend import OpenAIBackend

__all__ = ["OpenAIBackend"]
