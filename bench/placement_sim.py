"""``python -m bench.placement_sim``: placement at internet scale, simulated.

No servers: a discrete-event simulation of replicas with slots, each slot holding the KV
cache of the last conversation it served, behind several proxies a load balancer feeds at
random. Every turn is placed by the proxy's own pure function
(:func:`proxy.fleet.placement.choose`), four ways:

- ``affinity``: hashing alone, each proxy remembering only the conversations it placed;
- ``affinity, shared load``: every proxy seeing where each live conversation is and how many
  live on each replica (what ``--redis-url`` shares), new ones placed by bounded loads;
- ``least busy``: no affinity, the proxy's own least busy replica;
- ``random``.

The conversations are agents' (what the proxy mostly serves): they arrive in bursts, run a
heavy-tailed number of turns with a few seconds of tool work between them, and their prompts
grow with every turn. A slot evaluates what it does not hold in its cache, so misses cost
time too. Halfway through, a replica leaves; at three quarters, a new one joins.

Figures per size and way: the share of prompt tokens taken from a cache (what the fleet
page calls the cache hit rate), the most loaded replica against the mean (turns running or
waiting, sampled every few seconds), the 99th percentile wait for a slot, the share of live
conversations whose next turn went elsewhere after the replica left and after the new one
joined (1/N and 0 are the ideals), and the proxy's own placement time per request at each
size, for a new conversation and one going on. Writes
``bench/results/placement{,-quick}.md`` and ``.png``.
"""

from __future__ import annotations

import heapq
import random
import statistics
import timeit
from collections import Counter, OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench import cli
from proxy.fleet.liveness import WINDOW
from proxy.fleet.placement import ReplicaLoad, choose, rank

POLICIES = ("affinity", "affinity, shared load", "least busy", "random")
PROXIES = 4


@dataclass(frozen=True)
class Size:
    replicas: int
    slots: int
    conversations: int


FULL = (Size(8, 4, 10_000), Size(32, 8, 100_000), Size(128, 16, 300_000), Size(256, 32, 1_000_000))
QUICK = (Size(8, 4, 2_000), Size(32, 8, 5_000))


@dataclass(frozen=True)
class Workload:
    """Agents' conversations, as the simulation draws them."""

    think: float = 3.0  # mean seconds of tool work between an answer and the next turn
    opening: int = 2000  # mean prompt tokens of a first turn
    turn: int = 300  # tokens each turn adds: the answer and the next message
    eval_rate: float = 2000.0  # prompt tokens a slot evaluates per second
    answer: float = 3.0  # seconds a slot takes to write an answer
    tail: float = 1.5  # Pareto shape of the turns per conversation
    max_turns: int = 200
    live_per_slot: float = 0.7  # live conversations per slot the arrivals aim at
    burst: float = 2.5  # arrival rate in a burst, against the calm one
    calm_seconds: float = 600.0  # mean length of a calm period
    burst_seconds: float = 60.0  # mean length of a burst
    window: float = WINDOW  # seconds a conversation counts as live after its turn (shared)
    sample_every: float = 5.0  # seconds between two looks at the replicas' loads


AGENTS = Workload()


def turns_of(rng: random.Random, workload: Workload) -> int:
    return min(workload.max_turns, int(rng.paretovariate(workload.tail)))


def calm_rate(size: Size, workload: Workload) -> float:
    """Conversations per second in a calm period, so that on average the fleet holds
    ``live_per_slot`` live conversations per slot."""
    sampler = random.Random(0)
    mean_turns = statistics.fmean(turns_of(sampler, workload) for _ in range(20000))
    lifetime = mean_turns * (workload.answer + workload.turn / workload.eval_rate + workload.think)
    mean_rate = workload.live_per_slot * size.replicas * size.slots / lifetime
    calm, burst = workload.calm_seconds, workload.burst_seconds
    return mean_rate * (calm + burst) / (calm + burst * workload.burst)


def name_of(index: int) -> str:
    return f"http://10.{index // 65536}.{index // 256 % 256}.{index % 256}:8080"


