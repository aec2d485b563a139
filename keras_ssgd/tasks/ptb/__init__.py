"""Penn Treebank: word-level language modelling with SGD or S-SGD (Table 5).

The pieces: `data` (Mikolov's files, word ids, windows), `lstm` (Zaremba et
al.'s models), `recipe` (their recipes and learning-rate schedule),
`callbacks` (state resets), `perplexity` (the loss and the measure) and
`training` (one run, and a resumable sweep of runs); `data` and `training`
need TensorFlow, so `train_run`, `run_sweep` and `summarize` are imported
on first use.

Example:

<!-- example: skip needs Mikolov's PTB files in simple-examples/data. -->
```python
from keras_ssgd.tasks import ptb
from keras_ssgd.tasks.ptb import data

ids, vocabulary = data.ptb_ids("simple-examples/data")
record = ptb.train_run(ptb.RECIPES["large"], ids, len(vocabulary),
                       method="ssgd", level=1.0, seed=0)
print(record["test_perplexity"])
```
"""

import importlib

from keras_ssgd.tasks.ptb.callbacks import ResetStates
from keras_ssgd.tasks.ptb.callbacks import reset_states
from keras_ssgd.tasks.ptb.perplexity import perplexity
from keras_ssgd.tasks.ptb.perplexity import sequence_cross_entropy
from keras_ssgd.tasks.ptb.perplexity import token_cross_entropy
from keras_ssgd.tasks.ptb.recipe import PAPER_TABLE5
from keras_ssgd.tasks.ptb.recipe import RECIPES
from keras_ssgd.tasks.ptb.recipe import PTBRecipe
from keras_ssgd.tasks.ptb.recipe import recipe_for
from keras_ssgd.tasks.ptb.recipe import zaremba_schedule

# `training` reads the data through TensorFlow: its names load on first use.
_TRAINING = ("run_sweep", "summarize", "train_run")


def __getattr__(name):
    if name in _TRAINING:
        value = getattr(importlib.import_module(f"{__name__}.training"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PAPER_TABLE5", "PTBRecipe", "RECIPES", "ResetStates", "perplexity",
    "recipe_for", "reset_states", "run_sweep", "sequence_cross_entropy",
    "summarize", "token_cross_entropy", "train_run", "zaremba_schedule",
]
