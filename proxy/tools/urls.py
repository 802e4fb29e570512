"""Hosts a model names for the gateway to reach (a page ``web_fetch`` reads), resolved once
and reached at the address checked (a name that resolves otherwise a moment later changes
nothing); which addresses are public is :mod:`proxy.core.addresses`' rule."""

from __future__ import annotations

import socket
from typing import Callable, Optional

from proxy.core.addresses import public

Resolve = Callable[[str], list]  # a host's every address; OSError when it has none


def resolved(host: str) -> list:
    """Every address ``host`` resolves to (an IP literal, itself)."""
    return [info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None)]


def public_address(host: str, resolve: Resolve = resolved) -> Optional[str]:
    """An address of ``host`` to connect to, if it has one and every one of them is
    public; else None."""
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError):
        return None
    return addresses[0] if public(addresses) else None
