"""Programs for tests/distributed/test_horovod.py, run under
`horovodrun -np 2`.

Usage: horovodrun --gloo -np 2 -H localhost:2 python horovod_program.py CASE OUT

Each rank writes what the test compares into OUT (rank 0 alone for the
single-process references).
"""

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.distributed import horovod as ssgd_hvd  # noqa: E402

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
    # rank (and in the single-process reference).
    keras.utils.set_random_seed(100)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(GLOBAL_BATCH, drop_remainder=True)


def compile_(model, lr=0.1):
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def distributed_model(noise_level, shared_noise=False, batchnorm=False,
                      sync=False, pairs=False):
    keras.utils.set_random_seed(1 + ssgd_hvd.rank())  # ranks differ at first
    base = mlp(batchnorm)
    if sync:
        base = ssgd_hvd.with_sync_batchnorm(base)
    model = keras_ssgd.wrap(
        base, noise_level=noise_level, seed=7, split_batch=pairs
    )
    ssgd_hvd.distribute(model, shared_noise=shared_noise, pairs=pairs)
    compile_(model)
    return model


def trainable(model):
    return [v.numpy() for v in model.trainable_variables]


def save(out, name, arrays):
    np.savez(out / name, *arrays)


def case_equivalence(out, sync=False):
    """Noise 0: 2 ranks x B/2 == 1 process x B (no BatchNorm, or
    synchronized BatchNorm, whose statistics must match too)."""
    x, y = data()
    model = distributed_model(0.0, batchnorm=sync, sync=sync)
    model.fit(ssgd_hvd.shard(global_batches(x, y, shuffle_seed=3)), epochs=3,
              verbose=0, callbacks=ssgd_hvd.callbacks())
    if ssgd_hvd.is_root():
        keras.utils.set_random_seed(1)  # rank 0's initial weights
        reference = mlp(batchnorm=sync)
        compile_(reference)
        reference.fit(global_batches(x, y, shuffle_seed=3), epochs=3, verbose=0)
        save(out, "distributed.npz", [v.numpy() for v in model.weights])
        save(out, "reference.npz", [v.numpy() for v in reference.weights])


def case_identical(out, shared):
    """Noise on: weights identical on all ranks; noise per rank or shared."""
    x, y = data()
    model = distributed_model(0.3, shared_noise=shared)
    model.fit(ssgd_hvd.shard(global_batches(x, y, shuffle_seed=3)), epochs=3,
              verbose=0, callbacks=ssgd_hvd.callbacks())
    save(out, f"weights{ssgd_hvd.rank()}.npz", trainable(model))
    noise = keras_ssgd.noise.symmetric_noise(
        [v.value for v in model.noise_variables], 0.3,
        model._noise.generator(model.optimizer),
    )
    save(out, f"noise{ssgd_hvd.rank()}.npz", [n.numpy() for n in noise])
    save(out, f"seed{ssgd_hvd.rank()}.npz", [np.array(model.noise_seed)])


