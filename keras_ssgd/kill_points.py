"""Named points where a test kills the process, to check that a kill at
any moment loses at most the work since the last checkpoint and never
corrupts what was written.

Inactive (one comparison per point) unless the environment variable
`KERAS_SSGD_KILL_AT` is set when this module is imported, to `NAME:N`:
the process sends itself SIGKILL (no handler runs, no file is closed) the
`N`-th time it reaches the point `NAME`. The points:

- `write-start`: an atomic write (`store.atomic_path`) begins, its
  temporary file not yet created;
- `write-written`: the temporary file is written, not yet `fsync`ed;
- `write-synced`: it is `fsync`ed, not yet renamed onto the file;
- `write-renamed`: it is renamed, the folder not yet `fsync`ed;
- `batch`: an execution of training steps ended (its checkpoint within
  the epoch, if one was due, written), in a run that checkpoints.

`tests/train/test_kill_points.py` kills `ssgd-train` at each, then at
seeded random batches, and checks the resumed sweep against the one never
stopped.
"""

import os
import signal

VARIABLE = "KERAS_SSGD_KILL_AT"
POINTS = ("write-start", "write-written", "write-synced", "write-renamed",
          "batch")


def _parse(text):
    if not text:
        return None
    name, _, count = text.rpartition(":")
    if name not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(
            f"{VARIABLE} must be NAME:N, NAME one of {', '.join(POINTS)} "
            f"and N >= 1. Received: {VARIABLE}={text!r}"
        )
    return name, int(count)


_AT = _parse(os.environ.get(VARIABLE))
_reached = {}


def reached(name):
    """Marks point `name` as reached; kills the process if it is the one
    `KERAS_SSGD_KILL_AT` names, for the time it names."""
    if _AT is None or name != _AT[0]:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == _AT[1]:
        os.kill(os.getpid(), signal.SIGKILL)
