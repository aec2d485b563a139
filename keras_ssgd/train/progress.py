"""The progress line of an `ssgd-train` sweep, while it trains.

`SweepProgress` shows one line per run: its epoch, loss and accuracy, the
time left for the run and for the sweep. On a terminal the line is
rewritten after every epoch; elsewhere only its final form is written, one
per run. The sweep's time left is the work left (epochs times passes per
step) at the pace measured so far.
"""

import shutil
import sys
import time

import keras



def duration(seconds):
    """`seconds` for a person: `42 s`, `3 min 5 s`, `1 h 2 min`."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def run_label(spec, lr=False):
    """`sgd seed 0`, `ssgd 0.2 seed 1`; with `lr`, `ssgd 0.2 lr 0.05 seed
    1` (a sweep over learning rates)."""
    level = "" if spec.level is None else f" {spec.level:g}"
    lr = ("" if not lr or getattr(spec, "lr", None) is None
          else f" lr {spec.lr:g}")
    epochs = ("" if getattr(spec, "epochs", None) is None
              else f" ({spec.epochs} epochs)")
    return f"{spec.method}{level}{lr}{epochs} seed {spec.seed}"


class SweepProgress:
    """The progress line of a sweep of runs.

    `start(i)` before run `i` (from 0) returns the Keras callback that
    follows its epochs; `finish(i, record)` after it writes its final line.

    Args:
        specs: the runs to train (`runner.RunSpec`), in order.
        epochs: int, epochs per run, or a list of them, one per run (an
            equal-passes sweep).
        costs: passes per step of each run (same order as `specs`), the
            weight of its epochs in the sweep's time left. Defaults to 1
            for every run.
        stream: the file to write to. Defaults to `sys.stdout`.
        in_place: bool, rewrite the line after every epoch (a terminal),
            or write one line per finished run. Defaults to whether
            `stream` is a terminal.
        clock: function returning seconds. Defaults to `time.monotonic`.
    """

    def __init__(self, specs, epochs, costs=None, stream=None, in_place=None,
                 clock=time.monotonic):
        self.specs = list(specs)
        if isinstance(epochs, (list, tuple)):
            self.run_epochs = [int(e) for e in epochs]
        else:
            self.run_epochs = [int(epochs)] * len(self.specs)
        self.costs = [1.0] * len(self.specs) if costs is None else [
            float(c) for c in costs
        ]
        # A sweep over learning rates names each run's.
        self.show_lr = len({getattr(s, "lr", None) for s in self.specs}) > 1
        self.stream = sys.stdout if stream is None else stream
        if in_place is None:
            isatty = getattr(self.stream, "isatty", None)
            in_place = bool(isatty and isatty())
        self.in_place = in_place
        self.clock = clock
        self._done_work = 0.0  # epochs x passes of the finished runs
        self._done_seconds = 0.0
        self._index = None
        self._started = None
        self._epoch = 0
        self._first = 0  # the epoch the run in progress started at here
        self._logs = {}

    # The run being trained.

    def start(self, index, first_epoch=0):
        """Run `index` begins (at epoch `first_epoch`, where it continues
        from a checkpoint: the pace counts only the epochs trained here);
        returns its callback."""
        self._index = index
        self._started = self.clock()
        self._epoch = self._first = first_epoch
        self._logs = {}
        if self.in_place:
            self._write(self._line(), end="")
        return _EpochCallback(self)

    def epoch_end(self, epoch, logs):
        self._epoch = epoch + 1
        self._logs = dict(logs or {})
        if self.in_place:
            self._write(self._line(), end="")

    def finish(self, index, record):
        """Run `index` is done (`record`, as `runner.train` returns it)."""
        elapsed = (0.0 if self._started is None
                   else self.clock() - self._started)
        self._index = index
        epochs = record.get("epochs_run") or self._epoch or self.epochs
        self._epoch = epochs
        # The work of this session only: the seconds measured are its own.
        self._done_work += max(epochs - self._first, 0) * self.costs[index]
        self._first = 0
        self._done_seconds += elapsed
        self._started = None
        accuracy = record.get("test_accuracy")
        if record.get("status") == "diverged" or (
            accuracy is None and "test_accuracy" in record
        ):
            result = "diverged"
        elif accuracy is not None:
            result = f"test {accuracy:.2f}%"
        else:
            result = "done"
        tail = f"{result}  {duration(elapsed)}"
        left = self._sweep_left(index + 1, run_left=0.0)
        if left is not None and index + 1 < len(self.specs):
            tail += f"  sweep ETA {duration(left)}"
        self._write(self._line(tail=tail), end="\n")

    @property
    def epochs(self):
        """The epochs of the run being trained."""
        return self.run_epochs[self._index or 0] if self.run_epochs else 0

    # Formatting.

    def _line(self, tail=None):
        index = self._index
        spec = self.specs[index]
        parts = [f"[{index + 1}/{len(self.specs)}] "
                 f"{run_label(spec, self.show_lr)}"]
        parts.append(f"epoch {self._epoch}/{self.epochs}")
        loss = self._logs.get("loss")
        accuracy = self._logs.get("accuracy")
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if accuracy is not None:
            parts.append(f"acc {100.0 * float(accuracy):.2f}%")
        if tail is None and self._epoch and self._epoch >= self.epochs:
            parts.append("evaluating")
        elif tail is None:
            run_left = self._run_left()
            if run_left is not None:
                eta = f"ETA {duration(run_left)}"
                left = self._sweep_left(index + 1, run_left)
                if left is not None and index + 1 < len(self.specs):
                    eta += f", sweep {duration(left)}"
                parts.append(eta)
        else:
            parts.append(tail)
        return "  ".join(parts)

    def _run_left(self):
        """Seconds left in the current run, from its pace per epoch."""
        trained = self._epoch - self._first
        if trained <= 0 or self._started is None:
            return None
        elapsed = self.clock() - self._started
        return elapsed / trained * max(self.epochs - self._epoch, 0)

    def _sweep_left(self, next_index, run_left):
        """Seconds left in the sweep: the current run's, then the runs from
        `next_index` on at the pace measured so far."""
        work = self._done_work
        seconds = self._done_seconds
        if self._started is not None and self._epoch > self._first:
            work += (self._epoch - self._first) * self.costs[self._index]
            seconds += self.clock() - self._started
        if not work:
            return None
        pace = seconds / work
        rest = sum(c * e for c, e in zip(self.costs[next_index:],
                                         self.run_epochs[next_index:]))
        return run_left + pace * rest

    def _write(self, line, end):
        if self.in_place:
            width = shutil.get_terminal_size((100, 24)).columns - 1
            line = "\r" + line[:width] + "\x1b[K"
        self.stream.write(line + end)
        self.stream.flush()


class _EpochCallback(keras.callbacks.Callback):
    """Passes each epoch's logs to the `SweepProgress`."""

    def __init__(self, progress):
        super().__init__()
        self._progress = progress

    def on_epoch_end(self, epoch, logs=None):
        self._progress.epoch_end(epoch, logs)
