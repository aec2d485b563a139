"""Data-parallel training of `PerturbedModel`s across processes.

- `keras_ssgd.distributed.horovod`: Horovod (one process per GPU or CPU
  slot, `horovodrun -np N ...`), through Horovod's core collectives only.
- `tf.distribute.MirroredStrategy` (one host, several GPUs) needs nothing
  from here: build and compile the model under `strategy.scope()`.

Horovod is an optional dependency: importing this package does not import
it; `docker/install_horovod.sh` builds it for TensorFlow 2.21.
"""
