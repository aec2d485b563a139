"""A model's noise stream: its level and its seed, positioned at
`(seed, step)`."""

import keras
from keras import ops


class NoiseStream:
    """The noise level and the random stream of a model.

    Kept outside Keras's attribute tracking on purpose: these variables are
    not weights, so a wrapped model keeps the `weights` list of the model it
    wraps and `get_weights()`/`set_weights()` stay interchangeable.

    Args:
        level: the initial noise level, a float.
        seed: the seed of the stream, an int.
    """

    def __init__(self, level, seed):
        self.level = keras.Variable(
            level, dtype="float32", trainable=False, name="noise_level"
        )
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed, name="noise_seed")

    def generator(self, optimizer, offset=None):
        """A seed generator positioned at `[seed, optimizer.iterations]`.

        The directions of step `t` depend only on `(seed, t)`: a checkpoint,
        which saves the optimizer's step counter, resumes the same sequence.
        `offset` (an int, traced on a device of the per-device step) is
        added to the seed.
        """
        state = self._generator.state
        step = ops.cast(optimizer.iterations, state.dtype)
        seed = ops.cast(self.seed, state.dtype)
        if offset is not None:
            seed = seed + ops.cast(offset, state.dtype)
        state.assign(ops.stack([seed, step]))
        return self._generator
