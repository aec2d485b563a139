"""`PerturbedModel`: the training step shared by S-SGD and its baselines.

A `PerturbedModel` is a `keras.Model` whose `train_step` measures the loss
and gradients at perturbed copies of some of its weights and updates the
master weights with them. The subclasses differ only in where they measure:

- `SymmetricSGDModel`: at `W + n` and `W - n`, averaged (S-SGD);
- `WeightNoiseModel`: at `W + n` (weight noise injection, paper Eq. 2);
- `SmoothOutModel`: at `W + u`, `u` uniform (SmoothOut);
- `DropConnectModel`: at `W * mask / (1 - rate)` (DropConnect);
- `SharpnessAwareModel`: at `W + rho * g / ||g||` (SAM);
- `AdaptiveSharpnessAwareModel`: at `W + rho * T^2 g / ||T g||` (ASAM).

With `every=k`, any of them perturbs one step in `k` only.

Every pass is computed functionally: `keras.StatelessScope` maps the selected
variables to their perturbed values while the variables keep holding `W`, so
nothing has to be restored and `W` never drifts by rounding.

The step is written once, in `keras.ops`; the backend-specific part (how
gradients are taken, how a conditional keeps its variable writes, how the
trainer passes state) is in `keras_ssgd.backends`.
"""

import functools
import math
import random
import warnings

import keras
from keras import ops

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends
from keras_ssgd import filters
from keras_ssgd import sharing as sharing_lib
from keras_ssgd.validation import check_choice
from keras_ssgd.validation import check_every
from keras_ssgd.validation import check_noise_level
from keras_ssgd.validation import check_seed

BATCHNORM_UPDATES = ("both", "first")


