"""Holm's correction for a family of tests.

SciPy has no Holm step-down procedure, and statsmodels (which has one,
`statsmodels.stats.multitest.multipletests(method="holm")`) would bring
pandas and patsy into the package's dependencies; these few lines are
tested against it.

Reference:
- Holm, S. (1979). A simple sequentially rejective multiple test
  procedure. Scandinavian Journal of Statistics, 6(2), 65-70.
"""

import math


def holm(p_values):
    """Holm-adjusted p-values, in the order given, and each test's step.

    Sort the m p-values ascending, `p_(1) <= ... <= p_(m)`; the adjusted
    value of the i-th (from 1) is `max_{j <= i} min(1, (m - j + 1) p_(j))`.
    A test is rejected at level alpha when its adjusted value is below
    alpha, which is Holm's step-down rule: compare `p_(i)` with
    `alpha / (m - i + 1)` and stop at the first that fails.

    Args:
        p_values: sequence of numbers in [0, 1].

    Returns:
        `(adjusted, steps)`: the adjusted p-values, and for each test its
        rank i (from 1) in the ascending order (ties: the order given), so
        that its step's level is `alpha / (m - i + 1)`.

    Example:

    >>> holm([0.01, 0.04, 0.03])[0]
    [0.03, 0.06, 0.06]
    """
    values = [float(p) for p in p_values]
    if not all(math.isfinite(p) and 0 <= p <= 1 for p in values):
        raise ValueError(
            "Argument `p_values` must hold numbers in [0, 1]. Received: "
            f"p_values={list(p_values)!r}"
        )
    m = len(values)
    order = sorted(range(m), key=lambda i: (values[i], i))
    adjusted = [0.0] * m
    steps = [0] * m
    running = 0.0
    for rank, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - rank + 1) * values[i]))
        adjusted[i] = running
        steps[i] = rank
    return adjusted, steps
