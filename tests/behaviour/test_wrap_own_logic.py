"""`wrap()` and a model's own training logic: `compute_loss` and `compile`
overrides are honoured at every level, `train_step` and `test_step`
overrides are refused. Runs on the three backends."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_ssgd


class Penalized(keras.Model):
    """The issue's repro: a `compute_loss` that adds 100."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return 100.0 + super().compute_loss(
            x, y, y_pred, sample_weight, training
        )


class Distiller(keras.Model):
    """keras-io's knowledge distillation `Distiller` (Keras 3 version):
    its own `compile` arguments, read by its own `compute_loss`."""

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(
        self, optimizer, metrics, student_loss_fn, distillation_loss_fn,
        alpha=0.1, temperature=3,
    ):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None,
        allow_empty=False,
    ):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature**2)
        return self.alpha * student_loss + (1 - self.alpha) * distillation_loss

    def call(self, x):
        return self.student(x)


def fit_losses(model, x, y, epochs=2):
    history = model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False,
                        verbose=0)
    return history.history["loss"]


def penalized_data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(16, 4)).astype("float32"),
            rng.normal(size=(16, 1)).astype("float32"))


def penalized():
    keras.utils.set_random_seed(0)
    model = Penalized()
    model(np.ones((1, 4), "float32"))
    return model


@pytest.mark.exact
def test_compute_loss_is_honoured_and_level_0_is_the_models_own_fit():
    x, y = penalized_data()
    plain = penalized()
    plain.compile(optimizer="sgd", loss="mse")
    expected = fit_losses(plain, x, y)
    assert all(loss > 100 for loss in expected)

    base = penalized()
    model = keras_ssgd.wrap(base, noise_level=0.0, seed=0)
    model.compile(optimizer="sgd", loss="mse")
    assert fit_losses(model, x, y) == expected  # bit for bit
    for got, want in zip(base.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert model.evaluate(x, y, verbose=0) == plain.evaluate(x, y, verbose=0)

    noisy = keras_ssgd.wrap(penalized(), noise_level=0.1, seed=0)
    noisy.compile(optimizer="sgd", loss="mse")
    losses = fit_losses(noisy, x, y)
    # Each pass's loss is the model's own: the 100 is in every one.
    assert all(100 < loss < 110 for loss in losses)
    assert losses != expected


@pytest.mark.parametrize("split_batch", [False, True])
def test_the_split_form_measures_the_models_own_loss(split_batch):
    x, y = penalized_data()
    model = keras_ssgd.wrap(penalized(), noise_level=0.1, seed=0,
                            split_batch=split_batch)
    model.compile(optimizer="sgd", loss="mse")
    assert all(100 < loss < 110 for loss in fit_losses(model, x, y, 1))


def test_a_functional_model_with_its_own_loss_keeps_it():
    class Functional100(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None,
                         sample_weight=None, training=True):
            return 100.0 + super().compute_loss(
                x, y, y_pred, sample_weight, training
            )

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    base = Functional100(inputs, keras.layers.Dense(1)(inputs))
    model = keras_ssgd.wrap(base, noise_level=0.1, seed=0)
    model.compile(optimizer="sgd", loss="mse")
    x, y = penalized_data()
    assert all(100 < loss < 110 for loss in fit_losses(model, x, y, 1))


def mlp(units, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(3),
    ])


def distiller():
    teacher = mlp(16, 1)
    teacher.trainable = False
    return Distiller(student=mlp(8, 2), teacher=teacher)


def compile_as_the_example(model):
    # keras-io examples/vision/knowledge_distillation.py, as it compiles.
    model.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        ),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )


