"""Hessian-vector products on TensorFlow: two tapes, or a forward
accumulator over a tape."""

import tensorflow as tf

from keras_ssgd.landscape.hvp import mean_loss


class BatchHVP:
    """`H v` and the gradient of the mean loss over one batch (see
    `keras_ssgd.landscape.hvp`)."""

    def __init__(self, model, loss, variables, method):
        self.model = model
        self.loss = loss
        self.variables = list(variables)
        self._hvp = tf.function(
            self._double_backprop if method == "double-backprop"
            else self._forward_over_reverse,
            reduce_retracing=True,
        )
        self._gradient = tf.function(self._gradient_of,
                                     reduce_retracing=True)

    def _mean_loss(self, x, y):
        return mean_loss(self.loss, y, self.model(x, training=False))

    def _double_backprop(self, x, y, vector):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = self._mean_loss(x, y)
            grads = inner.gradient(loss, self.variables)
            dot = tf.add_n([
                tf.reduce_sum(g * v) for g, v in zip(grads, vector)
            ])
        return outer.gradient(dot, self.variables)

    def _forward_over_reverse(self, x, y, vector):
        # The accumulator watches the backing tf.Variables of Keras's.
        primals = [getattr(v, "value", v) for v in self.variables]
        with tf.autodiff.ForwardAccumulator(primals, vector) as acc:
            with tf.GradientTape() as tape:
                loss = self._mean_loss(x, y)
            grads = tape.gradient(loss, self.variables)
        return acc.jvp(grads)

    def _gradient_of(self, x, y):
        with tf.GradientTape() as tape:
            loss = self._mean_loss(x, y)
        return tape.gradient(loss, self.variables)

    def hvp(self, x, y, vectors):
        vectors = [tf.constant(v, dtype=var.dtype)
                   for v, var in zip(vectors, self.variables)]
        return self._hvp(x, y, vectors)

    def gradient(self, x, y):
        return self._gradient(x, y)
