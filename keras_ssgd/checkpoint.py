"""The checkpoint of a run in progress, so that a stopped run continues.

`ssgd-train` writes one checkpoint per running run, beside its record:
`runs/<key>.checkpoint.npz`, rewritten atomically (`store.atomic_path`) at
the end of every epoch (and, with `every`, every `every` optimizer steps
within an epoch) and deleted once the run's record is written. It is one
NumPy `.npz` file holding:

- `meta`: a JSON text: the format and its version, the run's key, the
  recipe (`runner.Config.to_json()`), the epochs finished, the batches of
  the next epoch already trained (0 at an epoch's end), the optimizer
  step, the history so far (per finished epoch, as `fit()` logged it), how
  many times the run was resumed before, and the state of the callbacks
  that keep one (`callback_state`);
- `model/<i>`: the values of `model.variables` (weights, BatchNorm
  statistics, Dropout's seed generators, a method's own state such as
  ARWP's gradient history);
- `optimizer/<i>`: the values of `model.optimizer.variables` (the step
  counter, the momentum, Keras's EMA of the weights);
- `metrics/<i>`: within an epoch, the values of `model.metrics_variables`
  (the running sums behind the epoch's logged loss and accuracy), so the
  epoch's logs are those of the run never stopped;
- `callback/<name>/<i>`: the arrays of a callback's state (SWA's sums);
- `rng/<i>`: the backend's global random state where Keras draws from it
  during training (PyTorch: an unseeded Dropout calls
  `torch.nn.functional.dropout`, which draws from torch's generator).

The values are the variables' own, in their own dtypes, so a run resumed
from a checkpoint continues bit for bit where the data order is a
function of the seed and the epoch (`data.pipeline.Batches`, which also
serves the rest of an epoch from any batch: `Batches.rest_of`) and the
noise a function of the seed and the optimizer step (`stream`).

A callback keeps a state across a checkpoint by defining
`get_checkpoint_state() -> (info, arrays)` (a JSON-ready dict and a list
of NumPy arrays) and `set_checkpoint_state(info, arrays)`; it is called
after the callback's own `on_train_begin`.
"""

import dataclasses
import json
import zipfile

import keras
import numpy as np

from keras_ssgd import kill_points
from keras_ssgd import store as store_lib

FORMAT = "ssgd-train checkpoint"
# 2: `batch` and `metrics/<i>` (checkpoints within an epoch). A version-1
# file is read as an epoch's end.
VERSION = 2
READABLE = (1, 2)
SUFFIX = ".checkpoint.npz"


@dataclasses.dataclass
class State:
    """What a checkpoint holds.

    Attributes:
        key: str, the run's key.
        recipe: dict, the recipe (`runner.Config.to_json()`).
        epoch: int, the epochs finished (the next one to train, 0-based).
        step: int, the optimizer step after them.
        history: dict, metric name -> per-epoch values so far.
        resumed: int, how many times the run was resumed before.
        model: list of arrays, `model.variables`' values.
        optimizer: list of arrays, `model.optimizer.variables`' values.
        callbacks: dict, callback name -> `(info, arrays)`.
        rng: list of arrays, the backend's global random state
            (`global_rng_state`).
        batch: int, the batches of epoch `epoch` already trained (0: the
            checkpoint is at the end of epoch `epoch - 1`).
        metrics: list of arrays, `model.metrics_variables`' values within
            an epoch (empty at an epoch's end).
        workers: int, the processes the run was spread over (Horovod's
            ranks; 1 on one device).
    """

    key: str
    recipe: dict
    epoch: int
    step: int
    history: dict
    resumed: int
    model: list
    optimizer: list
    callbacks: dict
    rng: list = dataclasses.field(default_factory=list)
    batch: int = 0
    metrics: list = dataclasses.field(default_factory=list)
    workers: int = 1


