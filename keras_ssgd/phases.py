"""Phase plans in the paper's Table 1 notation, e.g. `"75-25S-25S"`."""

import dataclasses
import re

import keras

_PHASE = re.compile(r"^(\d+)(S?)$")


@dataclasses.dataclass(frozen=True)
class PhasePlan:
    """Training split into phases, each plain SGD or S-SGD.

    `"75-25S-25S"` means 75 epochs of SGD, then 25 of S-SGD, then 25 of
    S-SGD. In the paper (Table 1) the learning rate drops by 10x at each
    phase boundary; `learning_rate_schedule()` builds that schedule.

    Args:
        phases: tuple of `(epochs, noisy)` pairs.

    Example:

    >>> plan = PhasePlan.parse("75-25S-25S")
    >>> plan.epochs, plan.boundaries
    (125, (75, 100))
    >>> plan.noisy(74), plan.noisy(75)
    (False, True)

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent for
      Reaching Flat Minima in Deep Neural Network Training", Table 1.
    """

    phases: tuple

    @classmethod
    def parse(cls, plan):
        """Parses a plan such as `"75-50-25S"` (spaces are ignored)."""
        if isinstance(plan, PhasePlan):
            return plan
        parts = plan.replace(" ", "").split("-") if isinstance(plan, str) else [""]
        phases = []
        for part in parts:
            match = _PHASE.match(part)
            if not match or int(match.group(1)) <= 0:
                raise ValueError(
                    "Argument `plan` must be phases of > 0 epochs joined by "
                    "'-', each optionally ending in 'S' for S-SGD, such as "
                    f"'75-25S-25S'. Received: plan={plan!r}"
                )
            phases.append((int(match.group(1)), match.group(2) == "S"))
        return cls(tuple(phases))

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

    def phase(self, epoch):
        """Index of the phase that contains `epoch` (0-based); the last
        phase continues past the end of the plan."""
        return sum(1 for b in self.boundaries if epoch >= b)

    def noisy(self, epoch):
        """Whether `epoch` (0-based) is an S-SGD epoch."""
        return self.phases[self.phase(epoch)][1]

    def cost(self):
        """Compute cost in SGD-epoch units (an S-SGD epoch costs two)."""
        return sum(n * (2 if noisy else 1) for n, noisy in self.phases)

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
        return "-".join(f"{n}{'S' if s else ''}" for n, s in self.phases)
