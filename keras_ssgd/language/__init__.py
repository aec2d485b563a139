"""Word-level language modelling on PTB with SGD or S-SGD (Table 5).

The pieces: `recipe` (Zaremba et al.'s recipes and learning-rate schedule),
`callbacks` (state resets), `perplexity` (the loss and the measure) and
`training` (one run, and a resumable sweep of runs).

Example:

```python
from keras_ssgd import language
from keras_ssgd.data import ptb

ids, vocabulary = ptb.ptb_ids("simple-examples/data")
record = language.train_run(language.RECIPES["large"], ids, len(vocabulary),
                            method="ssgd", level=1.0, seed=0)
print(record["test_perplexity"])
```
"""

from keras_ssgd.language.callbacks import ResetStates
from keras_ssgd.language.callbacks import reset_states
from keras_ssgd.language.perplexity import perplexity
from keras_ssgd.language.perplexity import sequence_cross_entropy
from keras_ssgd.language.perplexity import token_cross_entropy
from keras_ssgd.language.recipe import PAPER_TABLE5
from keras_ssgd.language.recipe import RECIPES
from keras_ssgd.language.recipe import PTBRecipe
from keras_ssgd.language.recipe import recipe_for
from keras_ssgd.language.recipe import zaremba_schedule
from keras_ssgd.language.training import run_sweep
from keras_ssgd.language.training import summarize
from keras_ssgd.language.training import train_run

__all__ = [
    "PAPER_TABLE5", "PTBRecipe", "RECIPES", "ResetStates", "perplexity",
    "recipe_for", "reset_states", "run_sweep", "sequence_cross_entropy",
    "summarize", "token_cross_entropy", "train_run", "zaremba_schedule",
]
