"""Resetting the states of stateful RNNs at epoch and evaluation starts."""

import keras


def stateful_layers(model):
    """The stateful recurrent layers of `model`, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(stateful_layers(layer))
        elif getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
            found.append(layer)
    return found


def reset_states(model):
    """Sets the states of every stateful RNN of `model` to zeros."""
    for layer in stateful_layers(model):
        layer.reset_states()


class ResetStates(keras.callbacks.Callback):
    """Zeroes the stateful RNN states at each epoch and each evaluation start.

    A stateful language model carries its state from one window to the
    next within a pass over the data; every pass over a split (a training
    epoch, the validation run at its end, an `evaluate()`) starts from
    zeros, as in Zaremba et al.'s reader.

    Example:

    <!-- example: skip
    needs the PTB windows and a stateful language model (see
    `keras_ssgd.tasks.ptb.training`).
    -->

    ```python
    model.fit(train_windows, epochs=55, validation_data=valid_windows,
              shuffle=False, callbacks=[ResetStates()])
    ```

    Reference:
    - Zaremba, Sutskever and Vinyals, "Recurrent Neural Network
      Regularization", arXiv:1409.2329.
    """

    def on_train_begin(self, logs=None):
        if not stateful_layers(self.model):
            raise ValueError(
                f"ResetStates needs a model with a stateful RNN layer; model "
                f"'{self.model.name}' has none."
            )

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)
