"""Choose on validation, report on test: each method's pick among its
configurations.

A method run at several configurations (levels, learning rates, EMA
momenta, SWA starts: `(level, lr)` pairs) gets one pick per budget: the
configuration with the best mean validation accuracy over its seeds. The
test accuracy of the pick is what the verdicts compare; the test set plays
no part in the choice, so the pick's test interval is not biased by it.

Rules, in order:

1. A configuration with a diverged or unfinished-validation run ranks below
   every configuration whose runs all finished with a validation accuracy.
2. Among those, the highest mean validation accuracy over its seeds.
3. Ties: the configuration given first (the order of the plan's runs).

Nothing here reads `test_accuracy`: a test checks that reversing or
negating every test accuracy changes no pick.
"""

import dataclasses
import math

# The budgets a record can belong to, equal epochs first.
BUDGETS = ("epochs", "passes")


def budgets(record):
    """The budgets of a record (older records: equal epochs)."""
    return record.get("budgets") or ["epochs"]


@dataclasses.dataclass(frozen=True)
class Pick:
    """The configuration chosen for one method and budget.

    Attributes:
        method: str.
        budget: `"epochs"` or `"passes"`.
        level: float or None, the pick's level.
        lr: float or None, the pick's learning rate (None: records written
            before learning-rate grids).
        candidates: int, how many configurations it was chosen from (K).
        validation: float or None, the pick's mean validation accuracy.
        records: the pick's run records (one per seed).
    """

    method: str
    budget: str
    level: float
    lr: float
    candidates: int
    validation: float
    records: tuple

    @property
    def configuration(self):
        return (self.level, self.lr)

    def test_by_seed(self):
        """`{seed: test accuracy}` of the pick's finished runs."""
        return {
            r["seed"]: r["test_accuracy"] for r in self.records
            if r.get("status", "ok") == "ok"
            and r.get("test_accuracy") is not None
        }

    @property
    def passes(self):
        """Passes per step of the pick's runs (None: not recorded)."""
        values = {r.get("passes_per_step") for r in self.records}
        values.discard(None)
        return max(values) if values else None

    def name(self):
        """`ssgd 0.2, lr 0.05`, `sgd lr 0.1`, `sgd`."""
        text = self.method if self.level is None else (
            f"{self.method} {self.level:g}")
        if self.lr is not None:
            text += f"{',' if self.level is not None else ''} lr {self.lr:g}"
        return text


def configuration_of(record):
    """`(level, lr)` of a record."""
    return (record.get("level"), record.get("lr"))


def groups(records, budget, order=None):
    """`{method: {(level, lr): [records]}}` of one budget, methods and
    configurations in the order given.

    Args:
        records: run records.
        budget: `"epochs"` or `"passes"`.
        order: the run keys in the plan's order, or None for the records'
            own order. Configurations are ordered by their first key in it.
    """
    chosen = [r for r in records if budget in budgets(r)]
    if order is not None:
        rank = {key: i for i, key in enumerate(order)}
        chosen.sort(key=lambda r: rank.get(r["key"], len(rank)))
    out = {}
    for r in chosen:
        out.setdefault(r["method"], {}).setdefault(
            configuration_of(r), []).append(r)
    return out


def _score(runs):
    """`(complete, mean validation accuracy)` of a configuration's runs."""
    values = [r.get("validation_accuracy") for r in runs
              if r.get("status", "ok") == "ok"]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    complete = len(finite) == len(runs) and bool(runs)
    mean = math.fsum(finite) / len(finite) if finite else None
    return complete, mean


def pick(configurations):
    """The chosen `(level, lr)` of one method's `{configuration: runs}`
    (in the order given), and its mean validation accuracy.

    Returns `(None, None)` where no run has a validation accuracy and there
    is more than one configuration; a single configuration is its own pick
    (it needs no validation set).
    """
    items = list(configurations.items())
    if len(items) == 1:
        return items[0][0], _score(items[0][1])[1]
    best, best_key = None, None
    for index, (configuration, runs) in enumerate(items):
        complete, mean = _score(runs)
        if mean is None:
            continue
        key = (complete, mean, -index)
        if best_key is None or key > best_key:
            best, best_key = configuration, key
    if best is None:
        return None, None
    return best, best_key[1]


def picks(records, budget, order=None):
    """One `Pick` per method of `budget`, in the order given.

    A method whose configurations cannot be ranked (several, and no
    validation accuracy recorded) has no pick.
    """
    out = []
    for method, configurations in groups(records, budget, order).items():
        chosen, validation = pick(configurations)
        if chosen is None:
            continue
        out.append(Pick(
            method=method, budget=budget, level=chosen[0], lr=chosen[1],
            candidates=len(configurations), validation=validation,
            records=tuple(configurations[chosen]),
        ))
    return out


def best_of(candidates):
    """The pick with the best mean validation accuracy among `candidates`
    (ties: the first); None if none has one."""
    scored = [(p.validation, -i, p) for i, p in enumerate(candidates)
              if p.validation is not None]
    return max(scored, key=lambda t: (t[0], t[1]))[2] if scored else None
