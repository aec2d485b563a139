"""`ssgd-train`: the command that trains and compares methods.

The pieces, each usable alone: `registry` (methods, models, datasets by
name), `options` (each argument declared once: its default, its check in
`checks`, its flag), `plan` (a comparison checked before any run: the
rules between its arguments), `preflight` (the user's data read and the
user's model built on it), `runner` (one run: a method, a level, a seed),
`progress` (the line a sweep shows while it trains), `tensorboard_logs`
(`--tensorboard`), `report` (the table, summary and plots of a sweep),
`verdict` (each method against SGD, paired by seed), `compare`
(`keras_ssgd.compare`, the sweep) and `cli` (the command line, its parser
made from `options`). Below them: `keras_ssgd.store` (results on disk),
`keras_ssgd.user_code` (the user's `module:function`) and
`keras_ssgd.distributed.engines` (how one run spreads over devices).
"""

from keras_ssgd.train.cli import main

__all__ = ["main"]
