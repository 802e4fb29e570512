"""URLs a client or a model names for the gateway to reach, checked before anything is
sent: an MCP server a client gives by its ``server_url``, a page ``web_fetch`` reads. A
host is reached at the address checked (a name that resolves otherwise a moment later
changes nothing), and which addresses are public is :mod:`proxy.core.addresses`' rule. An
error names the URL's host as it was given, never an address it resolved to.
"""

from __future__ import annotations

import socket
from typing import Callable, Optional

from proxy.core.addresses import http_parts, literal, public
from proxy.core.errors import InvalidRequestError

Resolve = Callable[[str], list]  # a host's every address; OSError when it has none


def resolved(host: str) -> list:
    """Every address ``host`` resolves to (an IP literal, itself)."""
    return [info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None)]


def check_url(
    url: str, allowed_hosts: frozenset, field: str, *, resolve: Resolve = resolved
) -> str:
    """The address to connect to for ``url``, a client's (``field`` names where it gave
    it): an http(s) URL whose host the operator allows (``allowed_hosts``, names or IP
    literals; none when empty), and whose every address is public, unless the operator
    lists the host as an IP literal (a server on the LAN is allowed by its address alone).
    Anything else is an :class:`InvalidRequestError` naming ``field``."""
    parts = http_parts(url)
    if parts is None:
        raise _refused(field, "must be an http(s) URL")
    host = parts.hostname.rstrip(".")
    if not _allowed(host, allowed_hosts):
        raise _refused(
            field, f"names the host {host!r}, which this gateway is not allowed to reach"
        )
    address = literal(host)
    if address is not None and address in {literal(entry) for entry in allowed_hosts}:
        return address
    found = public_address(host, resolve)
    if found is None:
        raise _refused(
            field,
            f"names the host {host!r}, which is not on the internet (a server on a private "
            f"network is reached only by the address the operator allows)",
        )
    return found


def public_address(host: str, resolve: Resolve = resolved) -> Optional[str]:
    """An address of ``host`` to connect to, if it has one and every one of them is
    public; else None."""
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError):
        return None
    return addresses[0] if public(addresses) else None


def _allowed(host: str, allowed_hosts: frozenset) -> bool:
    """Whether ``host`` is among ``allowed_hosts``: a name whatever its case, an address
    whatever its spelling."""
    address = literal(host)
    for entry in allowed_hosts:
        entry = entry.lower().rstrip(".")
        if entry == host or (address is not None and literal(entry) == address):
            return True
    return False


def _refused(field: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{field}' {why}", param=field)
