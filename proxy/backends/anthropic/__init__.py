"""The anthropic backend: any server that speaks Anthropic's Messages API."""

from proxy.backends.anthropic.backend import AnthropicBackend

__all__ = ["AnthropicBackend"]
