"""Which steps perturb: the noise level and `every`.

With `every=k` a method perturbs the steps whose index (the optimizer's
step counter) is a multiple of `k` and trains plainly between them; at
level 0 no step perturbs, and the step is Keras's own.
"""

import math


def perturbs(step, level, every):
    """Whether step `step` perturbs.

    Args:
        step: the step's index (the optimizer's step counter), an int; read
            only when `every` is neither 1 nor `math.inf` (`None` is fine
            then: see `counts_steps`).
        level: the noise level, a float.
        every: an int >= 1, or `math.inf` (never perturb).

    Returns:
        `True` where the level is above 0 and `step` is a multiple of
        `every`.

    Example:

    >>> from keras_ssgd.cadence import perturbs
    >>> perturbs(3, 0.5, every=3), perturbs(4, 0.5, every=3)
    (True, False)
    >>> perturbs(None, 0.0, every=1)
    False
    """
    if not level > 0 or every == math.inf:
        return False
    return every == 1 or step % every == 0


def counts_steps(every):
    """Whether `perturbs` reads the step's index for this `every`."""
    return every not in (1, math.inf)


class StepClock:
    """The index of the next step, between executions of the compiled step
    (a plain object: Keras must not track it). `None`: read it from the
    optimizer first."""

    def __init__(self):
        self.step = None

    def tick(self, read):
        """The index of this step (`read()` the first time), and counts
        it."""
        if self.step is None:
            self.step = read()
        step = self.step
        self.step += 1
        return step
