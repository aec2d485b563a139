"""Programs for tests/distributed/test_keras_distribution.py: S-SGD under
Keras's `DataParallel` on JAX, as several processes on localhost (CPU
collectives).

Usage: python jax_multiprocess_program.py CASE OUT PROCESS_ID NUM_PROCESSES PORT

With NUM_PROCESSES 1 the program runs without `keras.distribution` (the
single-process reference). Each process writes what the test compares into
OUT.
"""

import json
import os
import pathlib
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.distributed import keras_distribution  # noqa: E402

GLOBAL_BATCH = 32
CASES = {
    "plain": dict(noise_level=0.0),
    "ssgd": dict(noise_level=0.3),
    "split": dict(noise_level=0.3, split_batch=True),
    # Process 0 at W + n, process 1 at W - n (`distribute(pairs=True)`);
    # with one process, the split step on the global batch.
    "pairs": dict(noise_level=0.3, split_batch=True),
}


def data(n=128):
    x = np.random.default_rng(0).normal(size=(n, 8)).astype("float32")
    return x, x[:, :3].argmax(axis=1).astype("int32")


def model(**kwargs):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(3)(hidden), seed=4, **kwargs
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def local_values(model):
    # This process's copy of every (replicated) variable.
    return [
        np.asarray(v.value.addressable_shards[0].data)
        if hasattr(v.value, "addressable_shards") else np.asarray(v.value)
        for v in model.trainable_variables
    ]


class Die(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0 and keras_distribution.process_id() == 1:
            os._exit(3)


def main():
    case, out = sys.argv[1], pathlib.Path(sys.argv[2])
    process_id, processes, port = (int(a) for a in sys.argv[3:6])
    out.mkdir(parents=True, exist_ok=True)
    if processes > 1:
        keras_distribution.initialize(
            f"127.0.0.1:{port}", processes, process_id,
            heartbeat_timeout_seconds=10,
        )
        # NumPy data, sharded by hand (`shard`): no auto-sharding.
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(
                devices=keras.distribution.list_devices(),
                auto_shard_dataset=False,
            )
        )
    x, y = data(4096 if case == "dies" else 128)
    # This process's rows of every global batch, in the same order.
    x, y = keras_distribution.shard((x, y), GLOBAL_BATCH)
    local_batch = GLOBAL_BATCH // processes
    if case == "dies":
        m = model(noise_level=0.3)
        (out / f"started{process_id}").write_text(str(time.time()))
        m.fit(x, y, batch_size=local_batch, epochs=1000, shuffle=False,
              verbose=0, callbacks=[Die()])
        return
    m = model(**CASES[case])
    if case == "pairs" and processes > 1:
        keras_distribution.distribute(m, pairs=True)
    history = m.fit(x, y, batch_size=local_batch, epochs=2, shuffle=False,
                    verbose=0)
    np.savez(out / f"{case}-{processes}-{process_id}.npz", *local_values(m))
    (out / f"{case}-{processes}-{process_id}.json").write_text(
        json.dumps({"loss": history.history["loss"], "passes": m.passes})
    )


if __name__ == "__main__":
    main()
