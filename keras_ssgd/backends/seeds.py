"""Seeds for a backend's own generator, as pure functions of integers.

`keras.random` on PyTorch seeds torch's generator with the sum of a seed's
two words; `stream_seed` mixes both into one seed instead
(`keras_ssgd.backends.torch.TorchBackend.normal`).
"""

_MASK_64 = 2**64 - 1


def stream_seed(first, second):
    """The 64-bit seed of the torch generator for seed words `(first,
    second)`: SplitMix64's output function of the two 32-bit words side by
    side, a bijection of 64-bit integers, so distinct pairs give distinct
    seeds. Mersenne Twister (a CPU generator) keeps its low 32 bits.

    Args:
        first, second: ints, the seed words (read as unsigned 32-bit).

    Returns:
        An int in `[0, 2**64)`.

    Example:

    >>> stream_seed(1, 0) != stream_seed(0, 1)
    True

    Reference:
    - Steele, Lea and Flood, "Fast splittable pseudorandom number
      generators", OOPSLA 2014 (SplitMix64's mixing function).
    """
    z = ((first & 0xFFFFFFFF) << 32) | (second & 0xFFFFFFFF)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK_64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK_64
    return z ^ (z >> 31)
