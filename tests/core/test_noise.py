import keras
import numpy as np
import pytest
from keras import ops

from keras_ssgd import noise


@pytest.mark.parametrize("level", [0.1, 0.5, 1.3])
def test_noise_has_fixed_norm_relative_to_each_weight(level):
    rng = np.random.default_rng(1)
    shapes = [(3, 3, 4, 8), (8, 10), (5, 7, 2), (20, 4)]
    weights = [
        ops.convert_to_tensor(rng.standard_normal(s) * (i + 1), "float32")
        for i, s in enumerate(shapes)
    ]
    n = noise.symmetric_noise(weights, level, seed=3)
    for w, ni in zip(weights, n):
        assert tuple(ni.shape) == tuple(w.shape)
        expected = level * np.linalg.norm(np.array(w))
        np.testing.assert_allclose(
            np.linalg.norm(np.array(ni)), expected, rtol=1e-5
        )


def test_noise_direction_is_not_the_weight_direction():
    w = [ops.ones((40, 40))]
    n = np.array(noise.symmetric_noise(w, 0.5, seed=0)[0]).ravel()
    cosine = n.sum() / (np.linalg.norm(n) * 40)
    assert abs(cosine) < 0.1  # a random direction, not a rescaled W
    assert np.std(n) > 0


def test_zero_weight_gets_zero_noise():
    n = noise.symmetric_noise([ops.zeros((4, 4))], 0.5, seed=0)[0]
    np.testing.assert_array_equal(np.array(n), np.zeros((4, 4)))


def test_same_seed_same_noise_and_generator_advances():
    w = [ops.ones((6, 6)), ops.ones((6,  2))]
    a = noise.symmetric_noise(w, 0.5, seed=11)
    b = noise.symmetric_noise(w, 0.5, seed=11)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.array(x), np.array(y))
    gen = keras.random.SeedGenerator(11)
    first = noise.symmetric_noise(w, 0.5, seed=gen)
    second = noise.symmetric_noise(w, 0.5, seed=gen)
    assert not np.allclose(np.array(first[0]), np.array(second[0]))


def test_float16_weights_keep_their_dtype():
    w = [ops.ones((8, 8), dtype="float16") * 300]
    n = noise.symmetric_noise(w, 0.5, seed=0)[0]
    assert keras.backend.standardize_dtype(n.dtype) == "float16"
    np.testing.assert_allclose(
        np.linalg.norm(np.array(n, dtype="float64")), 0.5 * 300 * 8, rtol=1e-3
    )


def test_empty_list():
    assert noise.symmetric_noise([], 0.5, seed=0) == []


# --- The direction's distribution (`distribution=` / `noise_distribution=`).

SHAPES = [(3, 3, 4, 8), (8, 10), (5, 7, 2), (20, 33), (17,), (16, 16)]


def _weights(shapes=SHAPES, seed=1):
    rng = np.random.default_rng(seed)
    return [
        ops.convert_to_tensor(rng.standard_normal(s) * (i + 1), "float32")
        for i, s in enumerate(shapes)
    ]


def _numpy(tensors):
    return [np.asarray(ops.convert_to_numpy(t), "float64") for t in tensors]


def _at_step(seed, step):
    """A seed generator positioned as the model positions it at step `t`."""
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(np.array([seed, step], "int32"))
    return generator


@pytest.mark.parametrize("level", [0.1, 0.5, 1.3])
def test_rademacher_noise_has_the_exact_length_and_equal_magnitudes(level):
    weights = _weights()
    n = noise.symmetric_noise(weights, level, seed=3, distribution="rademacher")
    for w, ni in zip(_numpy(weights), _numpy(n)):
        assert ni.shape == w.shape
        length = level * np.linalg.norm(w)
        np.testing.assert_allclose(np.linalg.norm(ni), length, rtol=1e-5)
        # Every element is +-a, a = ||n|| / sqrt(size): a vertex of the cube.
        np.testing.assert_allclose(
            np.abs(ni), length / np.sqrt(w.size), rtol=1e-5
        )
        assert 0 < (ni > 0).sum() < w.size  # both signs occur


