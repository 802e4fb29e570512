"""How many generations an upstream can run at once.

Three sources, most trusted first: the operator (``--slots``), the server itself (current
llama.cpp reports ``total_slots``), and, for servers that say nothing (PowerInfer, llama.cpp
of 2023), what their answers reveal: every slot id seen exists, and a "no free slot" refusal
while ``n`` of our generations run means the server holds no more than ``n``.
Pure bookkeeping: the caller serialises access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class SlotCount:
    configured: Optional[int] = None  # --slots
    reported: Optional[int] = None  # the server's own count
    seen: int = 0  # highest slot id seen in an answer, plus one
    ceiling: Optional[int] = None  # lowest count a refusal has shown; None until one

    @property
    def limit(self) -> Optional[int]:
        """Generations to run at once; ``None`` while nothing is known (send, and learn)."""
        if self.configured:
            return self.configured
        if self.reported:
            return self.reported
        if self.ceiling is None:
            return None
        return max(self.seen, self.ceiling, 1)

    @property
    def source(self) -> str:
        if self.configured:
            return "configured"
        if self.reported:
            return "reported"
        return "learned" if self.ceiling is not None or self.seen else "unknown"

    def saw_slot(self, slot_id: object) -> None:
        """An answer came from slot ``slot_id``: the server has at least ``slot_id + 1``."""
        if isinstance(slot_id, int) and not isinstance(slot_id, bool) and 0 <= slot_id < 4096:
            self.seen = max(self.seen, slot_id + 1)

    def refused(self, others_running: int) -> None:
        """The server had no free slot while ``others_running`` of ours were running."""
        shown = max(others_running, 1)
        self.ceiling = shown if self.ceiling is None else min(self.ceiling, shown)
