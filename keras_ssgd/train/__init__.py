"""`ssgd-train`: the command that trains and compares methods.

The pieces, each usable alone: `registry` (methods, models, datasets by
name), `plan` (the checked arguments of a comparison), `preflight` (the
user's data read and model checked against it, before training), `runner`
(one run: a method, a level, a seed), `progress` (the progress line),
`report` (table, summary, plot), `verdict` (each method against SGD, paired
by seed), `compare` (`keras_ssgd.compare`, the sweep) and `cli` (the
command line). Below them: `keras_ssgd.store` (results on disk),
`keras_ssgd.user_code` (the user's `module:function`) and
`keras_ssgd.distributed.engines` (how one run spreads over devices).
"""

from keras_ssgd.train.cli import main

__all__ = ["main"]
