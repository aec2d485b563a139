"""`ssgd-train`: the command that trains and compares methods.

The pieces, each usable alone: `registry` (methods, models, datasets by
name), `runner` (one run: a method, a level, a seed), `store` (results on
disk, one file per finished run, resume), `report` (table, summary, plot),
`verdict` (each method against SGD, paired by seed), `user` and `checks`
(the user's `module:function` and its model checked against the data),
`compare` (`keras_ssgd.compare`, the sweep) and `cli` (the command line).
"""

from keras_ssgd.train.cli import main

__all__ = ["main"]
