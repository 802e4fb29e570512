"""The door every API request passes: which key it carries, whether that key may use the
model it names and has rate and budget left, and, once answered, what it used."""

from __future__ import annotations

import atexit
import hmac
import logging
from dataclasses import replace
from types import MappingProxyType
from typing import Callable, Mapping, Optional

from proxy.access import holds, spend
from proxy.access.budgets import Budgets, Standing, cost
from proxy.access.journal import Journal
from proxy.access.keyring import ADMIN, ANONYMOUS, EVERY, KINDS, Keyring, KeySpec
from proxy.access.limits import Decision
from proxy.access.usage import Charge
from proxy.config.price import Price
from proxy.core.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    RequestsLimitError,
    StoreUnavailableError,
    TokensLimitError,
)
from proxy.core.party import ANYONE, HIGHEST, LOWEST, Party

logger = logging.getLogger(__name__)
HOLD_TRIES = 4  # reads of a key's budgets a request makes while others hold it first
MISSING_KEY = "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'."


class Access:
    def __init__(
        self,
        keyring: Keyring,
        limiter,
        journal: Journal,
        admin_key: bytes = b"",
        budgets: Optional[Budgets] = None,
    ) -> None:
        """``journal``: the way answers' charges go to the usage store; ``admin_key``: the
        admin API's key, which the API takes too as a key of every model and right
        (:data:`ADMIN`) once keys are required; ``budgets``: where keys' tokens of the day
        and month are counted (``None``: no key has a budget)."""
        self.keyring = keyring
        self.limiter = limiter
        self.journal = journal
        self.outages = journal.outages
        self.budgets = budgets
        self.admin = (
            KeySpec(ADMIN, admin_key, manage=True, tools=(EVERY,), owner=ADMIN)
            if admin_key
            else None
        )
        self.local_models: Callable[[], frozenset] = frozenset  # the router's, once it is made
        self._parties = self._parties_of(keyring.keys, {})  # key name: whose turn it waits as
        atexit.register(journal.close)  # what an outage kept is written if it can be

    def replace_keys(self, keys: list) -> None:
        """Accept ``keys`` from now on: a key left out is refused at its next request (what
        it has in flight ends as it would), a new one accepted. Keys cannot be added to a
        proxy that started without any, nor all taken from one that has them: that changes
        what every route asks, which takes a restart."""
        if bool(keys) != bool(self.keyring):
            raise ValueError(
                "a reload cannot turn keys on or off (the proxy "
                f"{'has' if self.keyring else 'has no'} keys): restart it"
            )
        self._parties = self._parties_of(keys, self._parties)
        self.keyring = Keyring(keys)

    def _parties_of(self, keys, known: dict) -> dict:
        """Each key's :class:`Party`, the admin key's too; a key ``known`` keeps its count
        of leased slots (the streams it has open still have them)."""
        parties = {}
        for key in (*keys, *([self.admin] if self.admin else [])):
            party = Party(key.name, key.weight, key.priority, key.max_concurrent)
            if key.name in known:
                party = replace(party, leases=known[key.name].leases)
            parties[key.name] = party
        return parties

    @property
    def required(self) -> bool:
        """Whether API requests need a key."""
        return bool(self.keyring)

    def identify(self, token: Optional[bytes]) -> Optional[KeySpec]:
        """The key the client presented (``None``: none); ``None`` when the proxy wants none."""
        if not self.keyring:
            return None
        if token is None:
            raise AuthenticationError(MISSING_KEY)
        key = self.keyring.find(token)
        if key is None and self.is_admin(token):
            key = self.admin
        if key is None:
            raise AuthenticationError("Incorrect API key provided.")
        return self._narrowed(key)

    def owned(self, owner: str) -> Optional[KeySpec]:
        """The key that is ``owner`` now, as a request of it would find it (``None``: none
        is, it was taken out; the admin key is :data:`ADMIN`)."""
        if self.admin is not None and owner == ADMIN:
            return self.admin
        return self._narrowed(self.keyring.owned(owner))

    def find(self, token: Optional[bytes]) -> Optional[KeySpec]:
        """The client key ``token`` is, refusing nothing (``None``: none, or not one)."""
        if token is None or not self.keyring:
            return None
        return self._narrowed(self.keyring.find(token))

    def _narrowed(self, key: Optional[KeySpec]) -> Optional[KeySpec]:
        """A ``local_only`` key with the models it may use now: the local models served now
        (of its ``models``, when it names some), read at each request, so a models file
        reloaded changes them at once."""
        if key is None or not key.local_only:
            return key
        local = self.local_models()
        allowed = tuple(sorted(local)) if not key.models else [m for m in key.models if m in local]
        return replace(key, models=tuple(allowed))

    def is_admin(self, token: Optional[bytes]) -> bool:
        """Whether ``token`` is the admin key (compared in constant time)."""
        return (
            token is not None
            and self.admin is not None
            and hmac.compare_digest(token, self.admin.secret)
        )

    @staticmethod
    def may_manage(key: Optional[KeySpec]) -> bool:
        """Whether a client may stop, or keep loaded, a server every key shares (Ollama's
        ``keep_alive``): any client of a proxy without keys, as before keys were; with keys,
        a key with ``manage = true``, or the admin key."""
        return key is None or key.manage

    @staticmethod
    def check_model(key: KeySpec, model: Optional[str], counted_as: str) -> None:
        """Refuse a model the key may not use (``counted_as``: the id ``model`` is counted
        under): 403, or 404 when the key's models are hidden."""
        if key.may_use(counted_as):
            return
        logger.info("key %r refused the model %r", key.name, model)
        if key.hidden:  # in the words of a model that does not exist (see ModelNotFoundError)
            raise ModelNotFoundError(model, key.models)
        named = f"the model {model!r}" if model else "the default model"
        which = "the local models, " if key.local_only else ""
        allowed = ", ".join(key.models) or "none served now"
        raise PermissionDeniedError(
            f"the key {key.name!r} may not use {named}; it may use {which}{allowed}", param="model"
        )

    @staticmethod
    def check_kind(key: KeySpec, model: Optional[str], counted_as: str, kind: str) -> None:
        """Refuse to ask ``model`` (counted as ``counted_as``) to make ``kind`` where the
        key's ``kinds`` do not grant it: 403, naming what they grant of it."""
        if key.may_ask(counted_as, kind):
            return
        logger.info("key %r refused %s of the model %r", key.name, kind, model)
        granted = [each for each in KINDS if key.may_ask(counted_as, each)]
        named = f"the model {model!r}" if model else "the default model"
        raise PermissionDeniedError(
            f"the key {key.name!r} may not ask {named} for {kind}; it may ask it for "
            f"{', '.join(granted) or 'nothing'}",
            param="model",
        )

    def party(self, key: Optional[KeySpec], asked: Optional[object] = None) -> Party:
        """Whose turn ``key``'s request waits as (``None``: no keys, one queue for all), at
        the priority it ``asked`` for, if any (a header's text or a body's number).

        A request may always ask to go later; to go sooner than its key, only where the key
        has ``request_priority = true``.
        """
        if key is None:  # no keys: one queue for all, where a request may still step back
            return ANYONE if asked is None else ANYONE.at(_priority(asked))
        party = self._parties.get(key.name)
        if party is None:  # found in the keyring as it was being replaced
            party = Party(key.name, key.weight, key.priority, key.max_concurrent)
        if asked is None:
            return party
        priority = _priority(asked)
        if priority < key.priority and not key.request_priority:
            raise PermissionDeniedError(
                f"the key {key.name!r} may not ask for priority {priority}, ahead of its own "
                f"{key.priority} (lower is sooner); it may ask for {key.priority} to {LOWEST}",
                param="priority",
            )
        return party.at(priority)

    def admit(self, key: Optional[KeySpec]) -> Optional[Decision]:
        """Count the request against its key's minute; 429 when the minute is used up.
        While the store of the counts is down, 503, or uncounted for a key that says so."""
        if key is None or not key.limited:
            return None
        try:
            with self.outages.reaching("limits"):
                decision = self.limiter.admit(key)
        except StoreUnavailableError:
            if key.serve_in_outage:
                return None
            raise
        if not decision.allowed:
            requests = bool(key.rpm and decision.requests >= key.rpm)
            kind, limit = ("requests", key.rpm) if requests else ("tokens", key.tpm)
            logger.info("key %r over its %s per minute", key.name, kind)
            raise (RequestsLimitError if requests else TokensLimitError)(
                f"the key {key.name!r} used its {kind} per minute ({limit}); retry in "
                f"{decision.retry_after}s",
                retry_after=decision.retry_after,
                headers=decision.headers(),
            )
        return decision

    def standing(self, key: Optional[KeySpec]) -> Optional[Standing]:
        """What ``key`` has left of its budgets (``None``: it has none); a 503 while the
        store is down."""
        if key is None or not key.budgeted or self.budgets is None:
            return None
        self.journal.flush()  # what this process's answers spent, their holds let go
        with self.outages.reaching("usage", reading=True):
            return self.budgets.standing(key)

    def check_budget(self, key: Optional[KeySpec]) -> Optional[Standing]:
        """What ``key`` has left of its budgets; 429 once one is spent, before any work.
        While the store is down, 503, or unchecked for a key that says so (its answers are
        charged once the store is back); while the journal is full, 503 for every key with
        a budget."""
        if key is not None and key.budgeted and self.journal.is_full:
            raise self.outages.refusal("usage")  # what it spent is not all counted yet
        try:
            standing = self.standing(key)
        except StoreUnavailableError:
            if key.serve_in_outage:
                return None
            raise
        if standing is None:
            return None
        refusal = standing.refusal()
        if refusal is not None:
            logger.info("key %r over its budget", key.name)
            raise refusal
        return standing

    def hold(
        self,
        standing: Optional[Standing],
        price: Optional[Price],
        prompt: int,
        output: Optional[int],
        counts: Mapping[str, int] = MappingProxyType({}),
    ) -> str:
        """Hold what a request may spend of the budgets ``standing`` counts (its ``prompt``
        tokens and ``output`` tokens at most, and the media's ``counts``, at ``price``)
        until its charge lets it go: the
        hold's id ("": the key has no budget, or the store cannot take the hold and the key
        says so); a 429 when it does not fit, a 503 when the store cannot take it."""
        if standing is None or self.budgets is None:
            return ""
        try:
            with self.outages.reaching("usage"):
                for _ in range(HOLD_TRIES):
                    until = standing.now + holds.HELD_FOR
                    made = holds.needed(standing, price, prompt, output, until, counts)
                    if self.budgets.store.hold(made, self.budgets.clock()):
                        return made.id
                    standing = self.budgets.standing(standing.key)  # others held it first
        except StoreUnavailableError:  # served unheld only where its key says so
            if standing.key.serve_in_outage:
                return ""
            raise
        raise holds.busy(standing)

    def charge(
        self,
        key: Optional[KeySpec],
        model: str,
        status: int,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        price: Optional[Price] = None,
        hold: str = "",
        id: str = "",
        tier: str = "",
        size: str = "",
        **priced: int,
    ) -> None:
        """An answer has ended: its usage and what it costs the key's budgets (its tokens,
        and its money at ``price``, the price of the ``model`` that answered, at its service
        ``tier``'s where it served one priced apart, its pictures at their ``size``'s where
        the price names sizes) kept in one charge, which
        :meth:`settle` writes and which lets its ``hold`` go, its tokens counted against the
        key's minute; ``priced``: what else the price reads (the searches its upstream ran
        itself, the audio tokens among its tokens, the completions it stored: a
        :class:`Charge`'s fields); ``id``: the charge's own, for an answer that may be asked
        again and must count once ("": a new one)."""
        periods, tokens, usd_periods, micro_usd = (), 0, (), 0
        if key is not None and key.budgeted and self.budgets is not None:
            periods = self.budgets.periods(key, "tokens")
            tokens = cost(key, prompt_tokens, cached_tokens, completion_tokens) if periods else 0
            usd_periods = self.budgets.periods(key, "usd")
            if usd_periods and price is not None:
                micro_usd = spend.cost(
                    price.at(tier).sized(size),
                    prompt_tokens,
                    cached_tokens,
                    completion_tokens,
                    **priced,
                )
        self.journal.keep(
            Charge(
                key.name if key else ANONYMOUS,
                model,
                prompt_tokens,
                completion_tokens,
                status >= 400,
                periods,
                tokens,
                cached_tokens,
                usd_periods,
                micro_usd,
                hold=hold,
                tier=tier,
                size=size,
                **priced,
                **({"id": id} if id else {}),
            )
        )
        if key is not None and key.tpm and (prompt_tokens or completion_tokens):
            try:
                with self.outages.reaching("limits"):
                    self.limiter.charge(key, prompt_tokens + completion_tokens)
            except StoreUnavailableError:
                pass  # a minute's count: past by the time the store is back

    def settle(self) -> None:
        """The answers of the charges kept so far are sent: they go to the store."""
        self.journal.settle()

    def usage(self) -> list:
        """Usage per key and model as the store holds it, with this process's charges
        kept so far; a 503 while it is down."""
        self.journal.flush()
        with self.outages.reaching("usage", reading=True):
            return self.journal.store.totals()


def _priority(asked: object) -> int:
    """A request's priority, from a header's text or a body's number; a 400 otherwise."""
    if isinstance(asked, str):
        asked = int(asked.strip()) if asked.strip().isdigit() else asked
    if isinstance(asked, bool) or not isinstance(asked, int) or not HIGHEST <= asked <= LOWEST:
        raise InvalidRequestError(
            f"'priority' must be a whole number from {HIGHEST} (first) to {LOWEST}, "
            f"got {str(asked)[:40]!r}",
            param="priority",
        )
    return asked
