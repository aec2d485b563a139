"""`SymmetricSGDModel`: a `keras.Model` whose `fit()` runs S-SGD."""

import keras
import numpy as np
from keras import ops

from keras_ssgd import backends
from keras_ssgd import filters
from keras_ssgd import gradients as gradients_lib
from keras_ssgd import noise as noise_lib
from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.perturbed import _flat_tensors


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SymmetricSGDModel(PerturbedModel):
    """A Keras model trained with Symmetrical SGD (S-SGD).

    At every training step, for each selected variable `W` (the kernels by
    default) a fresh random direction is drawn and scaled to a fixed length,
    `n = noise_level * ||W|| * u / ||u||`, with `u` standard normal (the
    direction is uniform on the sphere) or, with
    `noise_distribution="rademacher"`, random signs (`u` in `{-1, +1}^d`,
    every element of `n` of the same magnitude). The loss and gradients
    are measured at `W + n` and at `W - n`, the two gradients are averaged,
    and the compiled optimizer updates the master weights `W` (paper
    Eq. 3):

        W <- W - lr * (grad L(W + n) + grad L(W - n)) / 2

    The two perturbed passes are computed functionally (`keras.StatelessScope`
    maps each variable to `W +- n` while the variables keep holding `W`), so
    nothing has to be restored and `W` never drifts by rounding. By default
    biases, BatchNorm parameters and all other rank-1 variables are not
    perturbed; a `noise_filter` that selects them (the shipped
    `keras_ssgd.filters.all_trainable`, or one of your own) perturbs them
    too.

    Use it like `keras.Model`: with the functional API, by subclassing, or
    through `keras_ssgd.wrap(model)` for an existing model. A subclass with
    a `train_step` of its own (GANs, VAEs) runs S-SGD inside it by taking
    the step's gradient from `symmetric_gradients` (TensorFlow, PyTorch)
    or `symmetric_value_and_grad` (JAX). `evaluate()` and
    `predict()` are Keras's own and use the clean master weights.

    What happens in one step:
    - `noise_level == 0`: Keras's own `train_step`, so the model trains
      exactly as `keras.Model` (see `PerturbedModel`), whatever
      `split_batch` is. Changing the level (`NoiseSchedule`) never retraces
      the perturbed step.
    - The reported `loss` is the mean of the two perturbed losses; compiled
      metrics are updated with the predictions of both passes.
    - Mixed precision: each pass's loss is scaled by the optimizer, the two
      scaled gradients are averaged, and `LossScaleOptimizer` unscales once.
    - A perturbed step whose loss is not finite (on either pass) leaves every
      trainable variable and the optimizer state untouched; BatchNorm
      statistics are still updated by the passes. The non-finite loss is
      reported, so `keras.callbacks.TerminateOnNaN` stops training.
    - Noise directions are a function of `seed` and the optimizer's step
      counter, so a run restored from a checkpoint (e.g. by
      `keras.callbacks.BackupAndRestore`) continues the same noise sequence.

    The split form (`split_batch=True`) costs one pass over the batch, as
    plain SGD does. It draws the same `n` as full S-SGD (same seed stream,
    same filter) and measures the first half of the batch at `W + n` and the
    second half at `W - n`, as two devices of a data-parallel run would each
    measure their share of the batch at one of the two points (the paper
    does not use this form: it is Eq. 3 with the per-device batches of its
    data-parallel runs, Section 4.3, put on one device). With halves
    of `m1` and `m2` examples (`m1 = ceil(m / 2)`, the extra example of an
    odd batch goes to the `W + n` half):

        W <- W - lr * (m1 * grad L1(W + n) + m2 * grad L2(W - n)) / m

    and the reported loss is `(m1 * L1 + m2 * L2) / m`. With Keras's default
    loss reduction (`"sum_over_batch_size"`, also `"mean"`) `L1` and `L2`
    are the halves' mean losses, so this is the mean over the batch of each
    example's loss at the point it was measured, with or without sample
    weights. With `"mean_with_sample_weight"` each half is divided by its own
    sum of weights, so the result is the size-weighted mean of the halves'
    weighted means (the batch's weighted mean only when both halves carry
    the same mean weight). With `"sum"` it is the size-weighted mean of the
    halves' sums, about half the batch sum: scale the learning rate by two
    to match a `"sum"` step of full S-SGD. Losses that layers add
    (regularizers, `add_loss`) are counted in each half's loss, so they are
    weighted `m1 / m` at `W + n` and `m2 / m` at `W - n`. In the split form:
    - Each half runs in training mode on its own: BatchNorm normalises each
      half with that half's batch statistics, as each device does in the
      paper's multi-GPU runs (Section 4.3), and `batchnorm_update` applies
      as in full S-SGD (`"both"`: the `W + n` half, then the `W - n` half
      update the moving statistics in turn; `"first"`: only the `W + n`
      half).
    - Compiled metrics see each example once, with the prediction of the
      half it was in.
    - A batch needs two examples or more, one per half (one half of a batch
      of one would be empty). The model's first split step refuses a batch
      of one with a `ValueError` (`batch_size=1` is a mistake with this
      form). A batch of one after that, the last partial batch of an epoch,
      has its one example measured at both `W + n` and `W - n` (the full
      S-SGD step on it), never NaN. So does a batch of one in a step that
      TensorFlow traced with an unknown batch size (a dataset whose last
      batch is smaller), since such a step cannot see the size when it is
      traced: on TensorFlow with such a dataset, `batch_size=1` is not
      refused, and every step is then full S-SGD on one example.
    - Stateful RNNs are refused (a `ValueError`): their state runs along the
      batch dimension from one batch to the next, so a half batch cannot
      carry it.
    - Mixed precision, sample and class weights, the non-finite check and a
      `gradient_reducer` (Horovod) work as in full S-SGD: the reducer gets
      the combined gradient, once per step.
    - In data-parallel training the halves can be the workers' shards (the
      pair form, `keras_ssgd.distributed.pairs`): workers `2k` and `2k + 1`
      measure their whole shards at `W + n` and `W - n`, and the engine's
      gradient average is the split step on their combined batch.

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
            turn, as two towers of plain TensorFlow training would;
            `"first"` keeps only the update of the `W + n` pass. Both
            passes normalise with their own batch statistics either way.
            `"both"` is this package's choice: the paper does not say how
            the statistics are updated across the two passes. Defaults to
            `"both"`.
        seed: int or `None`. Seed of the noise directions. With `None` a seed
            is drawn from Python's `random` module (which
            `keras.utils.set_random_seed` seeds). Defaults to `None`.
        noise_distribution: `"gaussian"` or `"rademacher"`, the
            distribution of the noise direction `u`; the length of `n` is
            `noise_level * ||W||` exactly with either. `"gaussian"`: `u`
            standard normal, a direction uniform on the sphere (the paper
            fixes only the length). `"rademacher"`: independent random signs,
            a uniformly chosen vertex of the cube: mean 0 and covariance
            proportional to the identity as the Gaussian, but not rotation
            invariant. On a CPU the Gaussian draw costs about as much as a
            plain step of a dense model (0.67M normal numbers for a
            784-512-512-10 MLP), which the split form feels most; the
            Rademacher draw takes 16 signs from each random integer and is
            cheaper than the Gaussian one on TensorFlow and JAX. The
            measured figures, per backend, are in the measured figures page
            (`docs/measured.md`, "Step time and memory"), written by
            `experiments/benchmarks/noise_cost.py`. No accuracy difference
            was shown on MNIST-1D (split S-SGD at level 0.2, 5 seeds). The
            two give different noise streams from the same
            seed; either is a function of `(seed, step)`. Read-only after
            construction. Defaults to `"gaussian"`.
        split_batch: bool. `False`: full S-SGD, both points measured on the
            whole batch (two passes per step). `True`: the split form, the
            first half of the batch measured at `W + n` and the second at
            `W - n` (one pass per step; see above). Assignable between
            steps (`NoiseSchedule` switches it for the `H` phases of a
            plan); each form's step is traced once. Defaults to
            `False`.
        **kwargs: passed to `keras.Model` (`inputs`, `outputs`, `name`, ...).

    Raises:
        TypeError: `split_batch` is not a bool.
        ValueError: `noise_distribution` is not `"gaussian"` or
            `"rademacher"`.
        ValueError: `split_batch=True` for a model with a stateful RNN
            (here, or at the first step for a model whose layers are not
            known yet), or for a batch of one example at the model's first
            split step.

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
    x_train = np.random.rand(64, 32, 32, 3)  # stand-ins for real images
    y_train = np.random.randint(0, 10, size=64)
    model.fit(x_train, y_train, epochs=2, verbose=0)

    # The split form, at the cost of plain SGD (same layers, so the same
    # weights; `keras_ssgd.wrap(model, split_batch=True)` does the same):
    split = keras_ssgd.SymmetricSGDModel(
        inputs, outputs, noise_level=0.4, split_batch=True
    )
    ```

    Reference:
    - Sung, Choi, Park, Choi and Shin, "S-SGD: Symmetrical Stochastic
      Gradient Descent for Reaching Flat Minima in Deep Neural Network
      Training", Section 3, Eq. 3 (the step), Section 4.3 (per-device
      BatchNorm statistics in data-parallel training).
    """

    runs_per_device = True

    def __init__(
        self, *args, split_batch=False, noise_distribution="gaussian", **kwargs
    ):
        split_batch = _check_split_batch(split_batch)
        noise_lib.check_distribution(noise_distribution, "noise_distribution")
        super().__init__(*args, **kwargs)
        self._split_batch = split_batch
        self._noise_distribution = noise_distribution
        # Set by `NoiseSchedule` in the `H` phases of a plan: the split form
        # for those epochs, whatever `split_batch` says.
        self._phase_split = False
        self._split_traced = False  # a split step was traced (`_halves`)
        if split_batch:
            self._refuse_stateful(split_batch)

    @property
    def split_batch(self):
        """Whether the perturbed step is the split form (a bool).

        Assignable between steps; each form's step is traced once.
        """
        return self._split_batch

    @split_batch.setter
    def split_batch(self, value):
        value = _check_split_batch(value)
        if value:
            self._refuse_stateful(value)
        self._split_batch = value

    @property
    def noise_distribution(self):
        """The distribution of the noise directions, `"gaussian"` or
        `"rademacher"` (read-only: it is part of the traced step)."""
        return self._noise_distribution

    @property
    def passes(self):
        """Forward and backward passes over the batch per perturbed step:
        2 for S-SGD, 1 for its split form (plain SGD's cost)."""
        return 1 if self._split_now else 2

    @property
    def _split_now(self):
        """The form the next perturbed step runs: `split_batch`, or a
        plan's `H` phase."""
        return self._split_batch or self._phase_split

    def _set_phase_split(self, split):
        """`NoiseSchedule`: `True` in an `H` phase (the split form whatever
        `split_batch` is), `False` to go back to the model's own form."""
        split = bool(split)
        if split:
            self._refuse_stateful(split, phase=True)
        self._phase_split = split

    # S-SGD inside a `train_step` of your own.

    def symmetric_gradients(self, loss_fn, variables=None, optimizer=None):
        """S-SGD's loss and gradients of `loss_fn`, for your own
        `train_step` (TensorFlow and PyTorch).

        Where `keras.Model`'s guides take the gradient of a loss with
        `tf.GradientTape` or `loss.backward()`, call this instead: it
        draws `n` for the variables the model's `noise_filter` selects
        among `variables` (`||n|| = noise_level * ||W||`, a function of
        `(seed, step)`), calls `loss_fn` at `W + n` and at `W - n` without
        writing the variables, and returns the mean loss and the mean
        gradient (paper Eq. 3). The noise level, its schedule
        (`NoiseSchedule`), the filter, the seed and `noise_distribution`
        are the model's. At level 0 it is the plain gradient, computed as
        the guides compute it, so the step is the plain step bit for bit.

        Non-trainable state the passes change (BatchNorm statistics) is
        written back as `batchnorm_update` says; metric updates belong
        after the call, in the step. `split_batch` does not apply (the
        batch is `loss_fn`'s business).

        Args:
            loss_fn: callable taking no argument and returning the loss, a
                scalar, computed from the model's variables (for example
                `lambda: self.compute_loss(y=y, y_pred=self(x,
                training=True))`).
            variables: the trainable variables to differentiate, in the
                order of the returned gradients. Defaults to `None`, the
                model's `trainable_variables`. Only those the filter
                selects get noise (a GAN's generator step passes the
                generator's variables: the discriminator is not
                perturbed).
            optimizer: the optimizer whose step counter positions the
                noise stream (the one that applies these gradients).
                Defaults to `None`, the model's `optimizer`.

        Returns:
            `(loss, gradients)`, the gradients aligned with `variables`.

        Raises:
            ValueError: on the JAX backend (use
                `symmetric_value_and_grad`), or without an optimizer.

        Example:

        ```python
        class MyModel(keras_ssgd.SymmetricSGDModel):
            def train_step(self, data):
                x, y = data

                def loss_fn():
                    return self.compute_loss(
                        y=y, y_pred=self(x, training=True)
                    )

                loss, gradients = self.symmetric_gradients(loss_fn)
                self.optimizer.apply(gradients, self.trainable_variables)
                return {"loss": loss}
        ```

        Reference:
        - Sung et al., "S-SGD", Eq. 3.
        """
        backends.require(
            "symmetric_gradients (a stateful train_step)",
            "symmetric_gradients(...) (on JAX: symmetric_value_and_grad)",
            backends=("tensorflow", "torch"),
        )
        variables = (
            list(self.trainable_variables) if variables is None
            else list(variables)
        )
        optimizer = self._custom_optimizer(optimizer, "symmetric_gradients")
        step = backends.current()
        noisy = self._noise_targets(variables)
        if not self._noisy() or not noisy:
            return step.loss_and_gradients(loss_fn, variables)
        weights = [v.value for v in noisy]
        noise = noise_lib.symmetric_noise(
            weights, self._noise.level, self._noise.generator(optimizer),
            distribution=self._noise_distribution,
        )
        both = self.batchnorm_update == "both"
        losses, gradients = [], []
        for point in (_Point(None, 1.0, 0.5, True),
                      _Point(None, -1.0, 0.5, both)):
            if gradients:
                values = step.after(
                    _flat_tensors(gradients[-1]), point.values, weights, noise
                )
            else:
                values = point.values(weights, noise)
            loss, grads, new_value = step.loss_and_gradients_at(
                loss_fn, variables, noisy, values
            )
            self._write_back(new_value, point.keep_statistics)
            losses.append(loss)
            gradients.append(grads)
        return gradients_lib.combine(losses, [0.5, 0.5]), [
            gradients_lib.combine(list(pair), [0.5, 0.5])
            for pair in zip(*gradients)
        ]

    def symmetric_value_and_grad(
        self, fun, has_aux=False, variables=None, optimizer=None
    ):
        """S-SGD's `jax.value_and_grad`, for your own stateless
        `train_step` (JAX).

        Where Keras's JAX guide writes `jax.value_and_grad(fun,
        has_aux=...)` over a function of the trainable values, write
        `self.symmetric_value_and_grad(fun, has_aux=...)`: the returned
        function takes the same arguments plus `optimizer_variables=` (the
        optimizer's state from `train_step`'s `state`, whose step counter
        positions the noise stream), evaluates `fun` at `W + n` and at
        `W - n` (`n` drawn for the variables the model's `noise_filter`
        selects among `variables`, `||n|| = noise_level * ||W||`, a
        function of `(seed, step)`), and returns the mean value and the
        mean gradient. At level 0 it is `jax.value_and_grad(fun)` itself.

        The level is read when the step is traced: changing it
        (`NoiseSchedule`) traces the step again, once per level.

        Args:
            fun: `fun(values, *args, **kwargs)`, `values` aligned with
                `variables`; returns the loss, or `(loss, aux)` with
                `has_aux`.
            has_aux: bool. With `True` the returned function gives
                `((loss, (aux_plus, aux_minus)), gradients)`: the aux of
                both passes (at level 0, `fun`'s own aux twice). Defaults
                to `False`.
            variables: the variables `values` stand for. Defaults to
                `None`, the model's `trainable_variables`.
            optimizer: the optimizer whose state `optimizer_variables`
                holds. Defaults to `None`, the model's `optimizer`.

        Returns:
            A function `(values, *args, optimizer_variables, **kwargs) ->
            (value, gradients)`.

        Example:

        <!-- example: skip the JAX backend's stateless train_step. -->

        ```python
        def train_step(self, state, data):
            trainable, non_trainable, optimizer_variables, metrics = state
            x, y = data

            def fun(trainable, non_trainable):
                y_pred, non_trainable = self.stateless_call(
                    trainable, non_trainable, x, training=True
                )
                return self.compute_loss(y=y, y_pred=y_pred), non_trainable

            grad_fn = self.symmetric_value_and_grad(fun, has_aux=True)
            (loss, (_, non_trainable)), grads = grad_fn(
                trainable, non_trainable,
                optimizer_variables=optimizer_variables,
            )
            trainable, optimizer_variables = self.optimizer.stateless_apply(
                optimizer_variables, grads, trainable
            )
            ...
        ```

        Reference:
        - Sung et al., "S-SGD", Eq. 3.
        """
        backends.require(
            "symmetric_value_and_grad (a stateless train_step)",
            "symmetric_value_and_grad(...) (on TensorFlow and PyTorch: "
            "symmetric_gradients)",
            backends=("jax",),
        )
        variables = (
            list(self.trainable_variables) if variables is None
            else list(variables)
        )
        optimizer = self._custom_optimizer(
            optimizer, "symmetric_value_and_grad"
        )
        plain = backends.current().value_and_grad(fun, has_aux=has_aux)

        def value_and_grad(values, *args, optimizer_variables, **kwargs):
            selected = {id(v) for v in self._noise_targets(variables)}
            positions = [
                i for i, v in enumerate(variables) if id(v) in selected
            ]
            if not self._noisy() or not positions:
                value, gradients = plain(values, *args, **kwargs)
                if has_aux:  # the structure of the perturbed step's
                    value = (value[0], (value[1], value[1]))
                return value, gradients
            iterations = [id(v) for v in optimizer.variables].index(
                id(optimizer.iterations)
            )
            weights = [values[i] for i in positions]
            counter = [(optimizer.iterations, optimizer_variables[iterations])]
            with keras.StatelessScope(state_mapping=counter):
                noise = noise_lib.symmetric_noise(
                    weights, self.noise_level,
                    self._noise.generator(optimizer),
                    distribution=self._noise_distribution,
                )
            outputs = []
            for point in (_Point(None, 1.0, 0.5, True),
                          _Point(None, -1.0, 0.5, True)):
                shifted = point.values(weights, noise)
                if outputs:
                    shifted = backends.current().after(
                        _flat_tensors(outputs[-1][1]), list, shifted
                    )
                moved = list(values)
                for i, value in zip(positions, shifted):
                    moved[i] = value
                outputs.append(plain(moved, *args, **kwargs))
            (plus, g_plus), (minus, g_minus) = outputs
            if has_aux:
                value = (
                    gradients_lib.combine([plus[0], minus[0]], [0.5, 0.5]),
                    (plus[1], minus[1]),
                )
            else:
                value = gradients_lib.combine([plus, minus], [0.5, 0.5])
            return value, [
                gradients_lib.combine([a, b], [0.5, 0.5])
                for a, b in zip(g_plus, g_minus)
            ]

        return value_and_grad

    def _noise_targets(self, variables):
        """The variables among `variables` that the filter selects."""
        selected = {
            id(v) for v in filters.select(
                self, self.noise_filter or self.default_noise_filter
            )
        }
        return [v for v in variables if id(v) in selected]

    def _custom_optimizer(self, optimizer, method):
        if optimizer is None:
            optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                f"`{method}` positions its noise stream at an optimizer's "
                f"step counter, and model '{self.name}' has none: compile "
                "it with an optimizer, or pass `optimizer=` (the one that "
                "applies the gradients). Received: optimizer=None"
            )
        return optimizer

    def _form(self):
        """The split form fixes the traced step: `per_branch` keeps one
        compiled step per form (a switch traces the new form once). A
        `train_step` of the user's own on JAX reads the level when it is
        traced (`symmetric_value_and_grad`): the level is part of it."""
        if self._split_now and self._sharing.pairs is not None:
            form = "pairs"
        else:
            form = self._split_now
        if self._runs_own_step() and backends.current().STATELESS:
            return (form, self.noise_level)
        return form

    def _stateful_layers(self):
        return [
            layer for layer in self._flatten_layers(include_self=False)
            if getattr(layer, "stateful", False)
        ]

    def _refuse_stateful(self, value, phase=False):
        """A `ValueError` naming `split_batch` if the model has a stateful
        RNN (`phase`: asked by an `H` phase of a `NoiseSchedule` plan)."""
        layers = self._stateful_layers()
        if not layers:
            return
        asked = "an `H` phase of the plan" if phase else "the model"
        raise ValueError(
            "Argument `split_batch=True` cannot be used with a stateful "
            "RNN: its state runs along the batch dimension from one batch "
            "to the next, so half a batch cannot carry it. Use full S-SGD "
            "(`split_batch=False`, `S` phases). Received: "
            f"split_batch={value!r} (from {asked}) for model '{self.name}' "
            f"with stateful layers {[layer.name for layer in layers]}"
        )

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        """Loss and gradients of S-SGD: perturb, measure, restore."""
        points, merge = self._points(x, y, sample_weight)
        # 1. Perturb: a fresh direction per variable, ||n|| = level * ||W||.
        weights = [v.value for v in noise_variables]
        noise = noise_lib.symmetric_noise(
            weights, self._noise.level, self._noise_seed(),
            distribution=self._noise_distribution,
        )
        # 2. Measure each point (functional: W is not written). A point
        # starts once the previous point's gradients exist, so two passes
        # never hold their activations in memory at the same time.
        losses, gradients, predictions = [], [], []
        for point in points:
            if gradients:
                values = backends.current().after(
                    _flat_tensors(gradients[-1]), point.values, weights, noise
                )
            else:
                values = point.values(weights, noise)
            loss, grads, y_pred = self._measure(
                *point.data, noise_variables, values,
                keep_statistics=point.keep_statistics,
            )
            losses.append(loss)
            gradients.append(grads)
            predictions.append(y_pred)
        # 3. Restore: nothing to do, the variables still hold W.
        shares = [point.weight for point in points]
        loss = gradients_lib.combine(losses, shares)
        self._track(x, y, sample_weight, loss, merge(predictions))
        # 4. Update (done by the base class): W <- W - lr * the gradients'
        # weighted mean.
        return loss, [
            gradients_lib.combine(list(per_point), shares)
            for per_point in zip(*gradients)
        ]

    def _points(self, x, y, sample_weight):
        """Where this step measures: a list of `_Point`s, and how their
        predictions feed the compiled metrics (a function of the list).

        - Full S-SGD: the batch at `W + n` and at `W - n`, weights 1/2.
        - The split form: the first half of the batch at `W + n`, the
          second at `W - n`, each weighted by its share of the batch.
        - The pair form (`sharing.pairs`): the whole batch at this
          worker's point (`+1` on even workers, `-1` on odd ones), weight
          1; the engine's gradient average does the rest.
        """
        both = self.batchnorm_update == "both"
        if not self._split_now:
            return [
                _Point((x, y, sample_weight), 1.0, 0.5, True),
                _Point((x, y, sample_weight), -1.0, 0.5, both),
            ], list
        pairs = self._pairs()
        if pairs is not None:
            pairs.check()
            sign = pairs.sign()
            # A Python float where each worker traces its own step, a
            # traced +-1 where one step is traced for every device (which
            # keeps every device's statistics: the per-device step
            # combines them, `keras_ssgd.backends.jax_devices`).
            keep = not isinstance(sign, float) or sign > 0 or both
            return [_Point((x, y, sample_weight), sign, 1.0, keep)], list
        self._refuse_stateful(True)
        # A batch of one is refused at the first split step only: later it
        # is a last partial batch, measured at both points.
        first, second, size_first, size_second, size = _halves(
            x, y, sample_weight, refuse_one=not self._split_traced
        )
        self._split_traced = True
        # Each half's mean weighted by its share of the batch: the batch
        # mean (see the class docstring for other reductions).
        total = size_first + size_second
        if isinstance(total, int):
            shares = size_first / total, size_second / total
        else:
            total = ops.cast(total, "float32")
            shares = (
                ops.cast(size_first, "float32") / total,
                ops.cast(size_second, "float32") / total,
            )

        def merge(predictions):
            # One prediction per example of the batch (a batch of one with
            # an unknown batch size measured its example twice: the first
            # is kept).
            return [keras.tree.map_structure(
                lambda a, b: ops.concatenate([a, b], axis=0)[:size],
                *predictions,
            )]

        return [
            _Point(first, 1.0, shares[0], True),
            _Point(second, -1.0, shares[1], both),
        ], merge

    def get_config(self):
        config = super().get_config()
        config["split_batch"] = self.split_batch
        config["noise_distribution"] = self.noise_distribution
        return config


