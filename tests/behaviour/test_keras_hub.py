"""KerasHub task models under `wrap()`, on the three backends (e2e tier).

A BERT text classifier, a GPT-2 causal LM and a ResNet image classifier,
built from small random backbones, with the task's own `compile()`
defaults: level 0 is the task's own `fit()` bit for bit; the full and split
forms train; raw strings go through the task's preprocessor; `generate()`
works after training; which variables get noise (with LoRA too). Skipped
where KerasHub is not installed (`make hub` installs it).
"""

import contextlib

import keras
import numpy as np
import pytest

import keras_ssgd

pytestmark = pytest.mark.e2e
hub = None  # keras_hub, imported by the tests that run (not at collection)


@pytest.fixture(autouse=True, scope="module")
def _keras_hub():
    global hub
    hub = pytest.importorskip("keras_hub")

VOCABULARY, SEQUENCE = 12, 8


def bert_classifier():
    backbone = hub.models.BertBackbone(
        vocabulary_size=VOCABULARY, num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=SEQUENCE,
    )
    return hub.models.BertTextClassifier(
        backbone=backbone, num_classes=2, preprocessor=None
    )


def gpt2_lm(preprocessor=None):
    backbone = hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=SEQUENCE,
    )
    return hub.models.GPT2CausalLM(backbone=backbone,
                                   preprocessor=preprocessor)


def resnet_classifier():
    backbone = hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block",
        use_pre_activation=False, image_shape=(8, 8, 3),
    )
    return hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=2, preprocessor=None
    )


def text_batch(n=8):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCABULARY, (n, SEQUENCE)).astype("int32")
    return ids, rng.integers(0, 2, n).astype("int32")


def task_data(name):
    ids, labels = text_batch()
    mask = np.ones(ids.shape, bool)
    if name == "bert":
        return {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                "padding_mask": mask}, labels
    if name == "gpt2":
        return {"token_ids": ids, "padding_mask": mask}, np.roll(ids, -1, 1)
    images = np.random.default_rng(1).normal(size=(8, 8, 8, 3))
    return images.astype("float32"), labels


TASKS = {"bert": bert_classifier, "gpt2": gpt2_lm, "resnet": resnet_classifier}


@contextlib.contextmanager
def same_graph_rewrites():
    """On TensorFlow, without Grappler's arithmetic optimizer.

    Grappler rewrites chains of additions in the traced step, and its
    choices depend on the graph's node names, which differ between the
    task's step and the wrapped one. In BERT's backward pass this regroups
    a few float sums, and 5 to 30 of its weights then differ from the
    task's own `fit()` in the last bit (measured; history equal). The
    computation is the same: with the rewrite off both steps are equal
    bit for bit, which is what this test holds them to.
    """
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options(
        {"arithmetic_optimization": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"arithmetic_optimization": True})


def weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_task_trains_under_wrap_with_its_own_compile_defaults(name):
    build = TASKS[name]
    x, y = task_data(name)
    if name != "gpt2":  # GPT-2's: from raw strings, in the last test
        level_0_is_the_tasks_fit(build, x, y)
    for split in (False, True):
        keras.utils.set_random_seed(1)
        inner = build()
        before = weights(inner)
        model = keras_ssgd.wrap(inner, noise_level=0.1, split_batch=split)
        model.compile()
        loss = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history[
            "loss"]
        assert np.isfinite(loss).all()
        changed = [not np.array_equal(a, b)
                   for a, b in zip(before, weights(inner))]
        assert all(changed[i] for i, v in enumerate(inner.weights)
                   if v.trainable)


def level_0_is_the_tasks_fit(build, x, y=None, **fit):
    """Trains the task with its `compile()` defaults, then the wrapped task
    at level 0 from the same seed, and checks they are equal bit for bit;
    returns the wrapped model and the task it trained."""
    with same_graph_rewrites():
        keras.utils.set_random_seed(1)
        task = build()
        task.compile()  # the task's defaults: Adam, its loss, its metrics
        expected = task.fit(x, y, batch_size=4, epochs=1, verbose=0)
        keras.utils.set_random_seed(1)
        inner = build()
        model = keras_ssgd.wrap(inner, noise_level=0.0)
        model.compile()
        history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, **fit)
    assert type(model.optimizer) is type(task.optimizer)
    assert {key: history.history[key] for key in expected.history} == (
        expected.history)
    for got, want in zip(weights(inner), weights(task)):
        np.testing.assert_array_equal(got, want)
    return model, inner


def test_a_transformer_gets_noise_on_embeddings_and_kernels_only():
    model = keras_ssgd.wrap(bert_classifier(), noise_level=0.1)
    model.compile()
    model.fit(*task_data("bert"), batch_size=4, verbose=0)
    noisy = {v.path for v in model.noise_variables}
    names = {path.split("/")[-1] for path in noisy}
    assert names == {"embeddings", "kernel"}
    assert {"token_embedding/embeddings", "position_embedding/embeddings",
            "segment_embedding/embeddings"} <= noisy
    for v in model.trainable_variables:
        leaf = v.path.split("/")[-1]
        if leaf in ("bias", "gamma", "beta"):  # biases, LayerNorm
            assert v.path not in noisy
        if leaf == "kernel":  # attention, feed-forward, pooler, logits
            assert v.path in noisy


def test_with_lora_the_adapters_get_noise_and_the_frozen_kernels_do_not():
    task = gpt2_lm()
    task.backbone.enable_lora(2)
    model = keras_ssgd.wrap(task, noise_level=0.1)
    model.compile()
    frozen = {v.path for v in task.backbone.weights if not v.trainable}
    before = {v.path: keras.ops.convert_to_numpy(v)
              for v in task.backbone.weights}
    model.fit(*task_data("gpt2"), batch_size=4, verbose=0)
    noisy = {v.path for v in model.noise_variables}
    adapters = {v.path for v in task.trainable_variables
                if "lora_kernel" in v.path}
    assert adapters and noisy == adapters  # not the biases left trainable
    assert not noisy & frozen
    for v in task.backbone.weights:  # frozen, and restored after each pass
        if v.path in frozen:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v),
                                          before[v.path])


def tiny_gpt2_preprocessor():
    pytest.importorskip("tensorflow_text")
    vocabulary = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4,
                  "Ġa": 5, "Ġb": 6, "Ġc": 7}
    tokenizer = hub.models.GPT2Tokenizer(
        vocabulary=vocabulary, merges=["Ġ a", "Ġ b", "Ġ c"])
    return hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer,
                                               sequence_length=SEQUENCE)


def test_raw_strings_train_as_the_task_trains_them_and_generate_works():
    texts = ["a b c a", "b a c", "c c a b", "a a b"] * 2
    model, lm = level_0_is_the_tasks_fit(
        lambda: gpt2_lm(tiny_gpt2_preprocessor()), texts,
        validation_data=(texts[:4],))
    assert "val_loss" in model.history.history
    assert model.evaluate(texts, batch_size=4, verbose=0)
    (text,) = lm.generate(["a b"], max_length=SEQUENCE)
    assert text.startswith("a b")
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(texts, validation_split=0.5, verbose=0)
