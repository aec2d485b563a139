"""`Backend`, what the perturbed step asks of a Keras backend.

`PerturbedModel` writes its step once, in `keras.ops`; the few operations
that differ between backends are the methods of this class. Each backend
module subclasses it and overrides only what differs (`TensorFlowBackend`,
`JAXBackend`, `TorchBackend`), as Keras picks its optimizer's backend once,
by inheritance; `keras_ssgd.backends.current()` returns the instance for the
Keras backend in use.

The defaults here are those of a backend whose step runs on the variables,
one replica, dense gradients, in program order. An optional feature a
backend lacks returns `None` (`rademacher`: take the portable `keras.ops`
path) or raises `NotImplementedError` (a form of step the backend does not
run; the model refuses it first, with `keras_ssgd.backends.require`).

Reference:
- Keras's own trainers, `keras/src/backend/{tensorflow,jax,torch}/trainer.py`;
  `keras/src/optimizers/optimizer.py` (the backend chosen as a class).
"""

import contextlib

from keras import random

from keras_ssgd import backends


class Backend:
    """The backend-specific part of the training step.

    Attributes:
        STATELESS: bool, whether a train step is a pure function of the
            state Keras threads (JAX), so a variable it does not carry is a
            constant of the trace. Defaults to `False`.
        SIGNS: `"arithmetic"` or `"sign-bit"`, how `keras_ssgd.noise` takes
            the Rademacher signs out of the drawn bits (the cheaper form on
            the backend). Defaults to `"sign-bit"`.
    """

    STATELESS = False
    SIGNS = "sign-bit"

    # The trainer's step.

    def run_step(self, model, args, step):
        """The shared step, called as the backend's trainer calls
        `train_step`.

        Args:
            model: the `PerturbedModel`.
            args: the trainer's arguments (`(data,)`; JAX: `(state, data)`).
            step: `step(data)`, the shared step on the variables.

        Returns:
            What the trainer expects of `train_step`: the logs (JAX: `(logs,
            state)`).
        """
        return step(*args)

    def keras_step(self, model, args, step):
        """Keras's own `train_step` (`step`) on the trainer's `args`, for
        level 0 or a model with nothing to perturb."""
        return step(*args)

    def make_train_function(self, model, make, force):
        """The model's train function: one compiled step per branch
        (`keras_ssgd.backends.per_branch`).

        Args:
            model: the `PerturbedModel`.
            make: Keras's `make_train_function`, bound to the model.
            force: bool, rebuild even if the model has a train function.

        Returns:
            The train function, also set as `model.train_function`.
        """
        return backends.per_branch(model, make, force)

    # One pass.

    def measure(self, model, x, y, sample_weight, noise_variables, values):
        """One forward and backward pass with `noise_variables` at `values`.

        The variables are not written: the pass runs in a
        `keras.StatelessScope`. It is `loss_and_gradients_at` on the model's
        scaled loss.

        Args:
            model: the model, compiled.
            x, y, sample_weight: the batch.
            noise_variables: the perturbed variables.
            values: their values for the pass, one per variable.

        Returns:
            `(loss, gradients, y_pred, new_value)`: the unscaled loss, the
            gradients of the optimizer's scaled loss with respect to
            `values` for the perturbed variables and to the variables
            themselves for the others, in the order of
            `model.trainable_variables`; the predictions; and
            `new_value(variable)`, the value the pass left in a variable
            (or `None`).
        """
        passed = {}

        def loss_fn():
            passed["y_pred"], passed["loss"] = backends.forward(
                model, x, y, sample_weight
            )
            return model.optimizer.scale_loss(passed["loss"])

        _, gradients, new_value = self.loss_and_gradients_at(
            loss_fn, model.trainable_variables, noise_variables, values
        )
        loss, y_pred = self._detached((passed["loss"], passed["y_pred"]))
        return loss, gradients, y_pred, new_value

    def loss_and_gradients_at(self, loss_fn, variables, noise_variables,
                              values):
        """`loss_fn()` with `noise_variables` at `values`, and its gradients.

        The pass runs in a `keras.StatelessScope` that maps the perturbed
        variables to `values` and collects the losses layers add; a
        regularized variable of `variables` is mapped to its own value
        (Keras reads a regularized variable from the scope only).

        Args:
            loss_fn: `() -> loss`, a scalar tensor.
            variables: the variables to differentiate by.
            noise_variables: the perturbed variables.
            values: their values for the pass.

        Returns:
            `(loss, gradients, new_value)`: the gradients with respect to
            `values` for the perturbed variables and to the variables for
            the others of `variables`, in their order; `new_value(variable)`
            as for `measure`.

        Raises:
            NotImplementedError: a stateless backend (JAX) takes gradients
                with `value_and_grad` instead.
        """
        raise NotImplementedError(
            f"{type(self).__name__} takes no gradients of a stateful "
            "loss function: use `value_and_grad`."
        )

    def loss_and_gradients(self, loss_fn, variables):
        """`(loss, gradients)` of `loss_fn()` with respect to `variables`,
        as Keras's guide to a custom `train_step` takes them (the level-0
        path of `SymmetricSGDModel.symmetric_gradients`).

        Raises:
            NotImplementedError: a stateless backend (JAX) takes gradients
                with `value_and_grad` instead.
        """
        raise NotImplementedError(
            f"{type(self).__name__} takes no gradients of a stateful "
            "loss function: use `value_and_grad`."
        )

    def plain_gradients(self, model, x, y, sample_weight):
        """The plain Keras pass, `(loss, gradients, y_pred)`: the unscaled
        loss, the gradients of the scaled loss in the order of
        `model.trainable_variables`, the predictions. Used at level 0 with
        a gradient reducer; it is `loss_and_gradients` on the model's
        scaled loss."""
        passed = {}

        def loss_fn():
            passed["y_pred"], passed["loss"] = backends.forward(
                model, x, y, sample_weight
            )
            return model.optimizer.scale_loss(passed["loss"])

        _, gradients = self.loss_and_gradients(
            loss_fn, model.trainable_variables
        )
        loss, y_pred = self._detached((passed["loss"], passed["y_pred"]))
        return loss, gradients, y_pred

    def value_and_grad(self, fun, has_aux=False):
        """The backend's `value_and_grad(fun, has_aux)`, for
        `SymmetricSGDModel.symmetric_value_and_grad` (a stateless backend).

        Raises:
            NotImplementedError: a stateful backend takes gradients with
                `loss_and_gradients` instead.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no stateless `value_and_grad`: use "
            "`loss_and_gradients`."
        )

    def _detached(self, structure):
        """`structure` out of the backend's gradient graph, where tensors
        carry one (PyTorch); as it is by default."""
        return structure

    # Profiling.

    def scope(self, name):
        """A context that names the ops it encloses `name` in the backend's
        profiler (`experiments/benchmarks/step_profile.py`): a
        `tf.name_scope` on TensorFlow, a `jax.named_scope` on JAX, a
        `torch.profiler.record_function` on PyTorch. It changes no
        computation, and no Keras variable name. None by default."""
        return contextlib.nullcontext()

    # Ordering, reduction and the update.

    def after(self, dependencies, fn, *args):
        """`fn(*args)`, computed once the `dependencies` (tensors) exist.
        By default, program order already ensures it."""
        return fn(*args)

    def dense(self, gradient):
        """A dense tensor from a gradient; the gradient itself by default."""
        return gradient

    def num_replicas(self):
        """The replicas the step runs on in sync; 1 by default."""
        return 1

    def apply_if_finite(self, model, gradients, finite):
        """The optimizer update of `model.trainable_variables` with
        `gradients`, skipped when the scalar `finite` is false."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `apply_if_finite`."
        )

    # The per-device step under `keras.distribution` (JAX).

    def mesh_axis(self):
        """The `keras.distribution.DataParallel` batch axis the per-device
        step runs on, `(mesh, axis, size)`, or `None` (the default: the
        per-device step is JAX's)."""
        return None

    def device_plan(self, mesh, axis, size, noise, signs, sync):
        """The per-device step's plan (`keras_ssgd.backends.jax_devices.Plan`).

        Raises:
            NotImplementedError: the backend has no per-device step
                (`mesh_axis()` is `None`).
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no per-device step."
        )

    # The noise draw (`keras_ssgd.noise`).

    def normal(self, size, seed):
        """`keras.random.normal((size,), dtype="float32", seed=seed)`: the
        same numbers, drawn the fastest way the backend has.

        Args:
            size: int, the number of values.
            seed: int or `keras.random.SeedGenerator` (advanced as
                `keras.random.normal` advances it).

        Returns:
            A float32 tensor of shape `(size,)`.
        """
        return random.normal((size,), dtype="float32", seed=seed)

    def bitcast(self, x, dtype):
        """The bits of `x` read as `dtype` of the same width."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `bitcast`."
        )

    def rademacher(self, weights, level, drawn, layouts, bits_per_word):
        """`keras_ssgd.noise`'s Rademacher noise after the draw, in the
        backend's own ops, or `None` (the default): take the `keras.ops`
        path, which gives the same values."""
        return None