def test_rademacher_noise_of_zero_and_float16_weights():
    n = noise.symmetric_noise(
        [ops.zeros((4, 4))], 0.5, seed=0, distribution="rademacher"
    )[0]
    np.testing.assert_array_equal(np.array(n), np.zeros((4, 4)))
    w = [ops.ones((8, 8), dtype="float16") * 300]
    n = noise.symmetric_noise(w, 0.5, seed=0, distribution="rademacher")[0]
    assert keras.backend.standardize_dtype(n.dtype) == "float16"
    np.testing.assert_allclose(
        np.abs(np.array(n, dtype="float64")), 0.5 * 300, rtol=1e-3
    )
    assert noise.symmetric_noise([], 0.5, seed=0, distribution="rademacher") == []


@pytest.mark.parametrize("distribution", noise.DISTRIBUTIONS)
def test_noise_is_a_function_of_seed_and_step(distribution):
    weights = _weights()

    def draw(seed, step):
        return _numpy(noise.symmetric_noise(
            weights, 0.5, _at_step(seed, step), distribution=distribution
        ))

    for a, b in zip(draw(7, 3), draw(7, 3)):
        np.testing.assert_array_equal(a, b)
    for other in (draw(7, 4), draw(8, 3)):
        assert not np.allclose(draw(7, 3)[0], other[0])
    # The generator advances between draws within one step's seed too.
    generator = _at_step(7, 3)
    first = noise.symmetric_noise(weights, 0.5, generator, distribution=distribution)
    second = noise.symmetric_noise(weights, 0.5, generator, distribution=distribution)
    assert not np.allclose(_numpy(first)[0], _numpy(second)[0])


def _default_draw(size, generator):
    """The default draw's numbers: `keras.random.normal`'s on TensorFlow and
    JAX; on PyTorch, torch's generator seeded with `stream_seed` of the two
    seed words (Keras's seeds it with their sum)."""
    if keras.backend.backend() != "torch":
        return ops.convert_to_numpy(
            keras.random.normal((size,), dtype="float32", seed=generator)
        )
    import torch

    from keras_ssgd.backends.seeds import stream_seed

    words = [int(w) for w in ops.convert_to_numpy(generator.next())]
    torch_generator = torch.Generator()
    torch_generator.manual_seed(stream_seed(*words))
    return torch.normal(
        0.0, 1.0, (size,), generator=torch_generator, dtype=torch.float32
    ).numpy()


def test_the_default_is_the_gaussian_stream_unchanged():
    # The default distribution keeps every seeded stream: one normal draw of
    # the total size, split per weight and rescaled.
    weights = _weights()
    default = _numpy(noise.symmetric_noise(weights, 0.5, _at_step(5, 2)))
    gaussian = _numpy(noise.symmetric_noise(
        weights, 0.5, _at_step(5, 2), distribution="gaussian"
    ))
    sizes = [int(np.prod(w.shape)) for w in weights]
    flat = np.asarray(_default_draw(sum(sizes), _at_step(5, 2)), "float64")
    offset = 0
    for w, d, g, size in zip(_numpy(weights), default, gaussian, sizes):
        np.testing.assert_array_equal(d, g)
        u = flat[offset : offset + size].reshape(w.shape)
        offset += size
        np.testing.assert_allclose(
            d, 0.5 * np.linalg.norm(w) * u / np.linalg.norm(u), rtol=1e-4,
            atol=1e-6,
        )


def _row_directions(distribution, rows, width, step=0):
    """The rows of one draw for a `(rows, width)` kernel, each scaled to
    length 1: independent directions in `width` dimensions under both
    distributions (a Gaussian vector's rows are Gaussian; each Rademacher
    row takes its signs from integers of its own)."""
    n = noise.symmetric_noise(
        [ops.ones((rows, width))], 1.0, _at_step(0, step),
        distribution=distribution,
    )[0]
    n = np.asarray(ops.convert_to_numpy(n), "float64")
    return n / np.linalg.norm(n, axis=1, keepdims=True)


@pytest.mark.parametrize("distribution", noise.DISTRIBUTIONS)
def test_directions_have_mean_zero_and_isotropic_covariance(distribution):
    # Both distributions give a unit direction u with E[u] = 0 and
    # E[u u^T] = I / d. With 3000 directions in d = 40 dimensions (each
    # Rademacher row takes three 16-bit integers, 8 bits of the last
    # unused), each element's mean has standard error sqrt(1 / d / 3000)
    # and each off-diagonal second moment about 1 / d / sqrt(3000); the
    # bounds are 5 standard errors. A broken bit extraction (a bit position
    # always set, two positions sharing one bit, rows sharing an integer)
    # fails them.
    d, draws = 40, 3000
    u = _row_directions(distribution, draws, d)
    assert np.abs(u.mean(axis=0)).max() < 5 * np.sqrt(1 / d / draws)
    second = u.T @ u / draws
    off = second - np.diag(np.diag(second))
    assert np.abs(off).max() < 5 / d / np.sqrt(draws)
    if distribution == "gaussian":
        # Uniform on the sphere: E[u_i^2] = 1/d with a spread of about
        # sqrt(2) / d per direction, and the elements of one direction do
        # not share one magnitude.
        diagonal = np.diag(second)
        assert np.abs(diagonal - 1 / d).max() < 5 * np.sqrt(2) / d / np.sqrt(draws)
        assert np.ptp(np.abs(u), axis=1).min() > 0
    else:
        np.testing.assert_allclose(np.abs(u), 1 / np.sqrt(d), rtol=1e-6)


