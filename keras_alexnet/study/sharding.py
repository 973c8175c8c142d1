"""Splitting a study's runs between machines: `main.py study NAME --shard=i/N` runs shard i of N.

The runs (arm x seed, in the plan's order: seed by seed, a warm start's source arm before the arm that
needs it) are grouped into units: a run together with the runs of the same seed it warm-starts from
(VGG §3.1's deeper nets start from net A's run), which must run on one machine, in order. Unit k of the
plan goes to shard k mod N. The partition depends only on the study's arms and the seed numbers, not on
how many seeds are run, so `--seeds=5` after `--seeds=3` keeps every earlier run on its shard; N shards
run every unit exactly once between them.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count); Shard() is the whole study."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def whole(self) -> bool:
        return self.count == 1


def parse_shard(text: str) -> Shard:
    """Shard from "i/N"; ValueError saying what is wrong otherwise."""
    index, slash, count = text.partition("/")
    if not slash or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError("not of the form i/N (e.g. 0/4: the first of 4 shards)")
    index, count = int(index), int(count)
    if count < 1:
        raise ValueError("the number of shards N must be at least 1")
    if index >= count:
        raise ValueError(f"the shard index i must be 0 to {count - 1}")
    return Shard(index, count)


def units(runs: list) -> list:
    """`runs` ((arm, seed) pairs in order) grouped into lists that must run together, in order: each run
    with the runs of its seed that it needs (`Arm.needs`, followed transitively)."""
    group_of = {}  # (arm name, seed) -> the group holding it
    groups = []
    for arm, seed in runs:
        joined = [group_of[(name, seed)] for name in arm.needs() if (name, seed) in group_of]
        if joined:
            group = joined[0]
            for other in joined[1:]:
                if other is not group:
                    group.extend(other)
                    groups.remove(other)
                    for member_arm, member_seed in other:
                        group_of[(member_arm.name, member_seed)] = group
        else:
            group = []
            groups.append(group)
        group.append((arm, seed))
        group_of[(arm.name, seed)] = group
    order = {(arm.name, seed): position for position, (arm, seed) in enumerate(runs)}
    return [sorted(group, key=lambda run: order[(run[0].name, run[1])]) for group in groups]


def shard_runs(runs: list, shard: Shard) -> list:
    """The runs of `runs` that `shard` trains, in their order: unit k of `units(runs)` when k mod N is i."""
    mine = [unit for k, unit in enumerate(units(runs)) if k % shard.count == shard.index]
    return [run for unit in mine for run in unit]
