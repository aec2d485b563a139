"""What one compiled JAX training step sends between devices, read from
its optimized HLO.

`step_hlo(model, x, y)` compiles `model.train_step` on one global batch
with the shardings of the current `keras.distribution`;
`collective_bytes(hlo)` sums the outputs of XLA's cross-device reductions
(`all-reduce`, `reduce-scatter`, `all-gather`) in it. One gradient of a
float32 model is `4 * model.count_params()` bytes (trainable part), so
the ratio says how many gradients a step reduces.

Example:

<!-- example: skip needs a model and data under a DataParallel distribution
(JAX backend). -->

```python
keras.distribution.set_distribution(keras.distribution.DataParallel())
model.fit(x, y, batch_size=128, epochs=1)      # builds the train step
sent, calls = collective_bytes(step_hlo(model, x[:128], y[:128]))
```
"""

import re

import numpy as np

from keras_ssgd import _keras_compat as compat

_COLLECTIVE = re.compile(
    r"=\s*(\([^=]*?\)|\S+)\s+(all-reduce|reduce-scatter|all-gather)"
    r"(?:-start)?\("
)
_ARRAY = re.compile(r"(f64|f32|bf16|f16|s64|s32|u32|u8|pred)\[([\d,]*)\]")
_BYTES = {"f64": 8, "f32": 4, "bf16": 2, "f16": 2, "s64": 8, "s32": 4,
          "u32": 4, "u8": 1, "pred": 1}


def collective_bytes(hlo):
    """`(bytes, calls)`: the bytes of every cross-device collective's
    output in optimized HLO text, and the number of collectives."""
    total, calls = 0, 0
    hlo = re.sub(r"/\*.*?\*/", "", hlo)  # `/*index=5*/` in long tuples
    for match in _COLLECTIVE.finditer(hlo):
        calls += 1
        for dtype, dims in _ARRAY.findall(match.group(1)):
            size = int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
            total += size * _BYTES[dtype]
    return total, calls


def step_hlo(model, x, y):
    """The optimized HLO text of `model.train_step` (JAX) on one global
    batch `(x, y)`, placed as Keras's trainer places it."""
    import jax

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    data = compat.jax_distribute_data((x, y))
    return jax.jit(model.train_step).lower(state, data).compile().as_text()


def gradient_bytes(model):
    """The bytes of one gradient: every trainable variable, in its dtype."""
    return sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.trainable_variables
    )


__all__ = ["collective_bytes", "gradient_bytes", "step_hlo"]
