"""`SymmetricSGDModel`: a `keras.Model` whose `fit()` runs S-SGD."""

import random
import warnings

import keras
import tensorflow as tf
from keras import ops
from keras.src.models.functional import Functional
from keras.src.models.model import functional_init_arguments
from keras.src.saving import object_registration

from keras_ssgd import filters
from keras_ssgd import noise as noise_lib
from keras_ssgd.gradients import mean_gradients
from keras_ssgd.validation import check_choice
from keras_ssgd.validation import check_noise_level
from keras_ssgd.validation import check_seed

BATCHNORM_UPDATES = ("both", "first")


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SymmetricSGDModel(keras.Model):
    """A Keras model trained with Symmetrical SGD (S-SGD).

    At every training step, for each selected variable `W` (the kernels by
    default) a fresh random direction is drawn and scaled to a fixed length,
    `n = noise_level * ||W|| * u / ||u||`. The loss and gradients are measured
    at `W + n` and at `W - n`, the two gradients are averaged, and the
    compiled optimizer updates the master weights `W` (paper Eq. 3):

        W <- W - lr * (grad L(W + n) + grad L(W - n)) / 2

    The two perturbed passes are computed functionally (`keras.StatelessScope`
    maps each variable to `W +- n` while the variables keep holding `W`), so
    nothing has to be restored and `W` never drifts by rounding. Biases,
    BatchNorm parameters and all other rank-1 variables are not perturbed
    unless a custom `noise_filter` selects them.

    Use it like `keras.Model`: with the functional API, by subclassing, or
    through `keras_ssgd.wrap(model)` for an existing model. `evaluate()` and
    `predict()` are Keras's own and use the clean master weights.

    What happens in one step:
    - `noise_level == 0`: one plain pass (bit-identical to `keras.Model.fit`
      while the loss is finite). The level is read from a variable inside the step,
      so `NoiseSchedule` can switch S-SGD on and off without retracing.
    - The reported `loss` is the mean of the two perturbed losses; compiled
      metrics are updated with the predictions of both passes.
    - Mixed precision: each pass's loss is scaled by the optimizer, the two
      scaled gradients are averaged, and `LossScaleOptimizer` unscales once.
    - A step whose loss is not finite (on either pass, at any level) leaves every
      trainable variable and the optimizer state untouched; BatchNorm
      statistics are still updated by the passes. The non-finite loss is
      reported, so `keras.callbacks.TerminateOnNaN` stops training.
    - Noise directions are a function of `seed` and the optimizer's step
      counter, so a run restored from a checkpoint (e.g. by
      `keras.callbacks.BackupAndRestore`) continues the same noise sequence.

    Args:
        noise_level: float >= 0. Length of the noise relative to each
            variable's L2 norm. The paper's best levels are 0.4 to 0.5 for
            CIFAR ResNets. Defaults to `0.5`.
        noise_filter: callable `variable -> bool` choosing the perturbed
            trainable variables, or the registered name of one. See
            `keras_ssgd.filters`. Defaults to `None`, meaning
            `keras_ssgd.filters.kernels` (every variable of rank >= 2).
        batchnorm_update: `"both"` or `"first"`. How the model's
            non-trainable weights (BatchNorm moving statistics) are updated
            across the two passes: `"both"` lets each pass update them in
            turn, as two towers of plain TensorFlow training would (the
            paper's setting); `"first"` keeps only the update of the `W + n`
            pass. Both passes normalise with their own batch statistics
            either way. Defaults to `"both"`.
        seed: int or `None`. Seed of the noise directions. With `None` a seed
            is drawn from Python's `random` module (which
            `keras.utils.set_random_seed` seeds). Defaults to `None`.
        **kwargs: passed to `keras.Model` (`inputs`, `outputs`, `name`, ...).

    Example:

    ```python
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras_ssgd.SymmetricSGDModel(inputs, outputs, noise_level=0.4)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=10)
    ```

    Reference:
    - Sung, Choi, Park, Choi and Shin, "S-SGD: Symmetrical Stochastic
      Gradient Descent for Reaching Flat Minima in Deep Neural Network
      Training", Section 3, Eq. 3.
    """

    def __new__(cls, *args, **kwargs):
        if functional_init_arguments(args, kwargs):
            cls = _functional_variant(cls)
        return super().__new__(cls, *args, **kwargs)

    def __init__(
        self,
        *args,
        noise_level=0.5,
        noise_filter=None,
        batchnorm_update="both",
        seed=None,
        **kwargs,
    ):
        noise_level = check_noise_level(noise_level)
        noise_filter = _resolve_filter(noise_filter)
        check_choice(batchnorm_update, "batchnorm_update", BATCHNORM_UPDATES)
        seed = check_seed(seed)
        super().__init__(*args, **kwargs)
        self.noise_filter = noise_filter
        self.batchnorm_update = batchnorm_update
        self.seed = seed
        self._noise = _NoiseState(
            noise_level, seed if seed is not None else random.randrange(2**31)
        )

    @property
    def noise_level(self):
        """The current noise level, a float; assignable between steps."""
        return float(ops.convert_to_numpy(self._noise.level))

    @noise_level.setter
    def noise_level(self, value):
        self._noise.level.assign(check_noise_level(value))

    @property
    def noise_variables(self):
        """The trainable variables that S-SGD perturbs (model must be built).

        Raises:
            ValueError: an explicit `noise_filter` selects no variable.
        """
        if not self.built:
            raise ValueError(
                f"Model '{self.name}' is not built yet, so it has no "
                "variables to choose from. Call it on a batch of data first."
            )
        selected = filters.select(self, self.noise_filter or filters.kernels)
        if not selected and self.noise_filter is not None:
            raise ValueError(
                "Argument `noise_filter` selects no trainable variable of "
                f"model '{self.name}'. Received: noise_filter="
                f"{_name_of(self.noise_filter)}; trainable variables: "
                f"{[v.path for v in self.trainable_variables]}"
            )
        return selected

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not all(layer.built for layer in self._flatten_layers()):
            self(x)  # A subclassed model creates its variables on first call.
        noise_variables = self.noise_variables
        if not noise_variables:
            warnings.warn(
                f"Model '{self.name}' has no variable of rank >= 2 to "
                "perturb: S-SGD trains it as plain SGD.",
                stacklevel=2,
            )
            return super().train_step(data)
        loss, gradients = _cond_with_none(
            self._noise.level > 0,
            lambda: self._symmetric_gradients(
                x, y, sample_weight, noise_variables
            ),
            lambda: self._plain_gradients(x, y, sample_weight),
        )
        self._apply_if_finite(gradients, ops.isfinite(loss))
        return self.get_metrics_result()

    def _symmetric_gradients(self, x, y, sample_weight, noise_variables):
        """Loss and gradients of S-SGD: perturb, measure, restore."""
        # 1. Perturb: a fresh direction per variable, ||n|| = level * ||W||.
        weights = [v.value for v in noise_variables]
        noise = noise_lib.symmetric_noise(
            weights, self._noise.level, self._noise.generator(self.optimizer)
        )
        # 2. Measure at W + n, then at W - n (functional: W is not written).
        loss_plus, grads_plus, y_plus = self._measure(
            x, y, sample_weight, noise_variables,
            [w + n for w, n in zip(weights, noise)],
            keep_statistics=True,
        )
        # The W - n pass starts once the W + n gradients exist, so the two
        # passes never hold their activations in memory at the same time.
        with tf.control_dependencies(_flat_tensors(grads_plus)):
            weights_minus = [w - n for w, n in zip(weights, noise)]
        loss_minus, grads_minus, y_minus = self._measure(
            x, y, sample_weight, noise_variables, weights_minus,
            keep_statistics=self.batchnorm_update == "both",
        )
        # 3. Restore: nothing to do, the variables still hold W.
        loss = (loss_plus + loss_minus) * 0.5
        self._track(x, y, sample_weight, loss, [y_plus, y_minus])
        return loss, mean_gradients(grads_plus, grads_minus)

    def _measure(
        self, x, y, sample_weight, noise_variables, values, keep_statistics
    ):
        """Loss, gradients and predictions with `noise_variables` at `values`.

        Non-trainable state the pass changes (BatchNorm statistics, dropout
        seeds, loss-metric state) is written back afterwards; with
        `keep_statistics=False` the model's non-trainable weights are not.
        """
        mapping = list(zip(noise_variables, values))
        with tf.GradientTape() as tape:
            tape.watch(values)
            with keras.StatelessScope(state_mapping=mapping) as scope:
                y_pred = self(x, training=True)
                loss = self.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                    training=True,
                )
            scaled_loss = self.optimizer.scale_loss(loss)
        perturbed = {id(v): value for v, value in mapping}
        targets = [perturbed.get(id(v), v) for v in self.trainable_variables]
        gradients = tape.gradient(scaled_loss, targets)
        self._write_back(scope, keep_statistics)
        return loss, gradients, y_pred

    def _write_back(self, scope, keep_statistics):
        skip = set()
        if not keep_statistics:
            skip = {id(v) for v in self.non_trainable_weights}
        seen = set()
        for v in self.non_trainable_variables + self.metrics_variables:
            if id(v) in seen or id(v) in skip:
                continue
            seen.add(id(v))
            value = scope.get_current_value(v)
            if value is not None:
                v.assign(value)

    def _plain_gradients(self, x, y, sample_weight):
        """Loss and gradients of the plain Keras step (noise level 0)."""
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                training=True,
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self._track(x, y, sample_weight, loss, [y_pred])
        return loss, gradients

    def _track(self, x, y, sample_weight, loss, predictions):
        """Updates the loss tracker and the compiled metrics."""
        # Keras's own `train_step` feeds `_loss_tracker` the same way.
        self._loss_tracker.update_state(
            _unscale_for_distribution(loss),
            sample_weight=ops.shape(keras.tree.flatten(x)[0])[0],
        )
        for y_pred in predictions:
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _apply_if_finite(self, gradients, finite):
        """4. Update W with the gradients, unless the loss was not finite.

        The optimizer's update synchronises replicas under `tf.distribute`,
        which a conditional in replica context cannot hold; there the
        decision is taken once, in cross-replica context (as Keras's
        `LossScaleOptimizer` does), skipping the step if any replica's loss
        was not finite.
        """
        variables = self.trainable_variables

        def apply(gradients):
            self.optimizer.apply_gradients(zip(gradients, variables))

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            ops.cond(finite, lambda: apply(gradients), lambda: None)
            return

        def cross_replica(strategy, gradients, finite):
            all_finite = ops.all(
                ops.stack(strategy.experimental_local_results(finite))
            )
            ops.cond(
                all_finite,
                lambda: strategy.extended.call_for_each_replica(
                    apply, args=(gradients,)
                ),
                lambda: None,
            )

        tf.distribute.get_replica_context().merge_call(
            cross_replica, args=(gradients, finite)
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "noise_level": self.noise_level,
                "noise_filter": (
                    None
                    if self.noise_filter is None
                    else keras.saving.serialize_keras_object(self.noise_filter)
                ),
                "batchnorm_update": self.batchnorm_update,
                "seed": self.seed,
            }
        )
        return config


