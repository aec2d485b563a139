"""Results on disk: one JSON file per finished run, written as it finishes.

Layout of a run folder:

    config.json      the shared recipe and the planned runs
    runs/<key>.json  one record per finished run (method, level, seed)
    runs/<key>.keras the trained model of that run
    runs/<key>.checkpoint.npz
                     the run in progress (`keras_ssgd.checkpoint`): rewritten
                     at the end of every epoch, deleted once its record
                     is written
    results.json     config + every record + the summary, rewritten as
                     runs finish
    summary.md       the table (written by `report`)
    accuracy.png     test accuracy against noise level (written by `report`)

Every file is written atomically (`atomic_write_text`, `atomic_path`): to a
temporary file in the same folder, flushed to disk, then renamed onto its
name. A run killed at any moment leaves each file either absent or complete
(at worst a hidden `.<name>.<random>.tmp...` file, which is never read).
"""

import contextlib
import errno
import json
import os
import pathlib
import secrets
import types

from keras_ssgd import kill_points


class StoreError(Exception):
    """The output folder cannot be used; the message says why.

    A message may name two arguments of the caller: whether to resume and
    the output folder. `str(error)` names them neutrally (`resume`,
    `output`); `error.worded(resume=..., output=...)` gives the message in
    the caller's own words (`ssgd-train`: `--resume`, `--output`;
    `compare()`: `resume=True`, `output`).

    Args:
        message: callable. The message, given the words for the arguments
            (an object with `resume` and `output` attributes).
    """

    NEUTRAL = {"resume": "resume", "output": "output"}

    def __init__(self, message):
        self._message = message
        super().__init__(message(types.SimpleNamespace(**self.NEUTRAL)))

    def worded(self, **words):
        """The message with each argument named as in `words`."""
        return self._message(
            types.SimpleNamespace(**{**self.NEUTRAL, **words})
        )


# How to get past a damaged record or configuration, for the messages.
def _record_fix(words):
    return ("Delete or move it to train that run again, or pick another "
            f"{words.output}.")


def _config_fix(words):
    return f"Restore the file, or pick another {words.output}."


def _checkpoint_fix(words):
    return ("Delete or move it to train that run again from its first "
            f"epoch, or pick another {words.output}.")


def checkpoint_error(text):
    """A `StoreError` for a checkpoint that cannot be used (`text` names
    the file), with how to get past it."""
    return _error(text, _checkpoint_fix)


def _error(text, fix=None):
    """A `StoreError` of `text` (which names no argument), then `fix`."""
    return StoreError(lambda w: f"{text} {fix(w)}" if fix else text)

# Why a recipe field differs, where a version changed it.
_FIELD_NOTES = {
    "data_order": (
        "The training data order changed: runs of this version draw it "
        "with NumPy from the seed and the epoch (the same on every "
        "backend), the saved runs used tf.data's shuffle; the two cannot "
        "combine."
    ),
}


def atomic_write_text(path, text):
    """Writes `text` (UTF-8) to `path` so that it is never seen half-written.

    The text goes to a temporary file in the same folder, is flushed and
    `fsync`ed, then renamed onto `path` with `os.replace` (atomic on POSIX
    and Windows); the folder is `fsync`ed where the platform allows. If
    anything fails or the process is interrupted before the rename, `path`
    keeps its old content (or stays absent) and the temporary file is
    removed.

    Args:
        path: str or `pathlib.Path`, the file to write.
        text: str, the whole new content.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path for a writer that takes a path; renamed on success.

    For writers such as `model.save(path)` or `figure.savefig(path)`: they
    write to the yielded path (in the same folder as `path`, ending in the
    same suffix, which Keras and Matplotlib need); when the block ends
    without an exception the file is `fsync`ed and renamed onto `path`.
    On an exception (an interrupt included) the temporary file is removed
    and `path` is left as it was.

    Example:

    ```python
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with atomic_path("sgd-seed0.keras") as tmp:
        model.save(tmp)
    ```

    Args:
        path: str or `pathlib.Path`, the final file.

    Yields:
        A `pathlib.Path` that does not exist yet.
    """
    path = pathlib.Path(path)
    tmp = _temp_name(path, suffix=path.suffix)
    try:
        kill_points.reached("write-start")
        yield tmp
        kill_points.reached("write-written")
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        kill_points.reached("write-synced")
        os.replace(tmp, path)
        kill_points.reached("write-renamed")
    except OSError as error:
        _remove_quietly(tmp)
        raise write_error(path, error) from error
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_folder(path.parent)


class WriteError(StoreError, OSError):
    """A file of the output folder could not be written (a full disk, a
    folder made read-only, a quota). Still an `OSError`, as the failure
    that caused it."""


