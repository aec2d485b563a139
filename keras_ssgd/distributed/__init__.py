"""Data-parallel training of `PerturbedModel`s across processes.

- `keras_ssgd.distributed.horovod`: Horovod (one process per GPU or CPU
  slot, `horovodrun -np N ...`), through Horovod's core collectives only.
- `tf.distribute.MirroredStrategy` (one host, several GPUs) needs nothing
  from here: build and compile the model under `strategy.scope()`.
- `keras_ssgd.distributed.keras_distribution`: Keras's `DataParallel` on
  JAX (one host, or several processes), S-SGD's step per device with one
  gradient all-reduce (`keras_ssgd.backends.jax_devices`), per-device
  noise and pairs (`distribute`).

Each engine configures the step through `model.sharing` (a
`keras_ssgd.sharing.StepSharing`) and the model's public attributes
(`gradient_reducer`, `noise_seed`), nothing else.

Horovod is an optional dependency: importing this package does not import
it; `docker/install_horovod.sh` builds it for TensorFlow 2.21.
"""
