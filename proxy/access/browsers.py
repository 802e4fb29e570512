"""What a web page may make a browser send the proxy. Pure.

A page on any site can make its visitor's browser send requests to the proxy: a cross-site
``text/plain`` POST needs no CORS preflight, and a name the attacker owns can be made to
resolve to 127.0.0.1 a moment after the page loads (DNS rebinding), so that even the page's
own-origin requests reach a proxy on loopback. Two checks close both doors, as Ollama's do:

- a proxy bound to a loopback address serves only the ``Host`` names that mean this machine
  (``localhost``, loopback addresses) and those the operator adds (``--allowed-hosts``): a
  rebound name is not among them;
- a request that carries an ``Origin`` (browsers send one with every cross-site request and
  every POST) must come from the proxy's own origin, a page on this machine (a loopback
  origin, any port) or an origin the operator allows (``--cors-origins``).
"""

from __future__ import annotations

import ipaddress
from typing import Collection
from urllib.parse import urlsplit

LOCAL_NAMES = ("localhost", "localhost.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without port or brackets) is this machine's
    loopback."""
    host = host.lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without its port or an IPv6 address's brackets."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_served(host_header: str, bound: str, allowed: Collection[str]) -> bool:
    """Whether a proxy listening on ``bound`` serves a request for ``host_header``."""
    if not is_loopback(bound):
        return True
    name = host_name(host_header)
    return is_loopback(name) or name.lower() in {host.lower() for host in allowed}


def origin_allowed(origin: str, host_header: str, allowed: Collection[str]) -> bool:
    """Whether a request from a page of ``origin`` may reach the proxy it names in
    ``host_header``: a page of the proxy's own (whichever scheme a TLS front speaks), of this
    machine, or of an origin the operator allows."""
    if "*" in allowed or origin in allowed:
        return True
    try:
        url = urlsplit(origin)
        hostname = url.hostname
    except ValueError:
        return False
    if url.scheme not in ("http", "https") or hostname is None:
        return False
    return url.netloc.lower() == host_header.strip().lower() or is_loopback(hostname)