def write_error(path, error):
    """A `WriteError` for `path`, which could not be written: it names the
    file and the system's reason, and says that what the file held is
    kept."""
    reason = error.strerror or str(error)
    code = errno.errorcode.get(error.errno)
    if code:
        reason = f"{reason} ({code})"
    text = (f"Could not write {path}: {reason}. What it held before, if "
            "anything, is kept unchanged, and every file written earlier "
            "stays.")
    return WriteError(lambda words: (
        f"{text} Free space or fix the folder's permissions, then continue "
        f"with {words.resume}; or pick another {words.output}."
    ))


def is_temp_file(path):
    """Whether `path` is a temporary file of `atomic_write_text`/`atomic_path`."""
    name = pathlib.Path(path).name
    return name.startswith(".") and ".tmp" in name


def _temp_name(path, suffix):
    token = secrets.token_hex(4)
    return path.with_name(f".{path.name}.{token}.tmp{suffix}")


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _fsync_folder(folder):
    """Makes a rename in `folder` durable; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def temp_files(folder):
    """The temporary files of atomic writes in the run folder `folder`
    (and its `runs/`): left only by a process killed while writing."""
    folder = pathlib.Path(folder)
    return sorted(
        path for where in (folder, folder / "runs") if where.is_dir()
        for path in where.iterdir() if is_temp_file(path)
    )


def record_paths(folder):
    """The record files of the run folder `folder`, temporary files left out."""
    return sorted(
        path for path in (pathlib.Path(folder) / "runs").glob("*.json")
        if not is_temp_file(path)
    )


class RunStore:
    """The run folder of one `ssgd-train` invocation.

    Args:
        folder: path of the run folder.
        config: JSON-ready dict: `recipe` (shared by every run) and `runs`
            (the planned run keys).
        resume: bool. Continue a folder that holds earlier results with the
            same recipe (their runs are skipped; the planned runs may
            change, to add seeds or levels, and the saved plan becomes the
            union of the earlier and the new one, so the results of
            several invocations combine). Without it, a folder that
            already holds results is refused, so nothing is overwritten.
        defaults: dict of recipe fields to their default values. A field
            missing from a saved recipe (written by an older version)
            matches when the new value is its default.
        required: the fields every record must hold (besides `key`), checked
            when the records are read.

    Raises:
        StoreError: the folder is not writable, holds results while
            `resume` is false, holds a different recipe, or (with `resume`)
            holds a record that cannot be read: not UTF-8, not JSON, not a
            JSON object with the `required` fields, named after another run,
            or trained with another recipe.
    """

    def __init__(self, folder, config, resume=False, defaults=None,
                 required=()):
        self.folder = pathlib.Path(folder)
        self.config = config
        self.defaults = defaults or {}
        self.required = ("key", *(f for f in required if f != "key"))
        config_path = self.folder / "config.json"
        if resume:
            if not config_path.exists():
                folder = self.folder
                raise StoreError(lambda w: (
                    f"{w.resume}: {folder} holds no earlier run "
                    f"(no config.json). Pass the {w.output} folder of the "
                    "run to continue."
                ))
            saved = _read_json(config_path, "the run configuration",
                               _config_fix)
            if not isinstance(saved, dict) or not isinstance(
                saved.get("recipe", {}), dict
            ):
                received = _describe(saved)
                raise StoreError(lambda w: (
                    f"{w.resume}: {config_path} is not a run configuration "
                    "(expected a JSON object with a `recipe` object). "
                    f"Received: {received}. Pass the {w.output} folder "
                    "of an `ssgd-train` run."
                ))
            changed = self._recipe_changes(saved.get("recipe", {}))
            if changed:
                raise StoreError(lambda w: (
                    f"{w.resume}: the recipe differs from the one in "
                    f"{config_path} ({changed}). Resume with the same "
                    f"recipe, or pick another {w.output}."
                ))
            self.records()  # every record readable, before any training
            # A kill during a write leaves its temporary file, which is
            # never read: the folder's one writer removes them.
            for leftover in self.temp_files():
                _remove_quietly(leftover)
            # Several invocations over one recipe combine: the plan keeps
            # the runs planned before (in their order), then the new ones.
            planned = saved.get("runs")
            if isinstance(planned, list) and all(
                isinstance(key, str) for key in planned
            ) and isinstance(config.get("runs"), list):
                self.config = config = {
                    **config,
                    "runs": list(dict.fromkeys([*planned, *config["runs"]])),
                }
        elif config_path.exists() or self._records_dir().exists():
            folder = self.folder
            raise StoreError(lambda w: (
                f"{folder} already holds results. Pass {w.resume} to "
                "continue it or to add runs of the same recipe (more seeds, "
                f"methods or levels), or pick another {w.output}."
            ))
        try:
            self._records_dir().mkdir(parents=True, exist_ok=True)
            _write_json(config_path, config)
        except OSError as error:
            raise _error(
                f"Cannot write to the output folder {self.folder}: {error}"
            ) from error

    def _records_dir(self):
        return self.folder / "runs"

    def _recipe_changes(self, saved):
        """`saved` against this store's recipe: '' or 'k: a there, b now'."""
        recipe = self.config.get("recipe", {})
        changed = sorted(
            k for k in set(saved) | set(recipe)
            if saved.get(k, self.defaults.get(k)) != recipe.get(k)
        )
        text = ", ".join(
            f"{k}: {saved.get(k)!r} there, {recipe.get(k)!r} now"
            for k in changed
        )
        notes = " ".join(_FIELD_NOTES[k] for k in changed if k in _FIELD_NOTES)
        return f"{text}. {notes}" if notes else text

    def temp_files(self):
        """The temporary files left in the folder by a killed write."""
        return temp_files(self.folder)

    def records(self):
        """The finished runs' records, in the order they finished.

        Raises:
            StoreError: a record file cannot be read or is not a record of
                this recipe; the message names the file.
        """
        records = [self._read_record(path)
                   for path in record_paths(self.folder)]
        return sorted(records, key=lambda r: r.get("finished", 0))

    def _read_record(self, path):
        """The record in `path`, checked; `StoreError` naming it if bad."""
        record = _read_json(path, "the run record", _record_fix)
        if not isinstance(record, dict):
            raise _error(
                f"The run record {path} must hold a JSON object. Received: "
                f"{_describe(record)}.", _record_fix
            )
        missing = [f for f in self.required if f not in record]
        if missing:
            raise _error(
                f"The run record {path} is incomplete or from another tool: it "
                f"lacks {', '.join(map(repr, missing))}. Received the "
                f"fields: {', '.join(map(repr, record)) or 'none'}.",
                _record_fix,
            )
        if record["key"] != path.stem:
            raise _error(
                f"The run record {path} holds the run {record['key']!r}, not "
                f"{path.stem!r} as its name says.", _record_fix
            )
        recipe = record.get("recipe")
        if recipe is not None:  # records of older versions hold none
            changed = (
                self._recipe_changes(recipe) if isinstance(recipe, dict)
                else f"recipe: {_describe(recipe)}"
            )
            if changed:
                raise _error(
                    f"The run record {path} was trained with another recipe "
                    f"than {self.folder / 'config.json'} ({changed}).",
                    _record_fix,
                )
        return record

    def done(self):
        """The keys of the finished runs."""
        return {path.stem for path in record_paths(self.folder)}

    def checkpoint_path(self, key):
        """Where the checkpoint of run `key` in progress is kept."""
        return self._records_dir() / f"{key}.checkpoint.npz"

    def recipe_changes(self, saved):
        """A saved recipe against this folder's: '' where they are the
        same, else the fields that differ, in words."""
        return self._recipe_changes(saved)

    def model_path(self, key):
        """Where the trained model of run `key` is saved."""
        return self._records_dir() / f"{key}.keras"

    def save(self, record):
        """Writes one finished run's record (atomically), with the recipe.

        The recipe is stored in the record (`recipe`), so that a record
        moved into another run folder is recognized on `--resume`.
        """
        record = {**record, "recipe": self.config.get("recipe", {})}
        _write_json(self._records_dir() / f"{record['key']}.json", record)

    def write_results(self, summary, verdicts=None):
        """Rewrites `results.json`: config, every record, the summary and
        (if given) the verdicts against SGD."""
        payload = {"config": self.config, "runs": self.records(),
                   "summary": summary}
        if verdicts is not None:
            payload["verdicts"] = verdicts
        _write_json(self.folder / "results.json", payload)


def _write_json(path, payload):
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def _read_json(path, what, fix):
    """The JSON value in `path`; `StoreError` saying `what` it is and how to
    `fix` it (`fix(words)`, as `StoreError` takes messages)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise _error(
            f"Cannot read {what} {path}: it is not UTF-8 text (byte "
            f"{error.start}: {error.object[error.start:error.start + 1]!r}).",
            fix,
        ) from None
    except OSError as error:
        raise _error(f"Cannot read {what} {path}: {error}.", fix) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        state = "is empty" if not text.strip() else (
            f"is not valid JSON ({error.msg} at line {error.lineno} column "
            f"{error.colno}); it may have been cut short by a crash"
        )
        raise _error(f"Cannot read {what} {path}: it {state}.", fix) from None


def _describe(value):
    """A short description of a JSON value, for error messages."""
    kind = {dict: "a JSON object", list: "a JSON list", str: "a JSON string",
            bool: "a JSON boolean", type(None): "JSON null"}.get(
        type(value), "a JSON number")
    text = json.dumps(value)
    return f"{kind} {text[:60]}{'...' if len(text) > 60 else ''}"
