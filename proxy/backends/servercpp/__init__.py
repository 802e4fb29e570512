"""The llama.cpp / PowerInfer server.cpp backend."""

from proxy.backends.servercpp.backend import ServerCppBackend

__all__ = ["ServerCppBackend"]
