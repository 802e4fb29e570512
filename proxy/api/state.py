"""What the views share: the app's state, and the router they send every request to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from flask import current_app

from proxy.access.exchanges import Capture
from proxy.access.gate import Access
from proxy.access.images import ImageFetcher
from proxy.access.stored import StoredResponses
from proxy.api.reload import Reloader
from proxy.config.settings import Settings
from proxy.core.draining import Drain
from proxy.core.router import ModelPulls, Router
from proxy.dialects.dialect import Limits
from proxy.ops.history import History
from proxy.ops.metrics import Metrics


@dataclass(frozen=True)
class ProxyState:
    settings: Settings
    router: Router
    access: Access
    responses: StoredResponses  # the Responses API's store
    metrics: Optional[Metrics]  # None: --metrics off
    history: Optional[History]  # the metrics' last minutes, for the fleet page; None: off
    images: ImageFetcher  # fetches images given by URL, as the operator allows
    drain: Drain = field(default_factory=Drain)
    pulls: Optional[ModelPulls] = None  # models clients pull and delete; None: a given backend
    capture: Optional[Capture] = None  # the exchanges kept for the inspector
    reloader: Optional[Reloader] = None  # the keys and models files read again

    @property
    def limits(self) -> Limits:
        limits = self.settings.limits
        return Limits(
            limits.max_choices,
            limits.max_batch,
            limits.max_image_size,
            limits.max_image_pixels,
            image_urls=self.settings.access.image_urls != "off",
            max_tools=limits.max_tools,
            max_schema_size=limits.max_schema_size,
        )


def get_state() -> ProxyState:
    return current_app.extensions["proxy"]
