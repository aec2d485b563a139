"""The PyTorch part of the perturbed step: eager passes and autograd.

As in Keras's torch trainer the step runs eagerly: each pass is one forward
pass and one backward pass, and a conditional is a Python `if`.

The default noise draw (`TorchBackend.normal`) is torch's own generator,
seeded from both words of the seed: Keras's `keras.random.normal` on PyTorch
seeds it with their sum, so step `t + 1` of seed `s` drew step `t` of seed
`s + 1`.
"""

import math

import keras
import torch

from keras_ssgd import backends
from keras_ssgd.backends.base import Backend
from keras_ssgd.backends.seeds import stream_seed


class TorchBackend(Backend):
    """The step run eagerly, as Keras's torch trainer runs `train_step`."""

    def make_train_function(self, model, make, force):
        """Keras's own (`make`): the step runs eagerly, so `train_step`
        picks its branch from the Python value of the level at every
        call."""
        return make(force=force)

    def loss_and_gradients_at(self, loss_fn, variables, noise_variables,
                              values):
        """`loss_fn()` with `noise_variables` at `values`, then its backward
        pass (`Backend.loss_and_gradients_at`); the loss is detached."""
        # Leaves of their own: the gradient is the one at the perturbed
        # point. Keras reads a regularized variable from the scope only:
        # the unperturbed ones are mapped to leaves holding their own value.
        values = [v.detach().requires_grad_(True) for v in values]
        mapping = list(zip(noise_variables, values))
        mapping += [
            (v, v.value.detach().requires_grad_(True))
            for v in backends.regularized_among(variables, noise_variables)
        ]
        with keras.StatelessScope(
            state_mapping=mapping, collect_losses=True
        ) as scope:
            loss = loss_fn()
        perturbed = {id(v): value for v, value in mapping}
        targets = [perturbed.get(id(v), v.value) for v in variables]
        gradients = torch.autograd.grad(loss, targets, allow_unused=True)
        return loss.detach(), list(gradients), scope.get_current_value

    def loss_and_gradients(self, loss_fn, variables):
        """`(loss, gradients)` of `loss_fn()` by autograd, the gradients
        Keras's guide to a custom `train_step` reads after
        `loss.backward()`; the loss is detached."""
        loss = loss_fn()
        gradients = torch.autograd.grad(
            loss, [v.value for v in variables], allow_unused=True
        )
        return loss.detach(), list(gradients)

    def _detached(self, structure):
        """The tensors of `structure` out of the autograd graph (any
        structure: a model may have several outputs)."""
        return keras.tree.map_structure(
            lambda t: t.detach() if isinstance(t, torch.Tensor) else t,
            structure,
        )

    def apply_if_finite(self, model, gradients, finite):
        """Updates the trainable variables, unless `finite` is false."""
        if bool(finite):
            with torch.no_grad():
                model.optimizer.apply(gradients, model.trainable_variables)

    # Whether `scope` opens profiler ranges: each costs a few microseconds
    # in an eager step, so only a profiling run sets it
    # (`experiments/benchmarks/step_profile.py`).
    record_ranges = False

    def scope(self, name):
        """`torch.profiler.record_function(name)` where `record_ranges` is
        set: a range in the profiler's events (`Backend.scope`)."""
        if not self.record_ranges:
            return super().scope(name)
        return torch.profiler.record_function(name)

    def bitcast(self, x, dtype):
        """The bits of `x` read as `dtype` of the same width."""
        return x.view(getattr(torch, dtype))

    def normal(self, size, seed):
        """`size` standard normal float32 numbers from torch's own generator
        (`torch.normal`: Mersenne Twister on a CPU, Philox on CUDA), seeded
        with `stream_seed` of the seed's two words.

        The draw is as fast as `keras.random.normal`'s, which uses the same
        generator; its numbers differ. Keras seeds the generator with the
        sum of the two words (`[seed, step]` for the model's noise), so two
        seeds one apart drew the same directions one step apart; here every
        `(seed, step)` gets its own stream. The numbers are a function of
        `(seed, step)` for a given PyTorch version and device type.

        Args:
            size: int, the number of values.
            seed: int or `keras.random.SeedGenerator` (advanced by one, as
                `keras.random.normal` advances it).

        Returns:
            A float32 tensor of shape `(size,)`, on Keras's device.

        Example:

        <!-- example: skip runs under KERAS_BACKEND=torch only. -->
        >>> g = keras.random.SeedGenerator(7)
        >>> TorchBackend().normal(3, g).shape
        torch.Size([3])
        """
        generator = _seeded_generator(seed)
        return torch.normal(
            0.0, 1.0, (size,), generator=generator, dtype=torch.float32,
            device=generator.device,
        )

    def rademacher(self, weights, level, drawn, layouts, bits_per_word):
        """`keras_ssgd.noise`'s Rademacher noise after the draw, in
        PyTorch's own ops.

        The same operations as the `keras.ops` path, with the same values
        bit for bit (`tests/core/test_noise.py`), without `keras.ops`'s per-call
        conversions: PyTorch runs eagerly, so each `keras.ops` call costs
        its dispatch on every step (`experiments/benchmarks/noise_cost.py`).
        """
        shift = 31 - torch.arange(
            bits_per_word, dtype=torch.int32, device=drawn.device
        )
        noise = []
        offset = 0
        for w, (shape, rows, width, words, count) in zip(weights, layouts):
            row_words = drawn[offset : offset + count].reshape(
                rows + (words, 1)
            )
            offset += count
            size = max(math.prod(shape), 1)
            w32 = w.to(torch.float32)
            a = level * torch.sqrt(torch.sum(torch.square(w32))) / math.sqrt(
                size
            )
            # `noise._signed_by_sign_bit`: bit b to the sign position, xor
            # into -a.
            signs = torch.bitwise_and(
                torch.bitwise_left_shift(row_words, shift), -(2**31)
            )
            n = torch.bitwise_xor(signs, (-a).view(torch.int32)).view(
                torch.float32
            )
            n = n.reshape(rows + (words * bits_per_word,))
            if words * bits_per_word != width:
                n = n[..., :width]
            noise.append(n.reshape(shape).to(w.dtype))
        return noise


# Outside `torch.compile` (`jit_compile=True`), as Keras's own seeding:
# TorchDynamo does not trace a `torch.Generator`.
@torch.compiler.disable
def _seeded_generator(seed):
    """A torch generator on Keras's device, seeded with `stream_seed` of
    the words `seed` gives (a `SeedGenerator`, advanced by one, or an int
    `s`, read as `[s, 0]`)."""
    if isinstance(seed, keras.random.SeedGenerator):
        state = seed.next()
        words = [int(w) for w in state.tolist()]
        device = state.device
    else:
        words = [int(seed), 0]
        device = keras.ops.zeros(()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed(*words))
    return generator
