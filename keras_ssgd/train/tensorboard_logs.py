"""TensorBoard logs of an `ssgd-train` run (`--tensorboard`): Keras's
`TensorBoard` callback, with the noise level in effect and the passes per
step as epoch scalars; the run's record is unchanged.

A run continued from its checkpoint (`--resume`) writes on into the same
folder, so its curves are one: the callbacks run before the checkpoint's
and flush their files at the end of every epoch, so an epoch the
checkpoint holds is on disk. An epoch logged and then trained again after
a kill (stopped between its log and its checkpoint) is logged twice, with
the same values: the resumed run repeats it bit for bit.
"""

import keras

from keras_ssgd import _keras_compat as compat
from keras_ssgd.train.registry import METHODS
from keras_ssgd.train.runner import passes_per_step


def require_tensorboard():
    """Raises `ValueError` naming `--tensorboard` where TensorFlow, which
    Keras's TensorBoard callback writes through, is not installed."""
    try:
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as error:
        raise ValueError(
            "--tensorboard needs TensorFlow and TensorBoard installed "
            "(Keras's TensorBoard callback writes through tf.summary, on "
            f"any backend; pip install tensorboard): {error}. "
            "Received: --tensorboard"
        ) from None


class _Scalars(keras.callbacks.Callback):
    """Puts the noise level in effect and the passes per step into the
    epoch's logs for the TensorBoard callback after it (`add`), and takes
    them out again before the run's history sees them (`add=False`)."""

    KEYS = ("noise_level", "passes_per_step")

    def __init__(self, passes, add=True):
        super().__init__()
        self.passes = passes
        self.add = add

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if not self.add:
            for key in self.KEYS:
                logs.pop(key, None)
            return
        logs["noise_level"] = float(getattr(self.model, "noise_level", 0.0))
        logs["passes_per_step"] = float(self.passes)


class _Flush(keras.callbacks.Callback):
    """Flushes a `TensorBoard` callback's files at the end of every epoch
    (its writers flush every 2 minutes otherwise, and a kill loses what
    they hold)."""

    def __init__(self, tensorboard):
        super().__init__()
        self.tensorboard = tensorboard

    def on_epoch_end(self, epoch, logs=None):
        for writer in compat.tensorboard_writers(self.tensorboard):
            writer.flush()


def tensorboard_callbacks(log_dir, config, spec):
    """The callbacks that write one run's TensorBoard logs to `log_dir`
    (Keras's `TensorBoard`, with the noise level in effect and the passes
    per step as epoch scalars, flushed every epoch); the run's record is
    unchanged. They go before the run's checkpoint (`runner.train`'s
    `logging_callbacks`)."""
    passes = passes_per_step(METHODS[spec.method], config.phase_plan,
                             config.every)
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(log_dir))
    return [
        _Scalars(passes),
        tensorboard,
        _Flush(tensorboard),
        _Scalars(passes, add=False),
    ]
