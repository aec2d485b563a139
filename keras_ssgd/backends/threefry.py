"""JAX's default normal draw, written out so that XLA fuses it on a CPU.

`keras.random.normal` on JAX is `jax.random.normal` with a Threefry-2x32
key (JAX's default generator). On a CPU, JAX lowers the Threefry hash as a
loop over its five groups of rounds (a smaller program to compile), so each
group is a separate pass over the whole array in memory. Unrolled, the
hash is one loop that XLA fuses with what follows; what each costs is in
`docs/measured.md` (`experiments/benchmarks/noise_cost.py`).

`normal` here is that unrolled computation: the same hash (Salmon et al.,
Threefry-2x32 with 20 rounds, as `jax._src.random.threefry2x32`), the same
counters (JAX's partitionable layout, the default since JAX 0.5), the same
bits-to-float and inverse-error-function steps as `jax.random.normal`. It
returns the same numbers bit for bit, which `tests/core/test_noise.py`
checks against `jax.random.normal` and `keras.random.normal`, so the noise
stream of a seed is unchanged.
Where JAX is configured otherwise (`jax_threefry_partitionable=False`),
`normal` is `jax.random.normal` itself.

Reference:
- Salmon, Moraes, Dror and Shaw, "Parallel Random Numbers: As Easy as
  1, 2, 3", SC 2011 (Threefry).
- JAX, `jax/_src/random/threefry2x32.py` and `jax/_src/random.py`
  (`_uniform`, `_normal_real`).
"""

import jax
import numpy as np
from jax import numpy as jnp

# Threefry-2x32's rotation constants, the two groups of four alternating.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
# Threefish's key-schedule parity constant.
_PARITY = np.uint32(0x1BD11BDA)
# Bits of a float32's mantissa.
_MANTISSA_BITS = 23


def _rotate_left(x, d):
    return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(key1, key2, x1, x2):
    """The Threefry-2x32 hash (20 rounds) of the counters `(x1, x2)`.

    Args:
        key1, key2: uint32 scalars, the key.
        x1, x2: uint32 arrays of one shape, the counters.

    Returns:
        A pair of uint32 arrays of the counters' shape.
    """
    keys = (key1, key2, key1 ^ key2 ^ _PARITY)
    x1 = x1 + keys[0]
    x2 = x2 + keys[1]
    for group in range(5):
        for rotation in _ROTATIONS[group % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, rotation) ^ x1
        x1 = x1 + keys[(group + 1) % 3]
        x2 = x2 + keys[(group + 2) % 3] + np.uint32(group + 1)
    return x1, x2


def random_bits(key, size):
    """`jax.random.bits(key, (size,))` for a raw uint32 key `[k1, k2]`,
    under JAX's partitionable counter layout."""
    if size >= 2**32:
        raise ValueError(
            "Argument `size` must be below 2**32 for one draw. "
            f"Received: size={size}"
        )
    count = jax.lax.iota(np.uint32, size)
    bits1, bits2 = threefry2x32(key[0], key[1], jnp.zeros_like(count), count)
    return bits1 ^ bits2


def normal(key, size):
    """`jax.random.normal(key, (size,), "float32")`, bit for bit.

    Args:
        key: a uint32 array `[k1, k2]`, raw Threefry key data (what Keras's
            seed generators hold on JAX).
        size: int, the number of values.

    Returns:
        A float32 array of shape `(size,)`, standard normal.

    Example:

    >>> key = jax.numpy.array([7, 3], dtype="uint32")
    >>> bool((normal(key, 5) == jax.random.normal(key, (5,))).all())
    True
    """
    key = jnp.asarray(key, np.uint32)
    if not jax.config.jax_threefry_partitionable:
        return jax.random.normal(key, (size,), jnp.float32)
    bits = random_bits(key, size)
    # A float in [1, 2) from the top 23 bits, then [0, 1).
    one = np.uint32(np.float32(1.0).view(np.uint32))
    floats = jax.lax.bitcast_convert_type(
        (bits >> np.uint32(32 - _MANTISSA_BITS)) | one, jnp.float32
    ) - np.float32(1.0)
    # Uniform on [nextafter(-1, 0), 1), then the inverse error function.
    low = np.nextafter(np.float32(-1.0), np.float32(0.0))
    uniform = jax.lax.max(
        low, floats * (np.float32(1.0) - low) + low
    )
    return np.float32(np.sqrt(2)) * jax.lax.erf_inv(uniform)
