"""Hessian-vector products on JAX, over `model.stateless_call`: the
gradient of `<grad L, v>` (reverse over reverse), or `jax.jvp` of
`jax.grad` (forward over reverse), compiled with `jax.jit`."""

import jax
import jax.numpy as jnp

from keras_ssgd.landscape.hvp import mean_loss
from keras_ssgd.landscape.hvp import positions
from keras_ssgd.landscape.hvp import state_with


class BatchHVP:
    """`H v` and the gradient of the mean loss over one batch (see
    `keras_ssgd.landscape.hvp`)."""

    def __init__(self, model, loss, variables, method):
        self.model = model
        self.variables = list(variables)
        places = positions(model, self.variables)

        def loss_of(params, state, x, y):
            trainable, non_trainable = state_with(places, params,
                                                  *state)
            y_pred, _ = model.stateless_call(trainable, non_trainable, x,
                                             training=False)
            return mean_loss(loss, y, y_pred)

        grad = jax.grad(loss_of)

        if method == "forward-over-reverse":
            def hvp(params, vectors, state, x, y):
                return jax.jvp(lambda p: grad(p, state, x, y), (params,),
                               (vectors,))[1]
        else:
            def dot(params, vectors, state, x, y):
                return sum(jnp.vdot(g, v) for g, v in
                           zip(grad(params, state, x, y), vectors))

            hvp = jax.grad(dot)
        self._hvp = jax.jit(hvp)
        self._gradient = jax.jit(grad)

    def _state(self):
        return ([v.value for v in self.model.trainable_variables],
                [v.value for v in self.model.non_trainable_variables])

    def _params(self):
        return [v.value for v in self.variables]

    def hvp(self, x, y, vectors):
        vectors = [jnp.asarray(v, dtype=var.dtype)
                   for v, var in zip(vectors, self.variables)]
        return self._hvp(self._params(), vectors, self._state(), x, y)

    def gradient(self, x, y):
        return self._gradient(self._params(), self._state(), x, y)