@pytest.mark.parametrize("distribution", noise.DISTRIBUTIONS)
def test_consecutive_steps_draw_unrelated_directions(distribution):
    # The directions of steps t and t + 1 of a 1024-element kernel: their
    # cosine has standard deviation 1 / sqrt(1024); the bound is 5 of them.
    directions = [
        _row_directions(distribution, 1, 1024, step=t).ravel()
        for t in range(12)
    ]
    for a, b in zip(directions, directions[1:]):
        assert abs(a @ b) < 5 / np.sqrt(1024)


def test_rademacher_signs_are_fair_per_bit_position():
    # 16 signs come from each drawn integer: every bit position (the
    # element's index modulo 16 along a row) must be a fair coin. A (4000,
    # 32) kernel gives 8000 signs per position: the fraction of positive
    # signs has standard error 0.5 / sqrt(8000); the bound is 5 of them.
    u = _row_directions("rademacher", 4000, 32)
    positive = (u > 0).reshape(-1, 16).mean(axis=0)
    assert np.abs(positive - 0.5).max() < 5 * 0.5 / np.sqrt(8000)


def _reference_signs(words, a):
    """NumPy: bit b (lowest first) of word j gives +a at [j, b], else -a."""
    bits = (np.asarray(words)[..., None] >> np.arange(16)) & 1
    return np.where(bits == 1, a, -a).astype("float32")


@pytest.mark.parametrize("form", ["bits", "sign-bit"])
def test_rademacher_sign_extraction_matches_the_bits(form):
    # Both extraction forms (shift-and-mask, IEEE sign bit) give, for the
    # same drawn words, bit b of word j as the sign of element 16 * j + b,
    # lowest bit first, whatever the backend uses in `symmetric_noise`.
    words = np.array(
        [[0, 1, 2**15, 2**16 - 1], [0x00FF, 0xFF00, 0x5A5A, 0x8001]], dtype="int32"
    )
    tensor = ops.convert_to_tensor(words[..., None])
    a = ops.convert_to_tensor(0.25, "float32")
    if form == "bits":
        # The JAX form, evaluated here on the current backend's ops.
        bits = ops.bitwise_and(ops.right_shift(tensor, ops.arange(16, dtype="int32")), 1)
        got = ops.cast(bits, "float32") * (2.0 * a) - a
    else:
        got = noise._signed_by_sign_bit(tensor, ops.arange(16, dtype="int32"), a)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(got), _reference_signs(words, 0.25)
    )


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's own Rademacher path"
)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_rademacher_torch_path_equals_the_keras_ops_path(dtype, monkeypatch):
    # `TorchBackend.rademacher` replaces the `keras.ops` loop on PyTorch;
    # without it (the base's, `None`), the `keras.ops` loop must give the
    # same bits.
    rng = np.random.default_rng(2)
    weights = [
        ops.convert_to_tensor(rng.standard_normal(s) * (i + 1), dtype)
        for i, s in enumerate([(3, 3, 4, 8), (8, 10), (7,), (5, 33)])
    ]
    fast = noise.symmetric_noise(
        weights, 0.3, keras.random.SeedGenerator(4), distribution="rademacher"
    )
    from keras_ssgd.backends import torch as torch_backend

    monkeypatch.delattr(torch_backend.TorchBackend, "rademacher")
    slow = noise.symmetric_noise(
        weights, 0.3, keras.random.SeedGenerator(4), distribution="rademacher"
    )
    for f, s in zip(fast, slow):
        assert f.dtype == s.dtype
        np.testing.assert_array_equal(ops.convert_to_numpy(f), ops.convert_to_numpy(s))