def global_rng_state():
    """The backend's global random state that training may draw from:
    PyTorch's generators (the CPU's, then each GPU's); none elsewhere
    (TensorFlow's and JAX's draws in Keras go through seed generators,
    which are variables)."""
    if keras.backend.backend() != "torch":
        return []
    import torch

    states = [torch.get_rng_state()]
    if torch.cuda.is_available():
        states += torch.cuda.get_rng_state_all()
    return [s.cpu().numpy() for s in states]


def set_global_rng_state(states):
    """Puts back `global_rng_state()`."""
    if not states:
        return
    import torch

    torch.set_rng_state(torch.from_numpy(states[0]))
    if len(states) > 1:
        torch.cuda.set_rng_state_all(
            [torch.from_numpy(s) for s in states[1:]])


def write(path, state):
    """Writes `state` to `path` atomically: the file is either the old
    checkpoint or the new one, never a mix."""
    meta = {
        "format": FORMAT, "version": VERSION, "key": state.key,
        "recipe": state.recipe, "epoch": state.epoch, "batch": state.batch,
        "step": state.step, "workers": state.workers,
        "history": state.history, "resumed": state.resumed,
        "model_variables": len(state.model),
        "optimizer_variables": len(state.optimizer),
        "rng_states": len(state.rng),
        "metrics_variables": len(state.metrics),
        "callbacks": {name: {"info": info, "arrays": len(arrays)}
                      for name, (info, arrays) in state.callbacks.items()},
    }
    arrays = {"meta": np.array(json.dumps(meta))}
    arrays.update({f"model/{i}": v for i, v in enumerate(state.model)})
    arrays.update({f"optimizer/{i}": v for i, v in enumerate(state.optimizer)})
    arrays.update({f"rng/{i}": v for i, v in enumerate(state.rng)})
    arrays.update({f"metrics/{i}": v for i, v in enumerate(state.metrics)})
    for name, (_, values) in state.callbacks.items():
        arrays.update({f"callback/{name}/{i}": v
                       for i, v in enumerate(values)})
    with store_lib.atomic_path(path) as tmp:
        with open(tmp, "wb") as file:
            np.savez(file, **arrays)


def _check_workers(path, state, workers):
    if state.workers != workers:
        raise store_lib.checkpoint_error(
            f"The checkpoint {path} was written by a run over "
            f"{state.workers} process(es); this run has {workers}. Continue "
            "it with the same number of ranks."
        )