class PerturbedModel(keras.Model):
    """Base class of models trained on gradients at perturbed weights.

    Subclasses implement `_perturbed_gradients(x, y, sample_weight,
    variables)`, returning `(loss, gradients)` for every trainable variable,
    usually by calling `self._measure(...)` once per perturbed point. The base
    class does the rest, identically for every method:

    - `noise_level == 0` runs Keras's own `train_step`: level 0 is
      `keras.Model` by construction, on every backend (the compiled train
      function holds one traced step per branch, and the plain one is the
      graph Keras traces). The level's Python value picks the branch before
      each call; inside the perturbed branch it is read from a variable, so
      `NoiseSchedule` changes it without retracing.
    - In the perturbed step the update is skipped (trainable variables and
      optimizer state untouched) when the loss is not finite; the loss is
      still reported. At level 0 a non-finite loss is Keras's business,
      as in `keras.Model`.
    - Losses that layers add during `call` (`add_loss`, activity
      regularizers) are part of every pass's loss and gradient, and of the
      reported loss, as in Keras.
    - Random perturbations are a function of `seed` and the optimizer's step
      counter, so a checkpointed run resumes the same sequence.
    - With `every=k`, only one step in `k` perturbs (the steps whose index,
      the optimizer's step counter, is a multiple of `k`); the others are
      Keras's own step, at the cost of one pass. This is the naive
      interval baseline of the SAM literature (SAM every k steps, which
      LookSAM's paper compares with and shows to degrade; LookSAM itself
      also reuses the gradient component its full steps found): it costs
      `1 + (passes - 1) / k` passes per step. `every=1` perturbs every
      step; `every=math.inf` never does, which trains exactly as
      `keras.Model`.
    - Mixed precision, sample weights and `jit_compile` work as in
      `keras.Model`, on the TensorFlow, JAX and PyTorch backends;
      `tf.distribute.MirroredStrategy` and `gradient_reducer` (Horovod) on
      TensorFlow only.

    Args:
        noise_level: float >= 0, the perturbation size (its meaning is the
            subclass's; see `check_level`).
        noise_filter: callable `variable -> bool` choosing the perturbed
            trainable variables, or the registered name of one. `None` means
            the class's `default_noise_filter`.
        batchnorm_update: `"both"` or `"first"`: with several passes per
            step, whether every pass updates the non-trainable weights
            (BatchNorm moving statistics) or only the first.
        seed: int or `None`, the seed of the random perturbations. With
            `None` a seed is drawn from Python's `random` module (which
            `keras.utils.set_random_seed` seeds).
        every: int >= 1 or `math.inf`: perturb the steps whose index is a
            multiple of `every`, train plainly between them. Defaults to
            `1` (every step). Needs `steps_per_execution=1` when it is not
            1: the step's branch is picked before each execution.
        **kwargs: passed to `keras.Model` (`inputs`, `outputs`, `name`, ...).

    Reference:
    - Liu, Mai, Chen, Hsieh and You, "Towards Efficient and Scalable
      Sharpness-Aware Minimization" (LookSAM), CVPR 2022: SAM every k
      steps as its naive baseline.
    """

    default_noise_filter = staticmethod(filters.kernels)
    # Forward and backward passes per step, for cost accounting.
    passes = 1
    # The constructor argument that holds the level (`rho` for SAM, ...).
    level_argument = "noise_level"
    # Whether the per-device step (`keras_ssgd.backends.jax_devices`) can
    # run this method's passes: S-SGD's.
    runs_per_device = False

    # The branch of the step being traced: True (perturbed) or False
    # (plain); None outside a compiled step (see `_noisy`).
    _static_noisy = None

    def __init__(
        self,
        *args,
        noise_level=0.5,
        noise_filter=None,
        batchnorm_update="both",
        seed=None,
        every=1,
        **kwargs,
    ):
        backends.name()  # a clear error on a backend it cannot train with
        noise_level = self.check_level(noise_level, self.level_argument)
        every = check_every(every)
        noise_filter = _resolve_filter(noise_filter)
        check_choice(batchnorm_update, "batchnorm_update", BATCHNORM_UPDATES)
        seed = check_seed(seed)
        if compat.functional_init_arguments(args, kwargs):
            # Built from a layer graph (`cls(inputs, outputs)`, or a
            # subclass's `__init__` passing them on): this instance becomes
            # a `Functional` through a variant class of its own. Keras's
            # `Model.__init__` would instead rewrite the bases of every
            # class up to `keras.Model` in place, for the whole process.
            if not isinstance(self, compat.Functional):
                self.__class__ = _functional_variant(type(self))
            compat.Trainer.__init__(self)  # the backend's trainer
            compat.Functional.__init__(self, *args, **kwargs)
        else:
            super().__init__(*args, **kwargs)
        self.noise_filter = noise_filter
        self.batchnorm_update = batchnorm_update
        self.seed = seed
        self._every = every
        # The index of the next step, counted between executions of the
        # compiled step (`_perturbs_next`); `None`: read it from the
        # optimizer first.
        self._clock = _StepClock()
        self._noise = _NoiseState(
            noise_level, seed if seed is not None else random.randrange(2**31)
        )
        self._level_value = noise_level  # the Python float, for get_config
        self._gradient_reducer = None
        self._sharing = sharing_lib.StepSharing()
        # While the passes are traced on one device: that device, and the
        # predictions kept for the global metrics (`_device_passes`).
        self._trace = None
        self._carry = _RecurrentCarry()

    def __reduce__(self):
        # Keras pickles a model as its saved bytes, loaded back by
        # `_unpickle_model`; the functional variant class is not importable
        # by name, so the loader is taken from `keras.Model`.
        _, args = super().__reduce__()
        return keras.Model._unpickle_model, args

    @classmethod
    def _refuse_noise_level(cls, kwargs):
        """A clear error for `noise_level=` where the level has its own name
        (`rate`, `rho`): subclasses call it before passing theirs on."""
        if "noise_level" in kwargs:
            raise TypeError(
                f"{cls.__name__} takes its level as `{cls.level_argument}`, "
                f"not `noise_level`. Received: "
                f"noise_level={kwargs['noise_level']!r}"
            )

    @classmethod
    def check_level(cls, value, name="noise_level"):
        """Validates a noise level for this method; returns it as a float."""
        return check_noise_level(value, name)

    @property
    def noise_level(self):
        """The current noise level, a float; assignable between steps."""
        return self._level_value

    @noise_level.setter
    def noise_level(self, value):
        value = self.check_level(value, self.level_argument)
        self._noise.level.assign(value)
        self._level_value = value

    @property
    def every(self):
        """Perturb one step in `every` (an int >= 1, or `math.inf`:
        never); assignable between `fit()` calls."""
        return self._every

    @every.setter
    def every(self, value):
        self._every = check_every(value)

    @property
    def passes_per_step(self):
        """Forward and backward passes per step, on average: the method's
        `passes` on the perturbed steps, 1 on the others (`every`)."""
        if self._every == math.inf:
            return 1
        return 1 + (self.passes - 1) / self._every

    @property
    def noise_seed(self):
        """The seed the noise stream uses (set it before training).

        Defaults to `seed` (or the drawn seed); Horovod training offsets it by
        the rank so that ranks draw different directions.
        """
        return self._noise.seed

    @noise_seed.setter
    def noise_seed(self, value):
        self._noise.seed = check_seed(value, "noise_seed")

    @property
    def sharing(self):
        """How the step is shared across workers or devices, a
        `keras_ssgd.StepSharing`; the engines set it (`distribute()`,
        `pair_replicas()`).

        The default is one worker's step. Assigning another makes the next
        `fit()` trace the step anew.
        """
        return self._sharing

    @sharing.setter
    def sharing(self, value):
        if not isinstance(value, sharing_lib.StepSharing):
            raise TypeError(
                "`sharing` must be a keras_ssgd.StepSharing. Received: "
                f"sharing={value!r} (of type {type(value).__name__})"
            )
        self._sharing = value
        self.train_function = None  # the next fit() traces the new step

    @property
    def gradient_reducer(self):
        """`None`, or a callable run once per step before the update.

        It receives `(gradients, finite)`, the list of gradients (with
        `None` for unreached variables) and the local "loss is finite"
        flag, and returns them reduced across workers. One call per step
        with the already averaged gradient: the +- passes add no
        communication. `keras_ssgd.distributed.horovod.distribute()` sets
        it.
        """
        return self._gradient_reducer

    @gradient_reducer.setter
    def gradient_reducer(self, reducer):
        if reducer is not None:
            backends.require(
                "A gradient reducer (Horovod)", f"gradient_reducer={reducer!r}"
            )
        if reducer is not None and not callable(reducer):
            raise TypeError(
                "`gradient_reducer` must be None or a callable "
                "`(gradients, finite) -> (gradients, finite)`. Received: "
                f"{reducer!r}"
            )
        self._gradient_reducer = reducer
        if reducer is not None and getattr(self, "compiled", False):
            self._refuse_xla()

    def make_train_function(self, force=False):
        # Not in `compile()`: overriding that would stop Keras from
        # restoring the compile state when a saved model is loaded.
        if keras.distribution.distribution() is not None:
            # Keras 3's distribution API runs on JAX (TensorFlow's is a
            # prototype, PyTorch has none).
            backends.require(
                "keras.distribution (DataParallel, ModelParallel)",
                "keras.distribution.set_distribution("
                f"{type(keras.distribution.distribution()).__name__}(...))",
                backends=("jax",),
            )
        if self._gradient_reducer is not None:
            self._refuse_xla()
        if self._every != 1 and (self.steps_per_execution or 1) > 1:
            raise ValueError(
                f"Model '{self.name}': `every` other than 1 needs "
                "`steps_per_execution=1` in `compile()`, since each "
                "execution runs one branch of the step (perturbed or "
                f"plain). Received: every={self._every!r} with "
                f"steps_per_execution={self.steps_per_execution}"
            )
        # The count of the steps to come starts from the optimizer's step
        # counter, read now: `fit()` calls this before its first step, while
        # the variables hold the state on every backend (JAX moves it out
        # of them during `fit()`).
        self._clock.step = (
            None if self.optimizer is None or self._every == 1
            else int(ops.convert_to_numpy(self.optimizer.iterations))
        )
        return backends.current().make_train_function(
            self, super().make_train_function, force
        )

    def _refuse_xla(self):
        if self.jit_compile:
            warnings.warn(
                f"Model '{self.name}': the gradient reducer's collective ops "
                "(Horovod) have no XLA kernel, so jit_compile is set to "
                "False.",
                stacklevel=3,
            )
            self.jit_compile = False
            self.train_function = None  # retrace without XLA

    @property
    def noise_variables(self):
        """The trainable variables that get perturbed (model must be built).

        Raises:
            ValueError: an explicit `noise_filter` selects no variable.
        """
        if not self.built:
            raise ValueError(
                f"Model '{self.name}' is not built yet, so it has no "
                "variables to choose from. Call it on a batch of data first."
            )
        selected = filters.select(
            self, self.noise_filter or self.default_noise_filter
        )
        if not selected and self.noise_filter is not None:
            raise ValueError(
                "Argument `noise_filter` selects no trainable variable of "
                f"model '{self.name}'. Received: noise_filter="
                f"{_name_of(self.noise_filter)}; trainable variables: "
                f"{[v.path for v in self.trainable_variables]}"
            )
        return selected

    def train_step(self, *args):
        # `(data)` on TensorFlow and PyTorch, `(state, data)` on JAX.
        x, _, _ = keras.utils.unpack_x_y_sample_weight(args[-1])
        if not all(layer.built for layer in self._flatten_layers()):
            self(x)  # A subclassed model creates its variables on first call.
        noisy = self._noisy()
        if noisy and not self.noise_variables:
            warnings.warn(
                f"Model '{self.name}' has no variable to perturb (the "
                f"default filter `{_name_of(self.default_noise_filter)}` "
                f"selects none): {type(self).__name__} trains it as plain "
                "SGD.",
                stacklevel=2,
            )
            noisy = False
        if not noisy and self._gradient_reducer is None:
            # Level 0 is Keras's own step, so plain training is Keras's
            # computation by construction, on every backend and CPU.
            return backends.current().keras_step(
                self, args, super().train_step
            )
        return backends.current().run_step(
            self, args, functools.partial(self._step, noisy)
        )

    def _runs_own_step(self):
        """Whether the model's class writes its own `train_step` (with
        `SymmetricSGDModel.symmetric_gradients` or
        `symmetric_value_and_grad` inside)."""
        return type(self).train_step is not PerturbedModel.train_step

    def _noisy(self):
        """Whether this step perturbs.

        Decided before the step, from the Python value of the level: the
        compiled train function holds one traced step per branch (see
        `keras_ssgd.backends.per_branch`), and inside the perturbed branch
        the level is read from a variable, so changing it between non-zero
        values never retraces.
        """
        if self._static_noisy is not None:
            return self._static_noisy
        if not self.noise_level > 0 or self._every == math.inf:
            return False
        if self._every == 1:
            return True
        # Called step by step, eagerly (PyTorch): the counter is current.
        step = int(ops.convert_to_numpy(self.optimizer.iterations))
        return step % self._every == 0

    def _perturbs_next(self):
        """Whether the next execution of the compiled step perturbs: the
        level is not 0 and, with `every=k`, the step's index is a multiple
        of `k`. Counts the step: the train function calls it once per
        execution of one step."""
        if not self.noise_level > 0 or self._every == math.inf:
            return False
        if self._every == 1:
            return True
        if self._clock.step is None:
            self._clock.step = int(
                ops.convert_to_numpy(self.optimizer.iterations)
            )
        step = self._clock.step
        self._clock.step += 1
        return step % self._every == 0

    def _form(self):
        """Besides the noise branch, what fixes a traced step (a hashable;
        `None` here, the split form for S-SGD): the train function keeps
        one compiled step per `(branch, form)`."""
        return None

    def _step(self, noisy, data):
        """The step on the variables: measure, reduce, update."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if noisy:
            loss, gradients = self._perturbed_step(
                x, y, sample_weight, self.noise_variables
            )
        else:  # level 0 with a gradient reducer
            loss, gradients = self._plain_gradients(x, y, sample_weight)
        finite = ops.isfinite(loss)
        if self._gradient_reducer is not None:
            gradients, finite = self._gradient_reducer(gradients, finite)
        self._apply_if_finite(gradients, finite)
        return self.get_metrics_result()

    def _perturbed_step(self, x, y, sample_weight, noise_variables):
        """The subclass's passes, then the recurrent state they carry on.

        Under `keras.distribution.DataParallel` on JAX the passes may run
        per device instead, their gradient reduced once
        (`_device_plan`, `keras_ssgd.backends.jax_devices`).
        """
        plan = _device_plan(self, getattr(self, "_split_now", False))
        if plan is not None:
            loss, gradients, predictions = plan.run(
                self, functools.partial(self._device_passes, noise_variables),
                (x, y, sample_weight), sharing_lib.batchnorm_momentum(self),
            )
            self._track(x, y, sample_weight, loss, predictions)
            return loss, gradients
        self._carry.start(self._recurrent_states())
        loss, gradients = self._perturbed_gradients(
            x, y, sample_weight, noise_variables
        )
        self._carry_recurrent_state()
        return loss, gradients

    def _device_passes(self, noise_variables, x, y, sample_weight, device):
        """The subclass's passes on one device's shard
        (`keras_ssgd.backends.jax_devices.Device`): its noise seed offset,
        its point of the pair form, its BatchNorm moments; the predictions
        are kept for the global metrics. Returns `(loss, gradients,
        predictions)`."""
        predictions = []
        self._trace = _Trace(device, predictions)
        layers = [] if device.moments is None else sharing_lib.batchnorms(self)
        try:
            with compat.batchnorm_moments_as(layers, device.moments):
                loss, gradients = self._perturbed_gradients(
                    x, y, sample_weight, noise_variables
                )
        finally:
            self._trace = None
        return loss, gradients, predictions

    def _pairs(self):
        """The pair form's numbering of the step being traced (a
        `WorkerPairs`), or `None`: the device's under the per-device step,
        else `sharing.pairs`."""
        if self._trace is not None and self._trace.device.pairs is not None:
            return self._trace.device.pairs
        return self._sharing.pairs

    def _carry_recurrent_state(self):
        """Sets each stateful RNN's state to the mean of the passes' states.

        Every pass starts from the state the previous batch left (the
        variables are not written between passes); the batch's own final
        state, averaged over the passes, is what the next batch starts from.
        For S-SGD that mean matches the state of the clean weights to first
        order in the noise.
        """
        variables, passes = self._carry.finish()
        for i, variable in enumerate(variables):
            values = [p[i] for p in passes if p[i] is not None]
            if values:
                variable.assign(ops.mean(ops.stack(values), axis=0))

    def _recurrent_states(self):
        """The state variables of the model's stateful RNN layers.

        Keras keeps them out of `non_trainable_variables`, so a functional
        pass records their new values in its scope and nowhere else.
        """
        states = []
        for layer in self._flatten_layers():
            if getattr(layer, "stateful", False) and getattr(
                layer, "states", None
            ) is not None:
                states.extend(keras.tree.flatten(layer.states))
        return states

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        """`(loss, gradients)` of one step; the subclass's method."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_perturbed_gradients`."
        )

    def _noise_seed(self):
        """The seed generator of this step, at `[seed, optimizer.iterations]`
        (the seed offset by the device's index under per-device noise)."""
        offset = None
        if self._trace is not None:
            offset = self._trace.device.noise_offset()
        return self._noise.generator(self.optimizer, offset)

    def _measure(
        self, x, y, sample_weight, noise_variables, values, keep_statistics
    ):
        """Loss, gradients and predictions with `noise_variables` at `values`.

        The gradients are taken with respect to `values` for the perturbed
        variables and to the variables themselves for the others, in the
        order of `trainable_variables`. Non-trainable state the pass changes
        (BatchNorm statistics, dropout seeds, loss-metric state) is written
        back afterwards; with `keep_statistics=False` the model's
        non-trainable weights are not. The final states of stateful RNNs are
        kept aside: every pass starts from the same state, and the step
        carries their mean on (`_carry_recurrent_state`).
        """
        loss, gradients, y_pred, new_value = backends.current().measure(
            self, x, y, sample_weight, noise_variables, values
        )
        self._write_back(new_value, keep_statistics)
        self._carry.record(new_value)
        return loss, gradients, y_pred

    def _write_back(self, new_value, keep_statistics):
        """Assigns the values a pass left (`new_value(variable)`) to the
        non-trainable and metric variables; not to the RNN states, which
        `_carry_recurrent_state` sets, nor, without `keep_statistics`, to
        the model's non-trainable weights."""
        skip = {id(v) for v in self._carry.variables}
        if not keep_statistics:
            skip |= {id(v) for v in self.non_trainable_weights}
        seen = set()
        for v in self.non_trainable_variables + self.metrics_variables:
            if id(v) in seen or id(v) in skip:
                continue
            seen.add(id(v))
            value = new_value(v)
            if value is not None:
                v.assign(value)

    def _plain_gradients(self, x, y, sample_weight):
        """Loss and gradients of the plain Keras step (noise level 0)."""
        loss, gradients, y_pred = backends.current().plain_gradients(
            self, x, y, sample_weight
        )
        self._track(x, y, sample_weight, loss, [y_pred])
        return loss, gradients

    def _track(self, x, y, sample_weight, loss, predictions):
        """Updates the loss tracker and the compiled metrics (on one
        device of the per-device step: keeps the predictions for them)."""
        if self._trace is not None:
            self._trace.predictions.extend(predictions)
            return
        # Keras's own `train_step` feeds `_loss_tracker` the same way.
        compat.loss_tracker(self).update_state(
            _unscale_for_distribution(loss),
            sample_weight=backends.batch_size(x),
        )
        for y_pred in predictions:
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _apply_if_finite(self, gradients, finite):
        """Updates W with the gradients, unless the loss was not finite.

        Under `tf.distribute` the step is skipped if any replica's loss was
        not finite (see `keras_ssgd.backends.tensorflow`).
        """
        backends.current().apply_if_finite(self, gradients, finite)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                self.level_argument: self.noise_level,
                "noise_filter": (
                    None
                    if self.noise_filter is None
                    else keras.saving.serialize_keras_object(self.noise_filter)
                ),
                "batchnorm_update": self.batchnorm_update,
                "seed": self.seed,
                "every": self._every,
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
    if issubclass(cls, compat.Functional):
        return cls
    if cls not in _FUNCTIONAL_VARIANTS:
        variant = type(
            cls.__name__,
            (cls, compat.Functional),
            {"__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
        compat.GLOBAL_CUSTOM_NAMES[variant] = (
            keras.saving.get_registered_name(cls)
        )
        _FUNCTIONAL_VARIANTS[cls] = variant
    return _FUNCTIONAL_VARIANTS[cls]


_FUNCTIONAL_VARIANTS = {}


class _RecurrentCarry:
    """The stateful RNN states of the step in progress, and the values each
    pass left in them (a plain object: Keras must not track these)."""

    def __init__(self):
        self.variables = []
        self.passes = []

    def start(self, variables):
        self.variables, self.passes = variables, []

    def record(self, new_value):
        if self.variables:
            self.passes.append([new_value(v) for v in self.variables])

    def finish(self):
        variables, passes = self.variables, self.passes
        self.variables, self.passes = [], []
        return variables, passes


class _StepClock:
    """The index of the next step, between executions of the compiled
    step (a plain object: Keras must not track it)."""

    def __init__(self):
        self.step = None


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


class _Trace:
    """The device whose passes are being traced, and the predictions they
    made (a plain object: Keras must not track these)."""

    def __init__(self, device, predictions):
        self.device = device
        self.predictions = predictions


def _device_plan(model, split):
    """The per-device plan of `model`'s step
    (`keras_ssgd.backends.jax_devices.Plan`), or `None` for the step on the
    global batch.

    Under `keras.distribution.DataParallel` on JAX with 2 devices or more,
    the default sharing runs the step per device where that computes the
    step of one device on the global batch (one gradient all-reduce
    instead of one per pass); any other sharing asks for the per-device
    step and raises where the model cannot run it.

    Args:
        model: the `PerturbedModel`.
        split: whether the step being traced is S-SGD's split form.

    Raises:
        ValueError: `model.sharing` asks for the per-device step and the
            model cannot run it, or there is no `DataParallel`
            distribution.
    """
    if keras.distribution.distribution() is None:
        return None
    step = backends.current()
    mesh = step.mesh_axis()
    sharing = model.sharing
    if not sharing.per_device:
        # The single-device step, where the per-device step computes it.
        if mesh is None or mesh[2] < 2:
            return None
        if sharing_lib.per_device_obstacles(model):
            return None
        if split and mesh[2] % 2:
            return None
        return step.device_plan(
            *mesh, noise=None, signs="halves" if split else None,
            sync="sign" if split else "all",
        )
    sharing_lib.check_per_device(model, mesh)
    signs = "pairs" if sharing.pairs is not None and split else None
    if sharing.batchnorm == "local":
        sync = None
    else:
        sync = "all" if signs is None else "sign"
    return step.device_plan(
        *mesh, noise=_PLAN_NOISE[sharing.noise], signs=signs, sync=sync,
    )


_PLAN_NOISE = {"shared": None, "per_device": "device", "per_pair": "pair"}


def _flat_tensors(gradients):
    # For control dependencies: the W - n pass waits for these tensors.
    """The tensors of a gradient list (sparse gradients give their values)."""
    return [getattr(g, "values", g) for g in gradients if g is not None]


def _unscale_for_distribution(loss):
    # Under tf.distribute Keras divides each replica's loss by the number of
    # replicas; the tracker reports the unscaled value, as Keras does.
    replicas = backends.current().num_replicas()
    if replicas > 1:
        loss = loss * ops.cast(replicas, loss.dtype)
    return loss


def _resolve_filter(noise_filter):
    if noise_filter is None or callable(noise_filter):
        return noise_filter
    if isinstance(noise_filter, str) and noise_filter in filters.SHIPPED:
        return filters.SHIPPED[noise_filter]  # a short name: "conv_kernels"
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