def test_rademacher_noise_is_the_signs_of_the_drawn_words():
    # The whole draw: the words come from one `keras.random.randint` draw of
    # 16-bit integers; row r of a (3, 40) kernel takes 3 words (48 bits,
    # the last 8 unused).
    w = ops.convert_to_tensor(
        np.random.default_rng(0).standard_normal((3, 40)), "float32"
    )
    seed = keras.random.SeedGenerator(5)
    words = keras.random.randint((9,), 0, 2**16, dtype="int32", seed=keras.random.SeedGenerator(5))
    n = noise.symmetric_noise([w], 0.5, seed, distribution="rademacher")[0]
    a = 0.5 * np.linalg.norm(ops.convert_to_numpy(w)) / np.sqrt(120)
    expected = _reference_signs(
        ops.convert_to_numpy(words).reshape(3, 3), 1.0
    ).reshape(3, 48)[:, :40] * a
    np.testing.assert_allclose(ops.convert_to_numpy(n), expected, rtol=1e-6)


@pytest.mark.parametrize("bad", ["normal", "Gaussian", "", None, 1])
def test_unknown_distribution_is_refused(bad):
    with pytest.raises(ValueError, match=r"`distribution`.*Received: distribution="):
        noise.symmetric_noise([ops.ones((2, 2))], 0.5, seed=0, distribution=bad)


@pytest.mark.parametrize("bad", ["uniform", "RADEMACHER", None, 2])
def test_model_refuses_an_unknown_noise_distribution(bad):
    import keras_ssgd
    from conftest import mlp

    with pytest.raises(
        ValueError, match=r"`noise_distribution`.*Received: noise_distribution="
    ):
        keras_ssgd.wrap(mlp(), noise_distribution=bad)


def test_noise_distribution_config_keras_file_and_resume(tmp_path):
    import keras_ssgd
    from conftest import assert_bit_identical
    from conftest import compile_for_classification
    from conftest import make_classification
    from conftest import mlp
    from conftest import weights_of

    assert keras_ssgd.wrap(mlp()).noise_distribution == "gaussian"
    assert keras_ssgd.wrap(mlp()).get_config()["noise_distribution"] == "gaussian"

    def model():
        keras.utils.set_random_seed(0)
        return compile_for_classification(keras_ssgd.wrap(
            mlp(), noise_level=0.5, seed=9, split_batch=True,
            noise_distribution="rademacher",
        ))

    x, y = make_classification(64)
    straight = model()
    config = straight.get_config()
    assert config["noise_distribution"] == "rademacher"
    assert type(straight).from_config(config).noise_distribution == "rademacher"
    straight.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    # Stopped after one epoch, saved, loaded, resumed: the noise of steps
    # 4..7 depends only on (seed, step), so the weights match bit for bit.
    first = model()
    first.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "rademacher.keras"
    first.save(path)
    resumed = keras.models.load_model(path)
    assert isinstance(resumed, keras_ssgd.SymmetricSGDModel)
    assert resumed.noise_distribution == "rademacher"
    resumed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_bit_identical(weights_of(resumed), weights_of(straight))

    # The Gaussian default would have trained differently from that seed.
    keras.utils.set_random_seed(0)
    gaussian = compile_for_classification(keras_ssgd.wrap(
        mlp(), noise_level=0.5, seed=9, split_batch=True
    ))
    gaussian.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(weights_of(gaussian)[0], weights_of(straight)[0])


# --- The default draw: Keras's normal numbers, drawn fast, and Gaussian.


@pytest.mark.parametrize("size", [1, 7, 1000, 784 * 512 + 3])
def test_the_backend_draw_is_keras_normal_bit_for_bit(size):
    # `Backend.normal` (on JAX, the Threefry hash unrolled) gives exactly
    # `keras.random.normal`'s numbers and advances the generator as it does,
    # so every seeded stream is unchanged; on PyTorch, the numbers of
    # torch's generator seeded from both seed words (`_default_draw`).
    from keras_ssgd import backends

    ours, theirs = _at_step(5, 2), _at_step(5, 2)
    for _ in range(2):  # the second draw checks the generator's advance
        got = ops.convert_to_numpy(backends.current().normal(size, ours))
        want = _default_draw(size, theirs)
        assert got.dtype == np.float32 and got.shape == (size,)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(ours.state), ops.convert_to_numpy(theirs.state)
    )


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's draw"
)
def test_torch_draw_gives_each_seed_and_step_its_own_stream():
    # Keras's `keras.random.normal` on PyTorch seeds torch's generator with
    # the sum of the seed words: the model's noise at step t + 1 of seed s
    # was its noise at step t of seed s + 1. The default draw seeds it with
    # both words mixed.
    weights = [ops.ones((40, 40))]

    def direction(seed, step):
        return _numpy(noise.symmetric_noise(weights, 1.0, _at_step(seed, step)))[0]

    def keras_draw(seed, step):
        return ops.convert_to_numpy(
            keras.random.normal((1600,), seed=_at_step(seed, step))
        )

    np.testing.assert_array_equal(keras_draw(0, 5), keras_draw(1, 4))
    assert not np.allclose(direction(0, 5), direction(1, 4))
    assert not np.allclose(direction(0, 5), direction(5, 0))
    np.testing.assert_array_equal(direction(0, 5), direction(0, 5))


