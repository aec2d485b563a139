"""Results on disk: one JSON file per finished run, written as it finishes.

Layout of a run folder:

    config.json      the shared recipe and the planned runs
    runs/<key>.json  one record per finished run (method, level, seed)
    runs/<key>.keras the trained model of that run
    results.json     config + every record + the summary, rewritten as
                     runs finish
    summary.md       the table (written by `report`)
    accuracy.png     test accuracy against noise level (written by `report`)

Files are written to a temporary name and renamed, so an interrupted run
never leaves a half-written record.
"""

import json
import os
import pathlib


class StoreError(Exception):
    """The output folder cannot be used; the message says why."""


class RunStore:
    """The run folder of one `ssgd-train` invocation.

    Args:
        folder: path of the run folder.
        config: JSON-ready dict: `recipe` (shared by every run) and `runs`
            (the planned run keys).
        resume: bool. Continue a folder that holds earlier results with the
            same recipe (their runs are skipped; the planned runs may
            change, to add seeds or levels). Without it, a folder that
            already holds results is refused, so nothing is overwritten.
        defaults: dict of recipe fields to their default values. A field
            missing from a saved recipe (written by an older version)
            matches when the new value is its default.

    Raises:
        StoreError: the folder is not writable, holds results while
            `resume` is false, or holds a different recipe.
    """

    def __init__(self, folder, config, resume=False, defaults=None):
        self.folder = pathlib.Path(folder)
        self.config = config
        config_path = self.folder / "config.json"
        if resume:
            if not config_path.exists():
                raise StoreError(
                    f"--resume: {self.folder} holds no earlier run "
                    "(no config.json). Pass the --output folder of the run "
                    "to continue."
                )
            saved = json.loads(config_path.read_text()).get("recipe", {})
            recipe = config.get("recipe", {})
            defaults = defaults or {}
            changed = sorted(
                k for k in set(saved) | set(recipe)
                if saved.get(k, defaults.get(k)) != recipe.get(k)
            )
            if changed:
                detail = ", ".join(
                    f"{k}: {saved.get(k)!r} there, {recipe.get(k)!r} now"
                    for k in changed
                )
                raise StoreError(
                    f"--resume: the recipe differs from the one in "
                    f"{config_path} ({detail}). Resume with the same "
                    "recipe, or pick another --output."
                )
        elif config_path.exists() or self._records_dir().exists():
            raise StoreError(
                f"{self.folder} already holds results. Pass --resume to "
                "continue it, or pick another --output."
            )
        try:
            self._records_dir().mkdir(parents=True, exist_ok=True)
            _write_json(config_path, config)
        except OSError as error:
            raise StoreError(
                f"Cannot write to the output folder {self.folder}: {error}"
            ) from error

    def _records_dir(self):
        return self.folder / "runs"

    def records(self):
        """The finished runs' records, in the order they finished."""
        records = []
        for path in self._records_dir().glob("*.json"):
            records.append(json.loads(path.read_text()))
        return sorted(records, key=lambda r: r.get("finished", 0))

    def done(self):
        """The keys of the finished runs."""
        return {path.stem for path in self._records_dir().glob("*.json")}

    def model_path(self, key):
        """Where the trained model of run `key` is saved."""
        return self._records_dir() / f"{key}.keras"

    def save(self, record):
        """Writes one finished run's record (atomically)."""
        _write_json(self._records_dir() / f"{record['key']}.json", record)

    def write_results(self, summary):
        """Rewrites `results.json`: config, every record and the summary."""
        _write_json(
            self.folder / "results.json",
            {"config": self.config, "runs": self.records(),
             "summary": summary},
        )


def _write_json(path, payload):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