class Replica:
    """A server's slots: who each holds the cache of, how many tokens, since when idle."""

    __slots__ = ("name", "holder", "cached", "idle_since", "running", "line")

    def __init__(self, name: str, slots: int) -> None:
        self.name = name
        self.holder: list = [None] * slots
        self.cached = [0] * slots
        self.idle_since = [0.0] * slots
        self.running = [False] * slots
        self.line: deque = deque()

    def load(self) -> int:
        return sum(self.running) + len(self.line)

    def slot_for(self, conversation: int) -> Optional[int]:
        """The idle slot holding ``conversation``'s cache, else the one idle longest (as
        llama-server picks); ``None`` when every slot is running."""
        best = None
        for slot, running in enumerate(self.running):
            if running:
                continue
            if self.holder[slot] == conversation:
                return slot
            if best is None or self.idle_since[slot] < self.idle_since[best]:
                best = slot
        return best


class Simulation:
    """One way of placing, over one size, with one seed."""

    def __init__(self, size: Size, policy: str, workload: Workload, seed: int) -> None:
        self.size, self.policy, self.workload = size, policy, workload
        self.rng = random.Random(seed)
        self.replicas = [Replica(name_of(i), size.slots) for i in range(size.replicas)]
        self.index_of = {replica.name: i for i, replica in enumerate(self.replicas)}
        self.healthy = [True] * size.replicas
        self.busy = [[0] * size.replicas for _ in range(PROXIES)]  # each proxy's own view
        self.live = [0] * size.replicas
        self.loads = [self._loads(proxy) for proxy in range(PROXIES)]
        self.memory: list = [{} for _ in range(PROXIES)]  # conversation -> replica, per proxy
        self.last: dict = {}  # conversation -> the replica of its last turn
        self.placed: dict = {}  # conversation -> replica, what every proxy shares
        self.counted: dict = {}  # conversation -> the replica it counts as live on
        self.last_turn: OrderedDict = OrderedDict()  # conversation -> time, oldest first
        self.ranked: dict = {}  # conversation -> its hashing order, while it lives
        self.events: list = []
        self.sequence = 0
        # conversation -> [turns left, prompt tokens, turns done, tokens its cache would hold]
        self.state: dict = {}
        self.prompt_tokens = self.cached_tokens = self.cacheable_tokens = 0
        self.waits: list = []
        self.most = self.mean = 0.0  # sums over the looks at the replicas' loads
        self.went_on = self.went_elsewhere = 0  # turns after a conversation's first
        self.watched: dict = {}  # conversation -> replica before a change of members
        self.moved = {"leave": [0, 0], "join": [0, 0]}
        self.change = None

    # -- what each proxy knows ---------------------------------------------------------------

    def _loads(self, proxy: int) -> list:
        return [self._load(proxy, index) for index in range(len(self.replicas))]

    def _load(self, proxy: int, index: int) -> ReplicaLoad:
        live = self.live[index] if self.policy == "affinity, shared load" else None
        return ReplicaLoad(
            self.replicas[index].name,
            self.healthy[index],
            self.busy[proxy][index],
            self.size.slots,
            live,
        )

    def _refresh(self, index: int, proxies=range(PROXIES)) -> None:
        for proxy in proxies:
            self.loads[proxy][index] = self._load(proxy, index)

    def _ranking(self, conversation: int):
        def ranking(key: str, names) -> list:
            found = self.ranked.get(conversation)
            if found is None:
                found = self.ranked[conversation] = rank(key, names)
            return found

        return ranking

    # -- placing a turn ----------------------------------------------------------------------

    def place(self, proxy: int, conversation: int, continuing: bool) -> int:
        loads = self.loads[proxy]
        if self.policy == "random":
            return self.rng.choice([i for i, up in enumerate(self.healthy) if up])
        if self.policy == "least busy":
            return self.index_of[choose(None, loads).name]
        if self.policy == "affinity":
            remembered = self.memory[proxy].get(conversation)
        else:
            self._expire()
            remembered = self.placed.get(conversation)
        chosen = choose(
            f"c{conversation}",
            loads,
            continuing=continuing,
            remembered=None if remembered is None else self.replicas[remembered].name,
            ranking=self._ranking(conversation),
        )
        return self.index_of[chosen.name]

    def _expire(self) -> None:
        horizon = self.now - self.workload.window
        while self.last_turn:
            conversation, seen = next(iter(self.last_turn.items()))
            if seen >= horizon:
                return
            del self.last_turn[conversation]
            self._uncount(conversation)

    def _uncount(self, conversation: int) -> None:
        index = self.counted.pop(conversation, None)
        if index is not None:
            self.live[index] -= 1
            self._refresh(index)

    def _share(self, conversation: int, index: int) -> None:
        """What every proxy learns when a turn is placed (the shared way only): where the
        conversation is, and that it is live there for the window."""
        self.placed[conversation] = index
        if self.counted.get(conversation) != index:
            self._uncount(conversation)
            self.counted[conversation] = index
            self.live[index] += 1
            self._refresh(index)
        self.last_turn[conversation] = self.now
        self.last_turn.move_to_end(conversation)

    # -- events --------------------------------------------------------------------------------

    def push(self, time: float, kind: str, *data) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (time, self.sequence, kind, data))

    def run(self) -> dict:
        rate = calm_rate(self.size, self.workload)
        self.arrivals(rate)
        leave_at = self.horizon * 0.5
        join_at = self.horizon * 0.75
        self.push(leave_at, "leave")
        self.push(join_at, "join")
        self.push(0.0, "sample")
        while self.events:
            self.now, _, kind, data = heapq.heappop(self.events)
            getattr(self, "on_" + kind)(*data)
        return self.figures()

    def arrivals(self, rate: float) -> None:
        """Conversation start times: calm and burst periods in turn."""
        time, bursting, until = 0.0, False, 0.0
        for conversation in range(self.size.conversations):
            while True:
                current = rate * (self.workload.burst if bursting else 1.0)
                step = self.rng.expovariate(current)
                if time + step <= until:
                    time += step
                    break
                time = until
                bursting = not bursting
                until = time + self.rng.expovariate(
                    1 / (self.workload.burst_seconds if bursting else self.workload.calm_seconds)
                )
            opening = int(self.rng.expovariate(1 / self.workload.opening)) + 1
            self.state[conversation] = [turns_of(self.rng, self.workload), opening, 0, 0]
            self.push(time, "turn", conversation)
        self.horizon = time

    def on_turn(self, conversation: int) -> None:
        proxy = self.rng.randrange(PROXIES)
        continuing = self.state[conversation][2] > 0
        index = self.place(proxy, conversation, continuing)
        if continuing:
            self.went_on += 1
            self.went_elsewhere += index != self.last[conversation]
        if conversation in self.watched:
            counted = self.moved[self.change]
            counted[0] += index != self.watched.pop(conversation)
            counted[1] += 1
        self.memory[proxy][conversation] = self.last[conversation] = index
        if self.policy == "affinity, shared load":
            self._share(conversation, index)
        self.busy[proxy][index] += 1
        self._refresh(index, (proxy,))
        self.replicas[index].line.append((conversation, proxy, self.now))
        self.start(index)

    def start(self, index: int) -> None:
        replica = self.replicas[index]
        while replica.line:
            slot = replica.slot_for(replica.line[0][0])
            if slot is None:
                return
            conversation, proxy, arrived = replica.line.popleft()
            prompt, cacheable = self.state[conversation][1], self.state[conversation][3]
            cached = replica.cached[slot] if replica.holder[slot] == conversation else 0
            self.prompt_tokens += prompt
            self.cached_tokens += cached
            self.cacheable_tokens += cacheable
            self.waits.append(self.now - arrived)
            replica.holder[slot], replica.running[slot] = conversation, True
            replica.cached[slot] = prompt
            seconds = (prompt - cached) / self.workload.eval_rate + self.workload.answer
            self.push(self.now + seconds, "done", index, slot, conversation, proxy)

    def on_done(self, index: int, slot: int, conversation: int, proxy: int) -> None:
        replica = self.replicas[index]
        replica.running[slot] = False
        replica.idle_since[slot] = self.now
        replica.cached[slot] += self.workload.turn // 2  # the answer joins its cache
        self.busy[proxy][index] -= 1
        self._refresh(index, (proxy,))
        state = self.state[conversation]
        state[3] = replica.cached[slot]
        state[0] -= 1
        state[1] += self.workload.turn
        state[2] += 1
        if state[0] > 0:
            self.push(
                self.now + self.rng.expovariate(1 / self.workload.think), "turn", conversation
            )
        else:
            self.forget(conversation)
        self.start(index)

    def forget(self, conversation: int) -> None:
        """A conversation that ended leaves every proxy's memory (the shared count keeps it
        until its window passes, as Redis would)."""
        del self.state[conversation]
        del self.last[conversation]
        self.placed.pop(conversation, None)
        self.ranked.pop(conversation, None)
        for memory in self.memory:
            memory.pop(conversation, None)
        self.watched.pop(conversation, None)

    def on_sample(self) -> None:
        live = Counter(self.last.values())
        loads = [live[index] for index, up in enumerate(self.healthy) if up]
        self.most += max(loads)
        self.mean += sum(loads) / len(loads)
        if self.events:
            self.push(self.now + self.workload.sample_every, "sample")

    def on_leave(self) -> None:
        """The middle replica leaves: its waiting turns go elsewhere; its running ones end."""
        self.watch("leave")
        index = len(self.replicas) // 2
        self.healthy[index] = False
        self.ranked.clear()
        self._refresh(index)
        waiting = list(self.replicas[index].line)
        self.replicas[index].line.clear()
        for conversation, proxy, _ in waiting:
            self.busy[proxy][index] -= 1
            self.push(self.now, "turn", conversation)
        self._refresh(index)

    def on_join(self) -> None:
        self.watch("join")
        self.replicas.append(Replica(name_of(len(self.replicas)), self.size.slots))
        self.index_of[self.replicas[-1].name] = len(self.replicas) - 1
        self.healthy.append(True)
        self.live.append(0)
        for proxy in range(PROXIES):
            self.busy[proxy].append(0)
            self.loads[proxy].append(self._load(proxy, len(self.replicas) - 1))
        self.ranked.clear()

    def watch(self, change: str) -> None:
        """Remember where each live conversation's last turn went, to count those whose next
        turn goes elsewhere."""
        self.change = change
        self.watched = dict(self.last)

    def figures(self) -> dict:
        self.waits.sort()
        leave, join = self.moved["leave"], self.moved["join"]
        return {
            "hit_rate": self.cached_tokens / self.prompt_tokens,
            "ceiling": self.cacheable_tokens / self.prompt_tokens,
            "max_over_mean": self.most / self.mean,
            "moved_steady": self.went_elsewhere / max(self.went_on, 1),
            "wait_p99": self.waits[int(len(self.waits) * 0.99)],
            "moved_leave": leave[0] / max(leave[1], 1),
            "moved_join": join[0] / max(join[1], 1),
            "turns": len(self.waits),
            "seconds": self.horizon,
        }


