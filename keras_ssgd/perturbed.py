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

Every pass is computed functionally: `keras.StatelessScope` maps the selected
variables to their perturbed values while the variables keep holding `W`, so
nothing has to be restored and `W` never drifts by rounding. The step is
written once, in `keras.ops`; what differs between backends is in
`keras_ssgd.backends`.
"""

import contextlib
import functools
import math
import random
import warnings

import keras
from keras import ops

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends
from keras_ssgd import cadence
from keras_ssgd import distributable
from keras_ssgd import filters
from keras_ssgd import recurrent
from keras_ssgd import sharing as sharing_lib
from keras_ssgd.stream import NoiseStream
from keras_ssgd.validation import check_choice
from keras_ssgd.validation import check_every
from keras_ssgd.validation import check_noise_level
from keras_ssgd.validation import check_seed

BATCHNORM_UPDATES = ("both", "first")


class PerturbedModel(keras.Model):
    """Base class of models trained on gradients at perturbed weights.

    Subclasses implement `_perturbed_gradients(x, y, sample_weight,
    variables)`, returning `(loss, gradients)` for every trainable variable,
    usually by calling `self._measure(...)` once per perturbed point. The
    base class does the rest, identically for every method:

    - `noise_level == 0` runs Keras's own `train_step` (one traced step
      per branch, the plain one Keras's); inside the perturbed branch the
      level is read from a variable, so `NoiseSchedule` never retraces.
    - A loss that is not finite skips the update, and is reported.
    - Random perturbations are a function of `seed` and the optimizer's step
      counter, so a checkpointed run resumes the same sequence.
    - With `every=k`, only the steps whose index is a multiple of `k`
      perturb (`keras_ssgd.cadence`); the others are Keras's own step. This
      is the naive interval baseline of the SAM literature (SAM every `k`
      steps), at `1 + (passes - 1) / k` passes per step.
    - Mixed precision, sample weights and `jit_compile` work as in
      `keras.Model` on the TensorFlow, JAX and PyTorch backends;
      `tf.distribute` and `gradient_reducer` (Horovod) on TensorFlow.

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

    Example:

    >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> keras_ssgd.wrap(base, "sam", rho=0.05, every=5).passes_per_step
    1.2

    Guide: `docs/guides/concepts.md`.

    Reference:
    - Liu, Mai, Chen, Hsieh and You, "Towards Efficient and Scalable
      Sharpness-Aware Minimization" (LookSAM), CVPR 2022: SAM every k
      steps as its naive baseline.
    """

    default_noise_filter = staticmethod(filters.kernels)
    passes = 1  # forward and backward passes per step (cost accounting)
    level_argument = "noise_level"  # the level's argument (SAM: `rho`)
    # Whether the per-device step (`keras_ssgd.backends.jax_devices`) can
    # run this method's passes: S-SGD's.
    runs_per_device = False
    # The form of the perturbed step (S-SGD has others), and what fixes a
    # traced step besides its branch (`keras_ssgd.backends.per_branch`).
    step_form = "full"
    trace_key = None

    # The branch of the step being traced: True (perturbed) or False
    # (plain); None outside a compiled step (see `tracing_branch`).
    _static_noisy = None

    # What the engines set, and the passes on one device
    # (`keras_ssgd.distributable`).
    noise_seed = distributable.noise_seed
    sharing = distributable.sharing
    gradient_reducer = distributable.gradient_reducer
    _refuse_xla = distributable.refuse_xla
    _device_passes = distributable.device_passes
    _pairs = distributable.pairs
    _noise_seed = distributable.noise_generator

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
        noise_filter = filters.resolve(noise_filter)
        check_choice(batchnorm_update, "batchnorm_update", BATCHNORM_UPDATES)
        seed = check_seed(seed)
        if compat.functional_init_arguments(args, kwargs):
            # Built from a layer graph (`cls(inputs, outputs)`): this
            # instance becomes a `Functional` through a variant class of its
            # own. Keras's `Model.__init__` would instead rewrite the bases
            # of every class up to `keras.Model` in place, for the process.
            if not isinstance(self, compat.Functional):
                self.__class__ = compat.functional_variant(type(self))
            compat.Trainer.__init__(self)  # the backend's trainer
            compat.Functional.__init__(self, *args, **kwargs)
        else:
            super().__init__(*args, **kwargs)
        self.noise_filter = noise_filter
        self.batchnorm_update = batchnorm_update
        self.seed = seed
        self._every = every
        self._clock = cadence.StepClock()
        self._noise = NoiseStream(
            noise_level, seed if seed is not None else random.randrange(2**31)
        )
        self._level_value = noise_level  # the Python float, for get_config
        distributable.init_sharing(self)
        self._carry = recurrent.Carry()

    def __reduce__(self):
        # Keras pickles a model as its saved bytes; the functional variant
        # class is not importable by name, so the loader is keras.Model's.
        _, args = super().__reduce__()
        return compat.unpickle_model(), args

    @classmethod
    def _refuse_noise_level(cls, kwargs):
        """A `TypeError` for `noise_level=` where the level has its own
        name (`rate`, `rho`)."""
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
    def runs_own_step(self):
        """Whether the model's class writes its own `train_step` (with
        `symmetric_gradients` or `symmetric_value_and_grad` inside)."""
        return type(self).train_step is not PerturbedModel.train_step

    @property
    def extra_step_variables(self):
        """Variables the perturbed step reads that Keras's trainer does not
        pass in: the noise level (changed without retracing) and the
        states of stateful RNNs (kept out of `non_trainable_variables`)."""
        return [self._noise.level] + recurrent.states(self)

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
        self.sync_step_clock()
        return backends.current().make_train_function(
            self, super().make_train_function, force
        )

    def sync_step_clock(self):
        """Reads the optimizer's step counter again, as the count of the
        steps to come (with `every` other than 1, which steps perturb).

        `fit()` reads it when it starts; call this when the optimizer's
        state is put back after that, before the first step: a checkpoint
        restored in a callback's `on_train_begin`
        (`keras_ssgd.checkpoint.Checkpointing` does).
        """
        # While the variables hold the state on every backend (JAX moves
        # it out of them during `fit()`'s steps).
        self._clock.step = (
            self._optimizer_step()
            if self.optimizer is not None and self._every != 1 else None
        )

    @property
    def noise_variables(self):
        """The trainable variables that get perturbed (`filters.of_model`).

        Raises:
            ValueError: the model is not built, or an explicit
                `noise_filter` selects no variable.
        """
        return filters.of_model(self)

    def next_step_perturbs(self):
        """Whether the next execution of the compiled step perturbs, and
        counts it: the train function asks once per execution of one step
        (`keras_ssgd.backends.per_branch`)."""
        step = None
        if cadence.counts_steps(self._every) and self.noise_level > 0:
            step = self._clock.tick(self._optimizer_step)
        return cadence.perturbs(step, self.noise_level, self._every)

    @contextlib.contextmanager
    def tracing_branch(self, noisy):
        """While open, the step being traced is branch `noisy` (perturbed or
        plain), whatever the level says."""
        self._static_noisy = noisy
        try:
            yield
        finally:
            self._static_noisy = None

    def train_step(self, *args):
        # `(data)` on TensorFlow and PyTorch, `(state, data)` on JAX.
        x, _, _ = keras.utils.unpack_x_y_sample_weight(args[-1])
        if not all(layer.built for layer in compat.flatten_layers(self)):
            self(x)  # A subclassed model creates its variables on first call.
        noisy = self._noisy()
        if noisy and not self.noise_variables:
            warnings.warn(
                f"Model '{self.name}' has no variable to perturb (the "
                "default filter "
                f"`{filters.name_of(self.default_noise_filter)}` selects "
                f"none): {type(self).__name__} trains it as plain SGD.",
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

    def _noisy(self):
        """Whether this step perturbs: the traced branch inside a compiled
        step; else (eager, step by step: PyTorch) from the level and the
        optimizer's current step counter."""
        if self._static_noisy is not None:
            return self._static_noisy
        step = None
        if cadence.counts_steps(self._every) and self.noise_level > 0:
            step = self._optimizer_step()
        return cadence.perturbs(step, self.noise_level, self._every)

    def _optimizer_step(self):
        return int(ops.convert_to_numpy(self.optimizer.iterations))

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
        with backends.current().scope("ssgd_update"):
            backends.current().apply_if_finite(self, gradients, finite)
        return self.get_metrics_result()

    def _perturbed_step(self, x, y, sample_weight, noise_variables):
        """The subclass's passes, then the recurrent state they carry on.

        Under `keras.distribution.DataParallel` on JAX the passes may run
        per device instead, their gradient reduced once
        (`keras_ssgd.sharing.device_plan`).
        """
        plan = sharing_lib.device_plan(self, self.step_form != "full")
        if plan is not None:
            loss, gradients, predictions = plan.run(
                self, functools.partial(self._device_passes, noise_variables),
                (x, y, sample_weight), sharing_lib.batchnorm_momentum(self),
            )
            self._track(x, y, sample_weight, loss, predictions)
            return loss, gradients
        self._carry.start(recurrent.states(self))
        loss, gradients = self._perturbed_gradients(
            x, y, sample_weight, noise_variables
        )
        self._carry.finish()
        return loss, gradients

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        """`(loss, gradients)` of one step; the subclass's method."""
        raise NotImplementedError(f"{type(self).__name__}._perturbed_gradients")

    def _measure(
        self, x, y, sample_weight, noise_variables, values, keep_statistics
    ):
        """Loss, gradients and predictions with `noise_variables` at `values`.

        The gradients are taken with respect to `values` for the perturbed
        variables and to the variables themselves for the others, in the
        order of `trainable_variables`. Non-trainable state the pass changes
        (BatchNorm statistics, dropout seeds, loss-metric state) is written
        back afterwards; with `keep_statistics=False` the model's
        non-trainable weights are not. The final states of stateful RNNs
        are kept aside for their mean (`keras_ssgd.recurrent`).
        """
        loss, gradients, y_pred, new_value = backends.current().measure(
            self, x, y, sample_weight, noise_variables, values
        )
        self._write_back(new_value, keep_statistics)
        self._carry.record(new_value)
        return loss, gradients, y_pred

    def _write_back(self, new_value, keep_statistics):
        """Assigns the values a pass left (`new_value(variable)`) to the
        non-trainable and metric variables; not to the RNN states (their
        mean is set after the passes), nor, without `keep_statistics`, to
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
        # Keras's own `train_step` feeds `_loss_tracker` the same way; under
        # tf.distribute Keras divides each replica's loss by the number of
        # replicas, and the tracker reports the unscaled value.
        replicas = backends.current().num_replicas()
        if replicas > 1:
            loss = loss * ops.cast(replicas, loss.dtype)
        compat.loss_tracker(self).update_state(
            loss, sample_weight=backends.batch_size(x)
        )
        for y_pred in predictions:
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

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
