"""Hessian-vector products on PyTorch, over `model.stateless_call`:
`torch.autograd.grad(..., create_graph=True)` then a second
`torch.autograd.grad` of `<grad L, v>` (double backward), or
`torch.func.jvp` of `torch.func.grad` (forward over reverse)."""

import keras
import torch

from keras_ssgd.landscape.hvp import mean_loss
from keras_ssgd.landscape.hvp import positions
from keras_ssgd.landscape.hvp import state_with


class BatchHVP:
    """`H v` and the gradient of the mean loss over one batch (see
    `keras_ssgd.landscape.hvp`)."""

    def __init__(self, model, loss, variables, method):
        self.model = model
        self.loss = loss
        self.variables = list(variables)
        self.method = method
        self._places = positions(model, self.variables)

    def _loss_of(self, params, x, y):
        state = ([v.value.detach() for v in self.model.trainable_variables],
                 [v.value.detach()
                  for v in self.model.non_trainable_variables])
        trainable, non_trainable = state_with(self._places,
                                              params, *state)
        y_pred, _ = self.model.stateless_call(trainable, non_trainable, x,
                                              training=False)
        return mean_loss(self.loss, y, y_pred)

    def _leaves(self):
        return [v.value.detach().requires_grad_(True) for v in self.variables]

    def _batch(self, x, y):
        return (keras.tree.map_structure(keras.ops.convert_to_tensor, x),
                keras.ops.convert_to_tensor(y))

    def hvp(self, x, y, vectors):
        x, y = self._batch(x, y)
        vectors = [torch.as_tensor(v, dtype=leaf.dtype, device=leaf.device)
                   for v, leaf in zip(vectors, self._leaves())]
        if self.method == "forward-over-reverse":
            params = [v.value.detach() for v in self.variables]
            grad = torch.func.grad(lambda p: self._loss_of(p, x, y))
            _, product = torch.func.jvp(grad, (params,), (vectors,))
            return [p.detach() for p in product]
        params = self._leaves()
        grads = torch.autograd.grad(self._loss_of(params, x, y), params,
                                    create_graph=True, allow_unused=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vectors)
                  if g is not None)
        if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
            return [torch.zeros_like(p) for p in params]
        product = torch.autograd.grad(dot, params, allow_unused=True)
        return [torch.zeros_like(p) if h is None else h.detach()
                for p, h in zip(params, product)]

    def gradient(self, x, y):
        x, y = self._batch(x, y)
        params = self._leaves()
        grads = torch.autograd.grad(self._loss_of(params, x, y), params,
                                    allow_unused=True)
        return [torch.zeros_like(p) if g is None else g.detach()
                for p, g in zip(params, grads)]
