"""TensorFlow imported without its native start-up lines, for the commands.

`quiet_tensorflow()` is the first thing `ssgd-train` and `ssgd-landscape`
do, before anything imports Keras. The library itself never calls it:
`import keras_ssgd` leaves the user's environment and standard error as
they are.

TensorFlow 2.21 writes its start-up lines through absl's C++ logging while
its shared libraries load: "oneDNN custom operations are on" (on any CPU
where oneDNN runs, for example every AVX-512 CPU, or anywhere with
`TF_ENABLE_ONEDNN_OPTS=1`), the `cpu_feature_guard` notice, and absl's
"All log messages before absl::InitializeLog() is called are written to
STDERR". Some of them ignore `TF_CPP_MIN_LOG_LEVEL`, and they go to the
process's file descriptor 2, past Python's `sys.stderr`.

`import_quietly("keras")` (which imports TensorFlow where it is the
backend) or `import_quietly("tensorflow")` imports with descriptor 2 sent
to a temporary file, then writes back what `TF_CPP_MIN_LOG_LEVEL` lets through
(`filter_native_log`): the level's meaning is TensorFlow's own (0 all, 1
no INFO, 2 no INFO or WARNING, 3 no ERROR either). Everything that is not
an absl log line (Python warnings, tracebacks) is written back unchanged.

Example:

>>> from keras_ssgd import native_log
>>> text = ("WARNING: All log messages before absl::InitializeLog() is "
...         "called are written to STDERR\\n"
...         "I0000 00:00:1.5  10 port.cc:153] oneDNN custom operations "
...         "are on.\\n"
...         "E0000 00:00:1.6  10 cuda.cc:1] no GPU\\n")
>>> print(native_log.filter_native_log(text, min_level=2), end="")
E0000 00:00:1.6  10 cuda.cc:1] no GPU

Reference:
- TensorFlow's `TF_CPP_MIN_LOG_LEVEL`
  (`tensorflow/tsl/platform/default/logging.cc`) and absl's log line
  prefix (`absl/log/internal/log_format.cc`).
"""

import contextlib
import importlib
import os
import re
import sys
import tempfile

# absl's prefix: severity letter, MMDD, time, thread id, file:line].
_PREFIX = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ [^\]]*\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog()"


def filter_native_log(text, min_level):
    """The lines of `text` that log level `min_level` keeps.

    A log message is its prefixed line and the unprefixed lines after it
    (TensorFlow writes some messages over two lines). Lines before the
    first message and absl's own preamble line are kept and dropped
    respectively; lines that are not absl's are always kept.

    Args:
        text: str. What a native library wrote to standard error.
        min_level: int. `TF_CPP_MIN_LOG_LEVEL`: messages of a lower
            severity (INFO 0, WARNING 1, ERROR 2, FATAL 3) are dropped.

    Returns:
        str, the kept lines with their line ends.
    """
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        if line.startswith(_PREAMBLE):
            keep = True
            continue
        match = _PREFIX.match(line)
        if match:
            keep = _SEVERITY[match.group(1)] >= min_level
        if keep:
            kept.append(line)
    return "".join(kept)


def _min_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def _native_stderr_filtered():
    """Descriptor 2 into a temporary file; the kept lines written back."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no descriptor 2 to redirect (an embedded interpreter)
        return
    with tempfile.TemporaryFile(mode="w+b") as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            buffer.seek(0)
            text = buffer.read().decode("utf-8", errors="replace")
            kept = filter_native_log(text, _min_level())
            if kept:
                os.write(2, kept.encode("utf-8"))


def import_quietly(name):
    """Imports module `name` without TensorFlow's native start-up lines.

    What is left after `TF_CPP_MIN_LOG_LEVEL` (see `filter_native_log`) is
    written back to standard error; an import that fails raises as usual,
    with everything it wrote. A module imported before is returned at once.

    Args:
        name: str. The module, for example `"keras"` or `"tensorflow"`.

    Returns:
        The module.
    """
    if name in sys.modules:
        return sys.modules[name]
    with _native_stderr_filtered():
        return importlib.import_module(name)


def quiet_tensorflow():
    """Turns TensorFlow's start-up lines off for a command's process.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` unless the user set it (warnings and
    errors still print), then imports Keras, and TensorFlow where it is
    the backend, through `import_quietly`. To be called by a command
    before anything imports Keras: the value has to be set before
    TensorFlow's first import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import_quietly("keras")