class _Point:
    """One measurement of a step: a batch (`(x, y, sample_weight)`, or a
    slice of it), a sign (the point is `W + sign * n`) and a weight (its
    share of the step's loss and gradient). `keep_statistics`: whether the
    pass's BatchNorm moving statistics are kept."""

    def __init__(self, data, sign, weight, keep_statistics):
        self.data = data
        self.sign = sign
        self.weight = weight
        self.keep_statistics = keep_statistics

    def values(self, weights, noise):
        """The perturbed values `W + sign * n` of the noise variables."""
        if isinstance(self.sign, float):
            if self.sign > 0:
                return [w + n for w, n in zip(weights, noise)]
            return [w - n for w, n in zip(weights, noise)]
        return [
            w + ops.cast(self.sign, w.dtype) * n
            for w, n in zip(weights, noise)
        ]


def _check_split_batch(value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            "Argument `split_batch` must be a bool. Received: "
            f"split_batch={value!r} (of type {type(value).__name__})"
        )
    return bool(value)


def _halves(x, y, sample_weight, refuse_one):
    """The two halves of a batch, and their sizes.

    Returns `(first, second, size_first, size_second, size)`: `first` and
    `second` are `(x, y, sample_weight)` triples sliced along the batch
    dimension, the first holding `ceil(size / 2)` examples. Sizes are
    Python ints where the batch size is known when tracing, else scalar
    tensors. A batch of one raises with `refuse_one` (the model's first
    split step) and is otherwise its own second half too: its example is
    measured at both points (see `SymmetricSGDModel`).
    """
    # From the targets if every input is None: the model's own call then
    # raises Keras's error for a required input.
    size = backends.batch_size(x, y, sample_weight)
    if isinstance(size, (int, np.integer)):
        size = int(size)
        if size < 2 and refuse_one:
            raise ValueError(
                "Argument `split_batch=True` needs batches of 2 examples or "
                "more: the first half of a batch is measured at W + n and "
                "the second at W - n, and one half of a batch of one would "
                "be empty. Use a batch size >= 2, or `split_batch=False` "
                "(full S-SGD). Received: split_batch=True with a batch of "
                f"{size} example(s) (batch size {size})"
            )
        size_first = (size + 1) // 2
        size_second = max(size - size_first, 1)
    else:
        size_first = (size + 1) // 2
        size_second = ops.maximum(size - size_first, 1)
    start_second = size - size_second

    def cut(start, stop):
        return keras.tree.map_structure(
            lambda t: backends.rows(t, start, size if stop is None else stop),
            (x, y, sample_weight),
        )

    return (
        cut(0, size_first), cut(start_second, None),
        size_first, size_second, size,
    )
