"""The PTB training recipes of Table 5 (Zaremba et al.'s pipeline)."""

import dataclasses

import keras

from keras_ssgd.validation import check_positive_int


@dataclasses.dataclass(frozen=True)
class PTBRecipe:
    """One PTB language-model recipe: model, data layout and schedule.

    SGD without momentum; the learning rate `lr` is held for `decay_after`
    epochs, then divided by `decay` at the start of every later epoch
    (`zaremba_schedule`); gradients are clipped to a global norm of
    `clipnorm`; the loss is the cross-entropy summed over the `steps`
    unrolled time steps and averaged over the batch, as in Zaremba et al.

    Args:
        size: str, the `keras_ssgd.tasks.ptb.lstm` size.
        epochs: int > 0.
        decay: float >= 1, the per-epoch divisor after `decay_after`.
        decay_after: int >= 0, epochs at the constant initial rate.
        clipnorm: float > 0, the global gradient-norm bound.
        dropout: float in [0, 1), on the non-recurrent connections.
        init_scale: float > 0, weights uniform in `[-init_scale, init_scale]`.
        lr: float > 0. Defaults to `1.0`.
        batch_size: int > 0. Defaults to `20`.
        steps: int > 0, the unrolled length. Defaults to `35`.
        eval_batch_size: int > 0, rows of the final validation and test
            evaluation; 1 reads each split as one stream, as Zaremba et al.
            test. Defaults to `1`.
        num_layers: int or None, LSTM layers (None: the size's).
        units: int or None, units per layer (None: the size's).

    Example:

    >>> recipe = RECIPES["large"]
    >>> recipe.epochs, recipe.decay, recipe.decay_after, recipe.clipnorm
    (55, 1.15, 14, 10.0)

    Reference:
    - Zaremba, Sutskever and Vinyals, "Recurrent Neural Network
      Regularization", arXiv:1409.2329, Section 4.1.
    """

    size: str
    epochs: int
    decay: float
    decay_after: int
    clipnorm: float
    dropout: float
    init_scale: float
    lr: float = 1.0
    batch_size: int = 20
    steps: int = 35
    eval_batch_size: int = 1
    num_layers: int = None
    units: int = None

    def __post_init__(self):
        for name in ("epochs", "batch_size", "steps", "eval_batch_size"):
            check_positive_int(getattr(self, name), name)
        if isinstance(self.decay_after, bool) or not isinstance(
            self.decay_after, int
        ) or self.decay_after < 0:
            raise ValueError(
                "Argument `decay_after` must be an int >= 0. "
                f"Received: decay_after={self.decay_after!r}"
            )
        for name, low in (("lr", 0), ("clipnorm", 0), ("init_scale", 0)):
            if not getattr(self, name) > low:
                raise ValueError(
                    f"Argument `{name}` must be > {low}. "
                    f"Received: {name}={getattr(self, name)!r}"
                )
        if not self.decay >= 1:
            raise ValueError(
                f"Argument `decay` must be >= 1 (a divisor). "
                f"Received: decay={self.decay!r}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(
                "Argument `dropout` must be in [0, 1). "
                f"Received: dropout={self.dropout!r}"
            )

    def replace(self, **changes):
        """A copy with `changes` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return dataclasses.asdict(self)

    def rate_at(self, epoch):
        """The learning rate of `epoch` (0-based), Zaremba et al.'s rule."""
        return self.lr / self.decay ** max(epoch + 1 - self.decay_after, 0)

    def learning_rate(self, steps_per_epoch):
        """This recipe's `zaremba_schedule` for `steps_per_epoch`."""
        return zaremba_schedule(
            self.lr, self.decay, self.decay_after, self.epochs, steps_per_epoch
        )


# Zaremba et al. Section 4.1 (medium, large), with the S-SGD paper's
# Section 5.3: the large model runs 55 epochs (as Zaremba's). The paper
# gives no recipe for its small model (1 x 300, after Hubara et al.); it
# says dropout is used on the forward path in both models, so the small
# model takes Zaremba's medium recipe (dropout 0.5, 39 epochs, /1.2 after
# epoch 6, clip 5, init 0.05).
RECIPES = {
    "small": PTBRecipe("small", epochs=39, decay=1.2, decay_after=6,
                       clipnorm=5.0, dropout=0.5, init_scale=0.05),
    "medium": PTBRecipe("medium", epochs=39, decay=1.2, decay_after=6,
                        clipnorm=5.0, dropout=0.5, init_scale=0.05),
    "large": PTBRecipe("large", epochs=55, decay=1.15, decay_after=14,
                       clipnorm=10.0, dropout=0.65, init_scale=0.04),
}

# Table 5 of the S-SGD paper: size -> (SGD test perplexity, {level: S-SGD}).
PAPER_TABLE5 = {
    "large": (78.68, {0.8: 74.47, 0.9: 73.95, 1.0: 73.83}),
    "small": (88.85, {0.6: 85.56, 0.7: 84.86, 0.8: 86.04}),
}


def recipe_for(size):
    """The recipe of model `size` (`"small"`, `"medium"`, `"large"`)."""
    if size not in RECIPES:
        raise ValueError(
            f"Argument `size` must be one of {list(RECIPES)}. "
            f"Received: size={size!r}"
        )
    return RECIPES[size]


def zaremba_schedule(lr, decay, decay_after, epochs, steps_per_epoch):
    """Zaremba et al.'s learning rate, as a Keras schedule over steps.

    Epoch `e` (0-based) runs at `lr / decay ** max(e + 1 - decay_after, 0)`:
    `decay_after` epochs at `lr`, then one division by `decay` per epoch.
    A `keras.optimizers.schedules.PiecewiseConstantDecay` with one boundary
    per epoch boundary after `decay_after` (the optimizer's step counter
    is `e * steps_per_epoch` at the first step of epoch `e`).

    Args:
        lr: float, the initial rate.
        decay: float >= 1, the per-epoch divisor.
        decay_after: int >= 0, epochs at `lr`.
        epochs: int > 0, the length of training.
        steps_per_epoch: int > 0.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`, or the float
        `lr` when no decay falls within `epochs`.

    Example:

    >>> schedule = zaremba_schedule(1.0, 1.15, 14, 55, steps_per_epoch=1327)
    >>> round(float(schedule(14 * 1327)), 6)  # the first step of the 15th epoch
    0.869565

    Reference:
    - Zaremba, Sutskever and Vinyals, "Recurrent Neural Network
      Regularization", arXiv:1409.2329, Section 4.1.
    """
    check_positive_int(epochs, "epochs")
    check_positive_int(steps_per_epoch, "steps_per_epoch")
    decayed = range(max(decay_after, 1), epochs)
    if not decayed:
        return lr
    boundaries = [e * steps_per_epoch - 1 for e in decayed]
    values = [lr / decay ** max(e + 1 - decay_after, 0)
              for e in range(decayed.start - 1, epochs)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