def test_stream_seed_is_splitmix64():
    # SplitMix64's first output from state 0 (the state plus the golden
    # gamma 0x9E3779B97F4A7C15, mixed) is 0xE220A8397B1DCDAF.
    from keras_ssgd.backends.seeds import stream_seed

    assert stream_seed(0x9E3779B9, 0x7F4A7C15) == 0xE220A8397B1DCDAF
    assert stream_seed(-1, -1) == stream_seed(2**32 - 1, 2**32 - 1)
    seeds = {stream_seed(s, t) for s in range(64) for t in range(64)}
    assert len(seeds) == 64 * 64 and all(0 <= x < 2**64 for x in seeds)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX draw written out"
)
def test_unrolled_threefry_is_jax_random_normal_under_jit():
    # Compiled, as in the step: the key is traced.
    import jax

    from keras_ssgd.backends import threefry

    key = jax.numpy.array([2**32 - 5, 123456], dtype="uint32")
    size = 3001
    got = jax.jit(lambda k: threefry.normal(k, size))(key)
    want = jax.jit(lambda k: jax.random.normal(k, (size,)))(key)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    bits = jax.jit(lambda k: threefry.random_bits(k, size))(key)
    np.testing.assert_array_equal(
        np.asarray(bits), np.asarray(jax.random.bits(key, (size,)))
    )


def _scaled_elements(distribution, steps, shape=(64, 64)):
    """`sqrt(d) * u` for the directions `u = n / ||n||` of `steps` steps of
    one kernel: standard normal elements for a Gaussian direction (up to
    the norm's O(1 / d) effect)."""
    d = int(np.prod(shape))
    return np.stack([
        np.sqrt(d) * _row_directions_flat(distribution, shape, step)
        for step in range(steps)
    ])


def _row_directions_flat(distribution, shape, step):
    n = noise.symmetric_noise(
        [ops.ones(shape)], 1.0, _at_step(3, step), distribution=distribution
    )[0]
    n = np.asarray(ops.convert_to_numpy(n), "float64").ravel()
    return n / np.linalg.norm(n)


@pytest.mark.parametrize("distribution", noise.DISTRIBUTIONS)
def test_the_gaussian_direction_is_gaussian_and_rademacher_is_not(distribution):
    # The isotropy test above passes for both distributions. Here the
    # elements of sqrt(d) * u (d = 4096, 8 steps: 32768 values) are checked
    # against N(0, 1) by Kolmogorov-Smirnov and by their fourth moment (3
    # for a normal, 1 for random signs; its standard error here is about
    # sqrt(96 / 32768) = 0.054), and so are the projections sqrt(d) * u . v
    # of 50 steps' directions on 64 fixed random unit vectors v (3200
    # values). The draws are seeded, so each backend's verdict is fixed;
    # the bounds (p > 1e-3, 5 standard errors) leave a Gaussian stream far
    # inside them.
    from scipy import stats

    u = _scaled_elements(distribution, 50)  # (50, 4096)
    z = u[:8].ravel()
    ks = stats.kstest(z, "norm")
    fourth = np.mean(z**4)
    v = np.random.default_rng(0).standard_normal((4096, 64))
    v /= np.linalg.norm(v, axis=0)
    projected = stats.kstest((u @ v).ravel(), "norm")
    if distribution == "gaussian":
        assert ks.pvalue > 1e-3, ks
        assert abs(fourth - 3) < 5 * 0.054, fourth
        assert projected.pvalue > 1e-3, projected
    else:  # the test tells random signs from a Gaussian direction
        assert ks.pvalue < 1e-12, ks
        assert abs(fourth - 1) < 1e-4, fourth