def _functional_variant(cls):
    """`cls` with `Functional` mixed in, for construction from a layer graph.

    Keras would otherwise rewrite the bases of `cls` (and of every parent up to
    `keras.Model`) in place the first time it is built from `inputs` and
    `outputs`, which breaks later subclassed use of the same class. The
    variant keeps the name and registered name of `cls`, so saved models
    name `cls` and load through it.
    """
    if issubclass(cls, Functional):
        return cls
    if cls not in _FUNCTIONAL_VARIANTS:
        variant = type(
            cls.__name__,
            (cls, Functional),
            {"__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
        object_registration.GLOBAL_CUSTOM_NAMES[variant] = (
            keras.saving.get_registered_name(cls)
        )
        _FUNCTIONAL_VARIANTS[cls] = variant
    return _FUNCTIONAL_VARIANTS[cls]


_FUNCTIONAL_VARIANTS = {}


class _NoiseState:
    """The noise level and the noise random stream of a model.

    Kept outside Keras's attribute tracking on purpose: these variables are
    not weights, so a wrapped model keeps the `weights` list of the model it
    wraps and `get_weights()`/`set_weights()` stay interchangeable.
    """

    def __init__(self, level, seed):
        self.level = keras.Variable(
            level, dtype="float32", trainable=False, name="noise_level"
        )
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed, name="noise_seed")

    def generator(self, optimizer):
        """A seed generator positioned at `[seed, optimizer.iterations]`.

        The directions of step `t` depend only on `(seed, t)`: a checkpoint,
        which saves the optimizer's step counter, resumes the same sequence.
        """
        state = self._generator.state
        step = ops.cast(optimizer.iterations, state.dtype)
        state.assign(ops.stack([ops.cast(self.seed, state.dtype), step]))
        return self._generator


def _cond_with_none(pred, true_fn, false_fn):
    """`ops.cond` over `(loss, gradients)` where some gradients may be None.

    `None` gradients (variables the loss does not reach) cannot cross a
    conditional: they are left out of it and put back afterwards, so the
    optimizer skips those variables exactly as in plain Keras training.
    Both branches reach the same variables.
    """
    missing = []

    def without_none(fn):
        def branch():
            loss, gradients = fn()
            missing[:] = [g is None for g in gradients]
            return loss, [g for g in gradients if g is not None]

        return branch

    loss, present = ops.cond(pred, without_none(true_fn), without_none(false_fn))
    present = iter(present)
    return loss, [None if m else next(present) for m in missing]


def _flat_tensors(gradients):
    """The tensors of a gradient list (sparse gradients give their values)."""
    return [getattr(g, "values", g) for g in gradients if g is not None]


def _unscale_for_distribution(loss):
    # Under tf.distribute Keras divides each replica's loss by the number of
    # replicas; the tracker reports the unscaled value, as Keras does.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss * ops.cast(replicas, loss.dtype)
    return loss


def _resolve_filter(noise_filter):
    if noise_filter is None or callable(noise_filter):
        return noise_filter
    if isinstance(noise_filter, (str, dict)):
        resolved = keras.saving.deserialize_keras_object(noise_filter)
        if callable(resolved):
            return resolved
    raise TypeError(
        "Argument `noise_filter` must be None, a callable "
        "`variable -> bool`, or the registered name of one. "
        f"Received: noise_filter={noise_filter!r}"
    )


def _name_of(fn):
    return getattr(fn, "__name__", repr(fn))
