"""Which URLs may be fetched for a client or a model: http(s) ones, at addresses that are
public: on the internet, never the proxy's own machine, its LAN or a cloud's metadata
service, in whatever IPv6 form they come (an IPv6 address that stands for an IPv4 one is
judged as that one). Finding a host's addresses and connecting to the very one checked is
:mod:`proxy.core.outbound`'s. Pure."""

from __future__ import annotations

import ipaddress
from typing import Optional, Sequence
from urllib.parse import SplitResult, urlsplit

# clouds' metadata and host services, refused whatever their range says (Azure's is public)
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # instance metadata: AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack…
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "169.254.170.2",  # AWS ECS: a task's credentials
        "169.254.170.23",
        "fd00:ec2::23",  # AWS EKS: a pod's identity and its credentials
        "168.63.129.16",  # Azure WireServer: a VM's agent and its extensions' settings
        "100.100.100.200",  # Alibaba Cloud instance metadata
        "192.0.0.192",  # Oracle Cloud's former instance metadata
    )
)
REFUSED = (  # IPv6 networks refused whole
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64: into the network's own IPv4
    ipaddress.ip_network("2001::/32"),  # Teredo: through relays, to any IPv4 address and port
)
TRANSLATED = (  # IPv6 networks whose last 32 bits are the IPv4 address reached
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64's well-known prefix
    ipaddress.ip_network("::/96"),  # IPv4-compatible (and :: and ::1 among them)
)


def public(addresses: Sequence[str]) -> bool:
    """Whether a host at ``addresses`` is on the internet: each of them is."""
    return bool(addresses) and all(_public(ipaddress.ip_address(a)) for a in addresses)


def http_parts(url: str) -> Optional[SplitResult]:
    """``url``'s parts, if it is an http(s) URL with a host."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port == 0:
            return None  # (a port that is no number raises as it is read)
    except ValueError:
        return None
    return parts


def has_credentials(parts: SplitResult) -> bool:
    """Whether a URL's ``parts`` hold a user name or a password."""
    return parts.username is not None or parts.password is not None


def _public(address) -> bool:
    """Whether ``address`` is globally reachable and no cloud's metadata service, and so is
    the IPv4 address it stands for, if it stands for one."""
    if address in METADATA:
        return False
    if address.version == 6:
        if any(address in network for network in REFUSED):
            return False
        within = _ipv4_within(address)
        if within is not None:
            return _public(within)
    return address.is_global


def _ipv4_within(address: ipaddress.IPv6Address) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 one reaches: mapped (``::ffff:a.b.c.d``), 6to4
    (``2002:aabb:ccdd::``), NAT64 or IPv4-compatible (the last 32 bits); else None."""
    for within in (address.ipv4_mapped, address.sixtofour):
        if within is not None:
            return within
    if any(address in network for network in TRANSLATED):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