def simulate(size: Size, policy: str, workload: Workload = AGENTS, seed: int = 1) -> dict:
    return Simulation(size, policy, workload, seed).run()


def placement_microseconds(replicas: int, slots: int) -> dict:
    """The proxy's own time to place one request among ``replicas``: a new conversation
    (hashing, bounded by shared counts) and one going on (remembered)."""
    names = [name_of(index) for index in range(replicas)]
    loads = [ReplicaLoad(name, True, 1, slots, 3) for name in names]
    keys = [f"{index:032x}" for index in range(200)]
    new = timeit.timeit(lambda: [choose(key, loads) for key in keys], number=5) / 1000
    going_on = (
        timeit.timeit(
            lambda: [choose(key, loads, continuing=True, remembered=names[7]) for key in keys],
            number=5,
        )
        / 1000
    )
    return {"new": new * 1e6, "going on": going_on * 1e6}


# -- the report ------------------------------------------------------------------------------


def table(results: dict, timings: dict, sizes: tuple, quick: bool) -> str:
    lines = [
        f"# Placement at scale, simulated{' (quick)' if quick else ''}",
        "",
        f"`python -m bench.placement_sim{' --quick' if quick else ''}`: agents' "
        f"conversations (bursty arrivals, heavy-tailed turns, {AGENTS.think:.0f} s of tool "
        f"work between turns, prompts growing {AGENTS.turn} tokens a turn) over replicas "
        f"of one model behind {PROXIES} proxies; a replica leaves halfway and a new one "
        f"joins at three quarters. Hit rate: prompt tokens taken from a slot's cache; "
        f"ceiling: what it would be if every turn found the cache its last turn left. "
        f"Max/mean: live conversations on the busiest replica against the mean. "
        f"Moved: turns that went to another replica than their conversation's last one "
        f"(steady: over the whole run; leave, join: the next turn of each live "
        f"conversation after the change; ideal: 0, 1/N and 0).",
        "",
        "| replicas × slots | conversations | way | hit rate | ceiling | max/mean load | "
        "wait p99 s | moved (steady) | moved (leave) | moved (join) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        for policy in POLICIES:
            got = results[size, policy]
            lines.append(
                f"| {size.replicas} × {size.slots} | {size.conversations:,} | {policy} | "
                f"{got['hit_rate']:.1%} | {got['ceiling']:.1%} | {got['max_over_mean']:.2f} | "
                f"{got['wait_p99']:.2f} | {got['moved_steady']:.1%} | {got['moved_leave']:.1%} | "
                f"{got['moved_join']:.1%} |"
            )
    lines += [
        "",
        "The proxy's own placement time per request (`choose`, in process):",
        "",
        "| replicas | new conversation µs | going on µs | 1/N |",
        "|---:|---:|---:|---:|",
    ]
    for size in sizes:
        timing = timings[size]
        lines.append(
            f"| {size.replicas} | {timing['new']:.1f} | {timing['going on']:.1f} | "
            f"{1 / size.replicas:.1%} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, timings: dict, sizes: tuple, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("hit rate", "hit_rate", "share of prompt tokens cached"),
        ("max / mean load", "max_over_mean", "ratio"),
        ("moved when a replica leaves", "moved_leave", "share of live conversations"),
    )
    figure, axes = plt.subplots(1, 4, figsize=(18, 4.5), constrained_layout=True)
    counts = [size.replicas for size in sizes]
    for ax, (title, field, unit) in zip(axes, panels, strict=False):
        for policy in POLICIES:
            ax.plot(
                counts, [results[size, policy][field] for size in sizes], marker="o", label=policy
            )
        if field == "moved_leave":
            ax.plot(counts, [1 / count for count in counts], "k--", label="1/N")
        style(ax, title, unit, counts)
    for kind in ("new", "going on"):
        axes[3].plot(
            counts,
            [timings[size][kind] for size in sizes],
            marker="o",
            label=f"{kind} conversation" if kind == "new" else "going on",
        )
    style(axes[3], "placement time per request", "µs", counts)
    for ax in axes:
        ax.legend(fontsize="small")
    figure.suptitle(
        "oai-proxy placement, simulated: "
        + ", ".join(
            f"{size.replicas}×{size.slots} ({size.conversations:,} conversations)" for size in sizes
        )
    )
    figure.savefig(path, dpi=80)
    plt.close(figure)


def style(ax, title: str, unit: str, counts: list) -> None:
    ax.set_title(title)
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(count) for count in counts])
    ax.set_xlabel("replicas")
    ax.set_ylabel(unit)
    ax.grid(True, alpha=0.3)


def main() -> None:
    parser = cli.arguments(
        "placement_sim", "Placement at scale, simulated.", quick="small sizes that prove it runs"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes simulating at once")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    work = [(size, policy) for size in reversed(sizes) for policy in POLICIES]
    with ProcessPoolExecutor(args.workers) as pool:
        outcomes = pool.map(simulate, *zip(*work, strict=True))
        results = dict(zip(work, outcomes, strict=True))
    timings = {size: placement_microseconds(size.replicas, size.slots) for size in sizes}
    report = table(results, timings, sizes, args.quick)
    cli.publish(args, "placement", report)
    plot(results, timings, sizes, cli.results(args, "placement").with_suffix(".png"))


if __name__ == "__main__":
    main()