def case_pairs(out):
    """The pair form: 2 ranks x B/2, rank 0 at W + n and rank 1 at W - n,
    equal one process running the split step on the global batch B."""
    x, y = data()
    model = distributed_model(0.3, pairs=True)
    model.fit(ssgd_hvd.shard(global_batches(x, y, shuffle_seed=3)), epochs=3,
              verbose=0, callbacks=ssgd_hvd.callbacks())
    save(out, f"weights{ssgd_hvd.rank()}.npz", trainable(model))
    save(out, f"passes{ssgd_hvd.rank()}.npz", [
        np.array(model.passes), np.array(model.noise_seed),
        np.array(model.gradient_reducer.bytes_per_step),
        np.array(sum(v.numpy().nbytes for v in model.trainable_variables)),
    ])
    if ssgd_hvd.is_root():
        keras.utils.set_random_seed(1)  # rank 0's initial weights
        reference = keras_ssgd.wrap(
            mlp(), noise_level=0.3, seed=7, split_batch=True
        )
        compile_(reference)
        reference.fit(global_batches(x, y, shuffle_seed=3), epochs=3,
                      verbose=0)
        save(out, "distributed.npz", trainable(model))
        save(out, "reference.npz", trainable(reference))


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def case_resume(out):
    """Backup and restore under Horovod continue the same trajectory."""
    x, y = data()
    backup = str(out / "backup")

    def fit(model, extra):
        model.fit(
            ssgd_hvd.shard(global_batches(x, y)), epochs=4, verbose=0,
            callbacks=[ssgd_hvd.RootBackupAndRestore(backup), *extra,
                       *ssgd_hvd.callbacks()],
        )

    straight = distributed_model(0.3)
    straight.fit(ssgd_hvd.shard(global_batches(x, y)), epochs=4, verbose=0,
                 callbacks=ssgd_hvd.callbacks())
    first = distributed_model(0.3)
    try:
        fit(first, [Interrupt()])
    except RuntimeError:
        pass
    ssgd_hvd._hvd().join()  # both ranks stopped at the same epoch
    resumed = distributed_model(0.3)
    fit(resumed, [])
    save(out, f"straight{ssgd_hvd.rank()}.npz", trainable(straight))
    save(out, f"resumed{ssgd_hvd.rank()}.npz", trainable(resumed))
    save(out, f"iterations{ssgd_hvd.rank()}.npz",
         [np.array(int(resumed.optimizer.iterations))])


class Die(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0 and ssgd_hvd.rank() == 1:
            os._exit(3)


def case_dies(out):
    """Rank 1 dies after one epoch; the job must not hang."""
    x, y = data(n=4096)
    model = distributed_model(0.3)
    (out / f"started{ssgd_hvd.rank()}").write_text(str(time.time()))
    model.fit(ssgd_hvd.shard(global_batches(x, y)), epochs=1000, verbose=0,
              callbacks=[Die(), *ssgd_hvd.callbacks()])


def case_peers(out):
    """The one-pass peers under Horovod: MSAM's direction is the optimizer's
    momentum, the same on every rank, so 2 ranks x B/2 equal 1 process x B;
    ARWP and m-ARWP draw per rank and keep identical weights."""
    x, y = data()
    for method, kwargs in (("msam", {"rho": 0.3}), ("arwp", {"sigma": 0.02}),
                           ("marwp", {"sigma": 0.02})):
        keras.utils.set_random_seed(1 + ssgd_hvd.rank())
        model = keras_ssgd.wrap(mlp(), method=method, seed=7, **kwargs)
        ssgd_hvd.distribute(model)
        compile_(model)
        model.fit(ssgd_hvd.shard(global_batches(x, y, shuffle_seed=3)),
                  epochs=3, verbose=0, callbacks=ssgd_hvd.callbacks())
        save(out, f"{method}{ssgd_hvd.rank()}.npz", trainable(model))
        if method == "msam" and ssgd_hvd.is_root():
            keras.utils.set_random_seed(1)  # rank 0's initial weights
            reference = keras_ssgd.wrap(mlp(), method=method, **kwargs)
            compile_(reference)
            reference.fit(global_batches(x, y, shuffle_seed=3), epochs=3,
                          verbose=0)
            save(out, "msam-reference.npz", trainable(reference))


def main():
    case, out = sys.argv[1], pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    ssgd_hvd.init()
    if case == "equivalence":
        case_equivalence(out)
    elif case == "syncbn":
        case_equivalence(out, sync=True)
    elif case in ("per-rank", "shared"):
        case_identical(out, shared=case == "shared")
    elif case == "pairs":
        case_pairs(out)
    elif case == "resume":
        case_resume(out)
    elif case == "dies":
        case_dies(out)
    elif case == "peers":
        case_peers(out)
    else:
        raise SystemExit(f"unknown case {case!r}")
    (out / f"done{ssgd_hvd.rank()}.json").write_text(json.dumps({"case": case}))


if __name__ == "__main__":
    main()
