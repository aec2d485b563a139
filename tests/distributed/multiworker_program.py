"""Programs for tests/distributed/test_multiworker.py: one process per
worker of a `tf.distribute.MultiWorkerMirroredStrategy`, on 127.0.0.1.

Usage: TF_CONFIG=... python multiworker_program.py CASE OUT

Each worker writes what the test compares into OUT (worker 0 alone for the
single-process references, trained after the distributed run).
"""

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from keras_ssgd.distributed import multiworker  # noqa: E402

# The strategy first: it starts the worker's collective server.
STRATEGY = multiworker.strategy(
    timeout_seconds=float(os.environ.get("SSGD_TEST_TIMEOUT", "120"))
)
_, INDEX = multiworker.task()

import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.disable_traceback_filtering()

import keras_ssgd  # noqa: E402
from keras_ssgd.distributed.pairs import pair_replicas  # noqa: E402

GLOBAL_BATCH = 32


def data(n=128, features=8, classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x[:, :classes].argmax(axis=1)).astype("int32")
    return x, y


def mlp(batchnorm=False):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="tanh")(inputs)
    if batchnorm:
        x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs)


def global_batches(x, y, shuffle_seed=None):
    # The shuffling order depends on the global seed too: the same on every
    # worker (and in the single-process reference).
    keras.utils.set_random_seed(100)
    return multiworker.global_batches(
        tf.data.Dataset.from_tensor_slices((x, y)), GLOBAL_BATCH,
        shuffle_seed=shuffle_seed,
    )


def compile_(model, lr=0.1):
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def build(make, wrap=None, pairs=False, strategy=STRATEGY):
    """`make()` under the strategy, wrapped by `wrap`; seeded per worker
    (the strategy broadcasts worker 0's initial values)."""
    keras.utils.set_random_seed(1 + INDEX if strategy else 1)
    scope = strategy.scope() if strategy else tf.distribute.get_strategy().scope()
    with scope:
        model = make()
        if wrap is not None:
            model = wrap(model)
        if pairs:
            pair_replicas(model, strategy)
        compile_(model)
    return model


def reference(make, wrap=None):
    """The same model trained by one process (worker 0's initial weights)."""
    return build(make, wrap, strategy=None)


def trainable(model):
    return [np.array(v) for v in model.trainable_variables]


def save(out, name, arrays):
    np.savez(out / name, *arrays)


def ssgd(level, **kwargs):
    return lambda m: keras_ssgd.wrap(m, noise_level=level, seed=7, **kwargs)


def fit_both(out, name, make, wrap=None, pairs=False, numpy=False):
    """Trains under the strategy; worker 0 trains the reference too."""
    x, y = data()
    model = build(make, wrap, pairs)
    if numpy:
        model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=3, shuffle=False,
                  verbose=0)
    else:
        model.fit(global_batches(x, y, shuffle_seed=3), epochs=3, verbose=0)
    save(out, f"{name}{INDEX}.npz", trainable(model))
    if INDEX == 0:
        single = reference(make, wrap)
        if numpy:
            single.fit(x, y, batch_size=GLOBAL_BATCH, epochs=3, shuffle=False,
                       verbose=0)
        else:
            # Under a strategy Keras's `fit()` first reads one batch from
            # an iterator of its own (`_maybe_symbolic_build`), which moves
            # a reshuffling dataset on by one epoch; so here.
            batches = global_batches(x, y, shuffle_seed=3)
            next(iter(batches))
            single.fit(batches, epochs=3, verbose=0)
        save(out, f"{name}-reference.npz", trainable(single))
    return model


def case_equivalence(out):
    """(a) Noise 0, no BatchNorm: 2 workers x B/2 == 1 process x B, from a
    dataset and from NumPy arrays."""
    fit_both(out, "plain", mlp)
    fit_both(out, "level0", mlp, ssgd(0.0))
    fit_both(out, "numpy", mlp, ssgd(0.0), numpy=True)


def case_noise(out):
    """(b) Noise on: one noise for the global batch, as one process; and
    four baselines."""
    fit_both(out, "ssgd", mlp, ssgd(0.3))
    fit_both(out, "wni", mlp, lambda m: keras_ssgd.wrap(
        m, method="weight-noise", noise_level=0.05, seed=7))
    fit_both(out, "sam", mlp, lambda m: keras_ssgd.wrap(
        m, method="sam", rho=0.05))
    fit_both(out, "msam", mlp, lambda m: keras_ssgd.wrap(
        m, method="msam", rho=0.3))
    fit_both(out, "arwp", mlp, lambda m: keras_ssgd.wrap(
        m, method="arwp", sigma=0.02, seed=7))


def case_pairs(out):
    """(c) The pair form: worker 0 at W + n, worker 1 at W - n, equals the
    split step of one process on the global batch."""
    signs = []

    def wrap(base):
        model = ssgd(0.3, split_batch=True)(base)
        model.train_step = record_sign(model, signs)
        return model

    model = fit_both(out, "pairs", mlp, wrap, pairs=True)
    save(out, f"passes{INDEX}.npz", [
        np.array(model.passes), np.array(signs),
        np.array(sum(v.numpy().nbytes for v in model.trainable_variables)),
    ])


def record_sign(model, signs):
    """`model.train_step`, recording the sign each traced step used."""
    step = model.train_step

    def train_step(data):
        if model.sharing.pairs is not None:
            signs.append(model.sharing.pairs.sign())
        return step(data)

    return train_step


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def case_resume(out):
    """(d) Backup and restore continue the same trajectory."""
    x, y = data()
    backup = str(out / "backup")

    def fit(model, extra):
        model.fit(
            global_batches(x, y), epochs=4, verbose=0,
            callbacks=[multiworker.WorkerBackupAndRestore(backup), *extra],
        )

    straight = build(mlp, ssgd(0.3))
    straight.fit(global_batches(x, y), epochs=4, verbose=0)
    first = build(mlp, ssgd(0.3))
    try:
        fit(first, [Interrupt()])
    except RuntimeError:
        pass
    save(out, f"interrupted{INDEX}.npz", trainable(first))
    resumed = build(mlp, ssgd(0.3))
    fit(resumed, [])
    save(out, f"straight{INDEX}.npz", trainable(straight))
    save(out, f"resumed{INDEX}.npz", trainable(resumed))
    save(out, f"iterations{INDEX}.npz",
         [np.array(resumed.optimizer.iterations)])


class Die(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0 and INDEX == 1:
            os._exit(3)


def case_dies(out):
    """(e) Worker 1 dies after one epoch; worker 0 must not hang."""
    x, y = data(n=4096)
    model = build(mlp, ssgd(0.3))
    (out / f"started{INDEX}").write_text(str(time.time()))
    model.fit(global_batches(x, y), epochs=1000, verbose=0, callbacks=[Die()])


CASES = {
    "equivalence": case_equivalence,
    "noise": case_noise,
    "pairs": case_pairs,
    "resume": case_resume,
    "dies": case_dies,
}


def main():
    case, out = sys.argv[1], pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if case not in CASES:
        raise SystemExit(f"unknown case {case!r}")
    CASES[case](out)
    (out / f"done{INDEX}.json").write_text(json.dumps({"case": case}))



if __name__ == "__main__":
    main()
