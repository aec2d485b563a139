"""Phase plans in the paper's Table 1 notation, e.g. `"75-25S-25S"`."""

import dataclasses
import re

import keras

_PHASE = re.compile(r"^(\d+)([SH]?)$")

# The letter that ends each kind of phase: plain SGD, S-SGD, split S-SGD.
_PLAIN, _FULL, _SPLIT = "", "S", "H"


@dataclasses.dataclass(frozen=True)
class PhasePlan:
    """Training split into phases: plain SGD, S-SGD, or split S-SGD.

    `"75-25S-25S"` means 75 epochs of SGD, then 25 of S-SGD, then 25 of
    S-SGD. A phase ending in `H` (for half batches) runs the split form of
    S-SGD (`SymmetricSGDModel(split_batch=True)`): the same noise, the first
    half of each batch measured at `W + n` and the second half at `W - n`,
    at the cost of plain SGD. `"75-25S-25H"` ends with 25 epochs of it. An
    `S` phase runs S-SGD in the model's own form: full S-SGD, unless the
    model was built with `split_batch=True` (then every noisy phase is
    split). In the paper (Table 1) the learning rate drops by 10x at each
    phase boundary; `learning_rate_schedule()` builds that schedule.

    Args:
        phases: tuple of `(epochs, noisy)` pairs.
        split: tuple of bools, one per phase: whether that phase is an `H`
            phase (only noisy phases can be). Defaults to none.

    Example:

    >>> plan = PhasePlan.parse("75-25S-25H")
    >>> plan.epochs, plan.boundaries, str(plan)
    (125, (75, 100), '75-25S-25H')
    >>> plan.noisy(74), plan.noisy(75), plan.splits(75), plan.splits(100)
    (False, True, False, True)
    >>> plan.cost()  # SGD-epoch units: S costs 2, H and plain 1
    150

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent for
      Reaching Flat Minima in Deep Neural Network Training", Table 1.
    """

    phases: tuple
    split: tuple = ()

    def __post_init__(self):
        split = tuple(bool(s) for s in self.split) or (False,) * len(
            self.phases
        )
        if len(split) != len(self.phases):
            raise ValueError(
                "Argument `split` must hold one bool per phase. Received: "
                f"split={self.split!r} for {len(self.phases)} phases"
            )
        for (_, noisy), s in zip(self.phases, split):
            if s and not noisy:
                raise ValueError(
                    "Argument `split` may mark noisy phases only (a split "
                    f"phase is S-SGD). Received: split={self.split!r} for "
                    f"phases={self.phases!r}"
                )
        object.__setattr__(self, "split", split)

    @classmethod
    def parse(cls, plan):
        """Parses a plan such as `"75-50-25S"` or `"75-25S-25H"` (spaces
        are ignored)."""
        if isinstance(plan, PhasePlan):
            return plan
        parts = plan.replace(" ", "").split("-") if isinstance(plan, str) else [""]
        phases, split = [], []
        for part in parts:
            match = _PHASE.match(part)
            if not match or int(match.group(1)) <= 0:
                raise ValueError(
                    "Argument `plan` must be phases of > 0 epochs joined by "
                    "'-', each optionally ending in 'S' for S-SGD or 'H' for "
                    "split S-SGD (half of each batch at W + n, half at "
                    f"W - n), such as '75-25S-25S'. Received: plan={plan!r}"
                )
            letter = match.group(2)
            phases.append((int(match.group(1)), letter != _PLAIN))
            split.append(letter == _SPLIT)
        return cls(tuple(phases), tuple(split))

    @property
    def epochs(self):
        """Total number of epochs."""
        return sum(n for n, _ in self.phases)

    @property
    def boundaries(self):
        """The epochs at which a new phase starts."""
        ends, total = [], 0
        for n, _ in self.phases[:-1]:
            total += n
            ends.append(total)
        return tuple(ends)

    @property
    def has_split(self):
        """Whether the plan has an `H` (split S-SGD) phase."""
        return any(self.split)

    def phase(self, epoch):
        """Index of the phase that contains `epoch` (0-based); the last
        phase continues past the end of the plan."""
        return sum(1 for b in self.boundaries if epoch >= b)

    def noisy(self, epoch):
        """Whether `epoch` (0-based) is an S-SGD epoch (`S` or `H`)."""
        return self.phases[self.phase(epoch)][1]

    def splits(self, epoch):
        """Whether `epoch` (0-based) is a split S-SGD (`H`) epoch."""
        return self.split[self.phase(epoch)]

    def cost(self):
        """Compute cost in SGD-epoch units: an `S` epoch costs two (full
        S-SGD), an `H` or plain epoch one. (With a model built with
        `split_batch=True` the `S` phases are split too, and cost one.)"""
        return sum(
            n * (2 if noisy and not split else 1)
            for (n, noisy), split in zip(self.phases, self.split)
        )

    def learning_rate_schedule(
        self, initial_learning_rate, steps_per_epoch, factor=0.1
    ):
        """A `PiecewiseConstantDecay` dropping by `factor` at each boundary
        (the constant rate itself for a one-phase plan)."""
        if not self.boundaries:
            return float(initial_learning_rate)
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[b * steps_per_epoch for b in self.boundaries],
            values=[
                initial_learning_rate * factor**i
                for i in range(len(self.phases))
            ],
        )

    def __str__(self):
        return "-".join(
            f"{n}{_SPLIT if split else _FULL if noisy else _PLAIN}"
            for (n, noisy), split in zip(self.phases, self.split)
        )
