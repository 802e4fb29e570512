"""Backends: one per upstream server or loaded model, behind one interface."""

from __future__ import annotations

from proxy.backends.base import Backend

__all__ = ["Backend"]