def read(path, key, recipe_changes, workers=None):
    """The checkpoint in `path` of run `key`, checked.

    Args:
        path: the checkpoint file.
        key: the run it must belong to.
        recipe_changes: function of a saved recipe -> '' if it is the
            run folder's, else the differences in words
            (`store.RunStore.recipe_changes`).
        workers: int, the processes of the run that will continue it
            (Horovod's ranks), or None not to check.

    Raises:
        store.StoreError: the file cannot be read (cut short, not a
            checkpoint), or holds another run or another recipe; the
            message names the file.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile,
            zipfile.LargeZipFile) as error:
        raise store_lib.checkpoint_error(
            f"Cannot read the checkpoint {path}: it is not a complete .npz "
            f"file ({type(error).__name__}: {error}); it may have been cut "
            "short by a crash."
        ) from None
    try:
        meta = json.loads(str(arrays["meta"]))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("not a checkpoint")
        if meta.get("version") not in READABLE:
            raise ValueError("another version")
        state = State(
            key=meta["key"], recipe=meta["recipe"], epoch=int(meta["epoch"]),
            step=int(meta["step"]), history=dict(meta["history"]),
            resumed=int(meta["resumed"]),
            model=[arrays[f"model/{i}"]
                   for i in range(meta["model_variables"])],
            optimizer=[arrays[f"optimizer/{i}"]
                       for i in range(meta["optimizer_variables"])],
            callbacks={
                name: (entry["info"],
                       [arrays[f"callback/{name}/{i}"]
                        for i in range(entry["arrays"])])
                for name, entry in meta["callbacks"].items()
            },
            rng=[arrays[f"rng/{i}"] for i in range(meta["rng_states"])],
            batch=int(meta.get("batch", 0)),
            metrics=[arrays[f"metrics/{i}"]
                     for i in range(meta.get("metrics_variables", 0))],
            workers=int(meta.get("workers", 1)),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise store_lib.checkpoint_error(
            f"The checkpoint {path} is not an `ssgd-train` checkpoint of "
            f"format {' or '.join(map(str, READABLE))} (its `meta` is "
            "missing, incomplete, or of another version)."
        ) from None
    if state.key != key:
        raise store_lib.checkpoint_error(
            f"The checkpoint {path} holds the run {state.key!r}, not "
            f"{key!r} as its name says."
        )
    changed = (recipe_changes(state.recipe) if isinstance(state.recipe, dict)
               else "recipe: not a JSON object")
    if changed:
        raise store_lib.checkpoint_error(
            f"The checkpoint {path} was written by a run of another recipe "
            f"({changed})."
        )
    if workers is not None:
        _check_workers(path, state, workers)
    return state


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


class Checkpointing(keras.callbacks.Callback):
    """Writes the run's checkpoint at the end of every epoch, and with
    `every` every `every` optimizer steps within an epoch; with a `State`
    to continue from, puts it back when training begins.

    Place it after the callbacks whose state it keeps (their
    `on_train_begin` resets it, and their `on_epoch_end` updates it
    before it is saved).

    Args:
        path: the checkpoint file.
        key: str, the run's key.
        recipe: dict, the recipe (`runner.Config.to_json()`).
        stateful: dict, name -> a callback with `get_checkpoint_state`
            and `set_checkpoint_state`.
        restore: a `State`, or None to start from the beginning.
        every: int or None. Also write after every `every` batches of an
            epoch (counted from the epoch's first, so a multiple of the
            steps per execution is always between two executions); needs
            `steps_per_epoch`, and a training set the run can resume in
            the middle of an epoch (`data.pipeline.Batches.rest_of`).
        steps_per_epoch: int, the batches of an epoch.
        writes: bool, whether this process writes the checkpoint (Horovod:
            rank 0; every rank restores from the same file).
        workers: int, the processes the run is spread over; a checkpoint
            of a run over another number is refused.

    Attributes:
        history: dict, the per-epoch logs of every epoch trained so far,
            the restored ones first.
        resumed: int, how many times the run was resumed (0: never).
        skip: int, the batches of the first epoch of this fit that the
            run trained before it was stopped (`fit()` is then given the
            rest of that epoch only).
    """

    def __init__(self, path, key, recipe, stateful=None, restore=None,
                 every=None, steps_per_epoch=None, writes=True, workers=1):
        super().__init__()
        if restore is not None:
            _check_workers(path, restore, workers)
        self.path = path
        self.writes = writes
        self.workers = workers
        self.key = key
        self.recipe = recipe
        self.stateful = dict(stateful or {})
        self.restore = restore
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.history = {} if restore is None else {
            name: list(values) for name, values in restore.history.items()
        }
        self.resumed = 0 if restore is None else restore.resumed + 1
        self.skip = 0 if restore is None else restore.batch
        self._epoch = None
        self._rng = None  # a global random state to put back, at a step

    def on_train_begin(self, logs=None):
        if self.restore is None:
            return
        state = self.restore
        _assign(self.model.variables, state.model, "model", self.path)
        optimizer = self.model.optimizer
        if not optimizer.built:  # TensorFlow builds it at the first step
            optimizer.build(self.model.trainable_variables)
        _assign(optimizer.variables, state.optimizer,
                "optimizer", self.path)
        # A method on one step in `k` counts the steps from the optimizer's
        # step counter, which `fit()` read before this restore.
        sync = getattr(self.model, "sync_step_clock", None)
        if sync is not None:
            sync()
        missing = sorted(set(self.stateful) - set(state.callbacks))
        if missing:
            raise store_lib.checkpoint_error(
                f"The checkpoint {self.path} holds no state for the "
                f"callbacks {', '.join(missing)} of this run."
            )
        for name, callback in self.stateful.items():
            callback.set_checkpoint_state(*state.callbacks[name])
        if len(state.rng) != len(global_rng_state()):
            raise store_lib.checkpoint_error(
                f"The checkpoint {self.path} was written under another "
                "backend or device (its global random state does not fit "
                f"{keras.backend.backend()}'s)."
            )
        if state.batch:
            # Within an epoch, at its first step: starting the rest of the
            # epoch may draw from it (PyTorch's DataLoader draws a seed for
            # each new iterator, which the run never stopped did not do
            # there).
            self._rng = state.rng
        else:
            set_global_rng_state(state.rng)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        state = self.restore
        if state is not None and state.batch and epoch == state.epoch:
            # Within the epoch the run was stopped in: its running metrics
            # (fit() reset them just before this call).
            _assign(self.model.metrics_variables, state.metrics, "metrics",
                    self.path)
        self.restore = None  # put back once

    def on_train_batch_begin(self, batch, logs=None):
        if self._rng is not None:
            set_global_rng_state(self._rng)
            self._rng = None

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of the execution that just ended,
        # counted from this fit's first; the first epoch of a resumed fit
        # starts `skip` batches in.
        done = batch + 1 + self.skip
        # Due within the epoch only: the epoch's end writes anyway.
        due = (self.every and done < self.steps_per_epoch
               and not done % self.every)
        if due and self.writes:
            model = self.model  # on JAX, this attaches the step's state
            write(self.path, self._state(model, self._epoch, done,
                                         _values(model.metrics_variables)))
        kill_points.reached("batch")

    def on_epoch_end(self, epoch, logs=None):
        self.skip = 0
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        if self.writes:
            write(self.path, self._state(self.model, epoch + 1, 0, []))

    def _state(self, model, epoch, batch, metrics):
        optimizer = model.optimizer
        return State(
            key=self.key, recipe=self.recipe, epoch=epoch, batch=batch,
            step=int(keras.ops.convert_to_numpy(optimizer.iterations)),
            history=self.history, resumed=self.resumed,
            model=_values(model.variables),
            optimizer=_values(optimizer.variables),
            callbacks={name: callback.get_checkpoint_state()
                       for name, callback in self.stateful.items()},
            rng=global_rng_state(),
            metrics=metrics,
            workers=self.workers,
        )


def _assign(variables, values, what, path):
    """Sets `variables` to `values`; a `StoreError` naming `path` if they
    do not match (another model, optimizer or method)."""
    variables = list(variables)
    shapes = [(tuple(v.shape), str(keras.backend.standardize_dtype(v.dtype)))
              for v in variables]
    saved = [(tuple(a.shape), str(a.dtype)) for a in values]
    if shapes != saved:
        raise store_lib.checkpoint_error(
            f"The checkpoint {path} does not fit this run's {what}: it holds "
            f"{len(saved)} variables, the {what} has {len(shapes)}"
            + ("" if len(saved) != len(shapes) else
               " of other shapes or dtypes") + "."
        )
    for variable, value in zip(variables, values):
        variable.assign(value)


def for_run(path, key, recipe, callbacks, restore, every=None,
            steps_per_epoch=None, writes=True, workers=1):
    """The callback that saves the run in progress to `path` (and puts
    `restore` back), keeping the state of the `callbacks` that have one
    (`get_checkpoint_state`: SWA's average), each named by its class and
    place; with `every`, also every `every` steps within an epoch."""
    stateful = {
        f"{type(c).__name__}-{i}": c for i, c in enumerate(callbacks)
        if hasattr(c, "get_checkpoint_state")
    }
    return Checkpointing(path, key, recipe, stateful=stateful,
                         restore=restore, every=every,
                         steps_per_epoch=steps_per_epoch, writes=writes,
                         workers=workers)
