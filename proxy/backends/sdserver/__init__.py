"""The sdserver backend: stable-diffusion.cpp's sd-server, which draws pictures."""

from proxy.backends.sdserver.backend import SdServerBackend

__all__ = ["SdServerBackend"]