@pytest.mark.exact
def test_a_distiller_trains_with_its_own_compile_and_loss():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16)

    plain = distiller()
    compile_as_the_example(plain)
    expected = plain.fit(x, y, batch_size=4, epochs=2, shuffle=False,
                         verbose=0).history

    base = distiller()
    model = keras_ssgd.wrap(base, noise_level=0.0, seed=0)
    compile_as_the_example(model)
    got = model.fit(x, y, batch_size=4, epochs=2, shuffle=False,
                    verbose=0).history
    assert got == expected  # loss and accuracy, bit for bit
    for a, b in zip(base.student.get_weights(), plain.student.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert base.temperature == 10 and base.alpha == 0.1

    noisy = keras_ssgd.wrap(distiller(), noise_level=0.1, seed=0)
    compile_as_the_example(noisy)
    history = noisy.fit(x, y, batch_size=4, epochs=2, shuffle=False,
                        verbose=0).history
    assert history["loss"] != expected["loss"]
    assert np.all(np.isfinite(history["loss"]))
    assert "sparse_categorical_accuracy" in history


class AutoCompiled(keras.Model):
    """A `compile()` with defaults of its own, as KerasHub's task models
    have (`optimizer="auto"`, `loss="auto"`, `metrics="auto"`, each resolved
    before `keras.Model.compile` sees it)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)

    def compile(self, optimizer="auto", loss="auto", metrics="auto",
                **kwargs):
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(0.01)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        **kwargs)


@pytest.mark.exact
def test_a_models_compile_defaults_carry_over_and_level_0_is_its_own_fit():
    # `model.compile()` with no arguments: the wrapper trains with the
    # optimizer, loss and metrics the model's own `compile()` chose.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")

    def build():
        keras.utils.set_random_seed(0)
        model = AutoCompiled()
        model(x[:1])
        return model

    plain = build()
    plain.compile()
    expected = plain.fit(x, y, batch_size=4, epochs=2, shuffle=False,
                         verbose=0).history
    base = build()
    model = keras_ssgd.wrap(base, noise_level=0.0, seed=0)
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    got = model.fit(x, y, batch_size=4, epochs=2, shuffle=False,
                    verbose=0).history
    assert got == expected  # the metric included, bit for bit
    for a, b in zip(base.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


class OwnTrainStep(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def train_step(self, *args):
        return super().train_step(*args)


class OwnTestStep(OwnTrainStep):
    train_step = keras.Model.train_step

    def test_step(self, *args):
        return super().test_step(*args)


@pytest.mark.parametrize("cls, method", [
    (OwnTrainStep, "train_step"), (OwnTestStep, "test_step"),
])
def test_an_own_step_is_refused_by_name(cls, method):
    with pytest.raises(ValueError) as info:
        keras_ssgd.wrap(cls(), noise_level=0.1)
    message = str(info.value)
    assert f"overrides `{method}` ({cls.__name__}.{method})" in message
    assert "compute_loss" in message and "SymmetricSGDModel" in message
    assert "symmetric_gradients" in message and "custom-steps.md" in message
    assert f"of type {cls.__name__}" in message


def test_a_vae_without_call_is_refused_before_any_build():
    # keras-io's VAE: its own train_step and no `call`.
    class VAE(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.encoder = keras.layers.Dense(2)
            self.decoder = keras.layers.Dense(4)

        def train_step(self, data):
            return {}

    with pytest.raises(ValueError, match=r"overrides `train_step` "
                       r"\(.*VAE.train_step\)"):
        keras_ssgd.wrap(VAE(), noise_level=0.1)


def test_a_keras_ssgd_model_is_not_wrapped_twice():
    inputs = keras.Input((4,))
    model = keras_ssgd.SymmetricSGDModel(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(ValueError, match="already a keras_ssgd "
                       "SymmetricSGDModel.*perturb its weights twice"):
        keras_ssgd.wrap(model)


class PipelineModel(keras.Model):
    """Stands in for KerasHub's `PipelineModel`, the base of its tasks: it
    preprocesses raw samples in its own `fit`, `evaluate` and `predict`
    through `preprocess_samples` (here: scales the inputs by 2)."""

    def preprocess_samples(self, x, y=None, sample_weight=None):
        return keras.utils.pack_x_y_sample_weight(x * 2.0, y, sample_weight)


@keras.saving.register_keras_serializable(package="test_wrap_own_logic")
class Task(PipelineModel):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


def test_a_pipeline_models_data_is_preprocessed_as_its_own_fit_would(
        tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")

    def build(cls):
        keras.utils.set_random_seed(0)
        model = cls()
        model(x[:1])
        return model

    def compiled(model):
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        return model

    plain = compiled(build(AutoCompiled))  # a Dense(3) too
    expected = plain.fit(x * 2.0, y, batch_size=4, epochs=2, shuffle=False,
                         verbose=0).history
    task = build(Task)
    model = compiled(keras_ssgd.wrap(task, noise_level=0.0, seed=0))
    got = model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                    validation_data=(x, y)).history
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-6)
    for a, b in zip(task.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["val_loss"][-1],
                               model.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               plain.predict(x * 2.0, verbose=0), rtol=1e-6)

    with pytest.raises(ValueError, match=r"`validation_split`.*pass "
                       r"`validation_data`.*validation_split=0\.5"):
        model.fit(x, y, validation_split=0.5, verbose=0)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.raises(ValueError, match=r"`y` must be None .*Received: y="):
        model.fit(dataset, y, verbose=0)
    model.fit(dataset, verbose=0)

    # Saved and loaded, it is the same class: registered at import.
    model.save(tmp_path / "wrapped.keras")
    loaded = keras.saving.load_model(tmp_path / "wrapped.keras")
    assert type(loaded) is type(model)
    assert type(model).__name__ == "SymmetricSGDModelPreprocessingWrapper"
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
