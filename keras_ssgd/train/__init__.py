"""`ssgd-train`: the command that trains and compares methods.

The pieces, each usable alone: `registry` (methods, models, datasets by
name), `plan` (a comparison checked before any run: its arguments, the
user's data read and the user's model built on it), `runner` (one run: a
method, a level, a seed), `report` (what a sweep shows: the progress line
while it trains, then the table, summary and plot), `verdict` (each method
against SGD, paired by seed), `compare` (`keras_ssgd.compare`, the sweep)
and `cli` (the command line). Below them: `keras_ssgd.store` (results on disk),
`keras_ssgd.user_code` (the user's `module:function`) and
`keras_ssgd.distributed.engines` (how one run spreads over devices).
"""

from keras_ssgd.train.cli import main

__all__ = ["main"]
