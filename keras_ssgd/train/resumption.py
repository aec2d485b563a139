"""A run that continues from a checkpoint written within an epoch.

Keras's `fit()` starts every epoch at its first batch, and
`keras.callbacks.BackupAndRestore` restores only the epoch (a partial
epoch is trained again on weights that already saw it). A run stopped `k`
batches into epoch `e` continues here in two `fit()` calls: the rest of
epoch `e` (batches `k`, `k + 1`, ... of its order, `Batches.rest_of`),
then epochs `e + 1` onwards. To the run's callbacks the two are one
training: they see its beginning once, before the first, and its end
once, after the last (`Part`). The epoch's running metrics are put back
by the checkpoint's callback when epoch `e` begins, so its logs are those
of the run never stopped. Keras's `fit()` also ends by finalizing the
optimizer's variables (an optimizer with `use_ema=True` puts its averages
into the weights): the first call skips that when the training goes on
after it.
"""

import contextlib

import keras

from keras_ssgd import _keras_compat as compat


class Part(keras.callbacks.Callback):
    """`callback` as one part of a training in several `fit()` calls sees
    it: every hook but the training's beginning (unless `begins`) and its
    end (unless `ends`).

    Args:
        callback: a `keras.callbacks.Callback`.
        begins: bool, whether this part begins the training.
        ends: bool, whether it ends it.
    """

    def __init__(self, callback, begins, ends):
        super().__init__()
        self.callback = callback
        self.begins = begins
        self.ends = ends

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_begin(self, logs=None):
        if self.begins:
            self.callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        if self.ends:
            self.callback.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.callback.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self.callback.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.callback.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        self.callback.on_test_begin(logs)

    def on_test_end(self, logs=None):
        self.callback.on_test_end(logs)

    def on_test_batch_begin(self, batch, logs=None):
        self.callback.on_test_batch_begin(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self.callback.on_test_batch_end(batch, logs)


def fit_from_within_an_epoch(model, train, epoch, skip, epochs, callbacks,
                             **fit_kwargs):
    """Trains `model` from batch `skip` of epoch `epoch` to the end of
    epoch `epochs - 1`, as `model.fit(train, epochs=epochs,
    initial_epoch=epoch, callbacks=callbacks, **fit_kwargs)` would from
    that batch.

    Args:
        model: a compiled `keras.Model`, its state put back (by a
            `checkpoint.Checkpointing` among `callbacks`).
        train: a `data.pipeline.Batches`.
        epoch: int, the epoch the run was stopped in (0-based).
        skip: int > 0, its batches already trained.
        epochs: int, the run's epochs.
        callbacks: the run's callbacks.
        **fit_kwargs: the rest of `fit()`'s arguments.

    Returns:
        The `History` of the last `fit()` call.
    """
    last = epoch + 1 >= epochs
    rest = train.rest_of(epoch, skip)
    # The epoch's running metrics are put back when it begins, before its
    # first step (`Checkpointing.on_epoch_begin`): they must exist by then.
    compat.build_metrics(model, rest[0])
    with contextlib.nullcontext() if last else _not_finalized(model):
        history = model.fit(
            rest, epochs=epoch + 1, initial_epoch=epoch,
            callbacks=[Part(c, begins=True, ends=last) for c in callbacks],
            **fit_kwargs,
        )
    if last:
        return history
    if model.stop_training:  # a callback stopped it: the training ends
        for callback in callbacks:
            callback.on_train_end()
        return history
    train.start_at(epoch + 1)
    return model.fit(
        train, epochs=epochs, initial_epoch=epoch + 1,
        callbacks=[Part(c, begins=False, ends=True) for c in callbacks],
        **fit_kwargs,
    )


@contextlib.contextmanager
def _not_finalized(model):
    """`model.optimizer.finalize_variable_values` does nothing inside: for
    a `fit()` call that does not end the training."""
    optimizer = model.optimizer
    optimizer.finalize_variable_values = lambda var_list: None
    try:
        yield
    finally:
        del vars(optimizer)["finalize_variable_values"]
