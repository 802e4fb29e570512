"""What the fleet says of itself: every model and alias it lists, whether it can serve, the
longest answer each gives a request that sets no length, and each model's replicas as the
status pages show them. Reads only: checking a replica (which puts a serving one back in
rotation) is the fleet's, which hands the reports here."""

from __future__ import annotations

from typing import Iterable, Optional

from proxy.core.answers import Health, ModelInfo


def listed_id(model) -> str:
    """The id a served model is listed under: its configured id, or what its first replica
    calls it."""
    return model.spec.id or model.replicas[0].info().id


def longest_answer(spec, models: dict) -> Optional[int]:
    """The most tokens of answer a request for the model of ``spec`` that sets none is given
    (``None``: not known yet), the most of its own and of those of the models that may answer
    in its place (its overflow, warm equals, fallbacks and context fallbacks) where theirs is
    known: each model's default ``max_tokens``, else the context its servers give a
    conversation as they told it (the backends tell each generation no more, see
    :mod:`proxy.backends.servercpp.budget`; a model of another API ends its answers itself)."""
    own = _longest(models.get(spec.id))
    if own is None:
        return None
    others = (spec.overflow, *spec.warm, *spec.fallbacks, *spec.context_fallbacks)
    known = (_longest(models.get(other)) for other in others if other)
    return max([own, *(bound for bound in known if bound is not None)])


def _longest(model) -> Optional[int]:
    """A served model's own bound on an answer that sets none (see :func:`longest_answer`)."""
    if model is None:
        return None
    defaults = model.spec.defaults
    if defaults is not None and defaults.max_tokens is not None:
        return defaults.max_tokens
    contexts = (replica.backend.models()[0].card.context_length for replica in model.replicas)
    return max((context for context in contexts if context), default=None)


def listing(models: Iterable, default: Optional[str]) -> list:
    """Every model and alias, the ``default`` first, each saying whether it can serve now."""
    listed = []
    for model in sorted(models, key=lambda m: m.spec.id != default):
        ready = any(model.rotation.healthy(r.name) for r in model.replicas)
        model_id = listed_id(model)
        first = model.replicas[0].info()
        meta = {"state": "ready" if ready else "unavailable", "replicas": len(model.replicas)}
        listed.append(
            ModelInfo(
                model_id,
                owned_by=first.owned_by,
                card=first.card,
                meta={**meta, "aliases": list(model.spec.aliases)},
            )
        )
        listed += [
            ModelInfo(
                alias, owned_by=first.owned_by, card=first.card, meta={**meta, "alias_of": model_id}
            )
            for alias in model.spec.aliases
        ]
    return listed


def health(reports: dict, name: str) -> Health:
    """Ready when every model has a replica that can serve (``reports``: each model's
    ``(replica, its health)``); a fleet of one answers exactly as its one backend does."""
    if len(reports) == 1 and len(next(iter(reports.values()))) == 1:
        return next(iter(reports.values()))[0][1]
    models = []
    for model_id, replicas in reports.items():
        models.append(
            {
                "id": model_id or replicas[0][1].detail.get("model"),
                "ready": any(report.ok for _, report in replicas),
                "replicas": [
                    {"url": replica.name, "ok": report.ok, **report.detail}
                    for replica, report in replicas
                ],
            }
        )
    ok = all(model["ready"] for model in models)
    detail = {"models": models}
    if not ok:
        detail["error"] = "no replica can serve " + ", ".join(
            str(m["id"]) for m in models if not m["ready"]
        )
    return Health(ok, name, detail)


def status(models: Iterable, reports: Optional[dict] = None) -> list:
    """Each model, what it does (its ``capabilities``, as ``/v1/models`` lists them), its
    replicas in rotation or not, and the servers the proxy runs; with
    ``reports`` (as for :func:`health`), each replica's health too (``ok``, and ``error``
    when not)."""
    listed = []
    for model in models:
        checked = dict(reports.get(model.spec.id, ())) if reports is not None else {}
        replicas = []
        for replica in model.replicas:
            report = checked.get(replica)
            load, slots = replica.backend.load()
            described = replica.backend.describe()
            entry = {
                **described,
                "url": replica.name,
                "in_rotation": model.rotation.healthy(replica.name),
                "busy": described.get("in_flight", load),  # running: not the queue
                "queued": described.get("queued", 0),
                "slots": slots,
            }
            if replica.server is not None:
                entry["managed"] = replica.server.snapshot()
            if report is not None:
                entry["ok"] = report.ok
                if not report.ok:
                    entry["error"] = report.detail.get("error", "not ready")
            replicas.append(entry)
        listed.append(
            {
                "id": listed_id(model),
                "label": model.spec.id or "default",
                "aliases": list(model.spec.aliases),
                "capabilities": list(model.replicas[0].info().card.capabilities),
                "replicas": replicas,
            }
        )
    return listed
