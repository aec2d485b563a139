"""The recipe and runs of a comparison, from Python values, checked.

`make_plan` is where `keras_ssgd.compare` and `ssgd-train` agree on what
a comparison is: it checks every argument (alone and against the others),
reads the user's data and builds the user's model once on it, and returns
the recipe (`runner.Config`) and the runs (`runner.RunSpec`s). The command
converts its options to Python values first (argparse), then calls it.

A bad argument raises `ArgumentError`, a `ValueError` naming the argument
and the value received, in the Python API's words (`str(error)`,
``Argument `epochs` must be an int > 0. Received: epochs=0``) or the
command's (`error.cli()`, `argument --epochs: must be an int > 0.
Received: 0`).

`preflight` (below) reads the user's data and builds the user's model on
it once the arguments are checked, so that bad data or a model that does
not fit them stop a comparison before any run.
"""

import dataclasses
import math
import numbers

import numpy as np

from keras_ssgd.methods import DEFAULT_METHODS
from keras_ssgd.methods import REFERENCE


# The command's option for each argument whose name differs.
FLAGS = {
    "methods": "--method",
    "noise_levels": "--noise-level",
    "build_model": "--model",
    "data": "--dataset",
    "scale_lr": "--no-scale-lr",
}


class ArgumentError(ValueError):
    """An argument of `make_plan` that cannot be used.

    Args:
        argument: str, the Python name (`"lr_drops"`).
        message: str, what is wrong, as a predicate (`"must be > 0"`).
        value: the value received (Python form).
        cli_message: str, the message in the command's words, if they
            differ (they name other options as flags).
        cli_value: str, the value as the command line gave it, if it
            differs from `str(value)`.
    """

    def __init__(self, argument, message, value, cli_message=None,
                 cli_value=None):
        self.argument = argument
        self.message = message
        self.value = value
        self.cli_message = cli_message or message
        self.cli_value = cli_value
        super().__init__(
            f"Argument `{argument}` {message}. Received: {argument}={value!r}"
        )

    def cli(self):
        """The message in the command's words."""
        flag = FLAGS.get(self.argument,
                         "--" + self.argument.replace("_", "-"))
        value = self.cli_value
        if value == "":
            return f"argument {flag}: {self.cli_message}"
        if value is None:
            value = (" ".join(map(str, self.value))
                     if isinstance(self.value, (list, tuple))
                     else str(self.value))
        return f"argument {flag}: {self.cli_message}. Received: {value}"


def _int(value, argument, least, allow_none=False):
    if value is None and allow_none:
        return None
    bound = "> 0" if least == 1 else f">= {least}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(argument, f"must be an int {bound}", value)
    if value < least:
        raise ArgumentError(argument, f"must be {bound}"
                            if least != 1 else "must be an int > 0", value)
    return int(value)


def _float(value, argument, positive, below=None, allow_none=False):
    if value is None and allow_none:
        return None
    bound = "> 0" if positive else ">= 0"
    if below is not None:
        bound = f"in [0, {below:g})"
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value)
          and (value > 0 if positive else value >= 0)
          and (below is None or value < below))
    if not ok:
        raise ArgumentError(argument, f"must be a finite number {bound}"
                            if below is None else f"must be {bound}", value)
    return float(value)


def _choice(value, argument, choices, allow_none=False):
    if value is None and allow_none:
        return None
    if value not in choices:
        raise ArgumentError(argument,
                            f"must be one of {list(choices)}", value)
    return value


def _bool(value, argument):
    if not isinstance(value, bool):
        raise ArgumentError(argument, "must be a bool", value)
    return value


def parse_seeds(text):
    """`N` (seeds 0 .. N-1), `A-B` (A .. B) or `A,B,...` (any mix) -> a
    tuple of distinct seeds in the order given.

    Raises:
        ValueError: `text` is none of these; the message says which form
            is expected.
    """
    usage = (
        "--seeds must be an int > 0 (seeds 0 .. N-1), a range A-B or a list "
        "A,B,C of seeds >= 0"
    )
    text = text.strip()
    if text.isdigit():
        count = int(text)
        if count == 0:
            raise ValueError(
                f"--seeds must be an int > 0. Received: {text}"
            )
        return tuple(range(count))
    if text.lstrip("-").isdigit() and text.startswith("-"):
        raise ValueError(
            f"--seeds must be an int > 0. Received: {text}"
        )
    seeds = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(
                f"{usage}. Received: {text!r} (bad part {part.strip()!r})"
            )
        if not dash:
            seeds.append(int(first))
            continue
        if int(last) < int(first):
            raise ValueError(
                f"{usage}; a range A-B needs A <= B. Received: {text!r} (bad "
                f"part {part.strip()!r})"
            )
        seeds.extend(range(int(first), int(last) + 1))
    return tuple(dict.fromkeys(seeds))


def seeds_of(seeds):
    """`seeds` (an int N for 0 .. N-1, a string `"N"`, `"A-B"`,
    `"A,B,..."`, or an iterable of ints >= 0) as a tuple of distinct seeds
    in the order given."""
    if isinstance(seeds, str):
        try:
            return parse_seeds(seeds)
        except ValueError as error:
            raise ArgumentError(
                "seeds", "must be an int > 0 (seeds 0 .. N-1), a string "
                f"'N', 'A-B' or 'A,B,...', or a list of ints >= 0 ({error})",
                seeds,
            ) from None
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ArgumentError("seeds", "must be an int > 0", seeds)
        return tuple(range(int(seeds)))
    try:
        items = list(seeds)
    except TypeError:
        items = None
    if not items or any(
        isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0
        for s in items
    ):
        raise ArgumentError(
            "seeds", "must be an int > 0 (seeds 0 .. N-1), a string 'N', "
            "'A-B' or 'A,B,...', or a non-empty list of ints >= 0", seeds,
        )
    return tuple(dict.fromkeys(int(s) for s in items))


def methods_of(methods):
    """`methods` (names, `"name:level,level@lr,lr"` strings, `(name,
    levels)` pairs or `(name, levels, lrs)` triples) as a list of
    `(name, levels or None, lrs or None)`.

    `@lr,lr` gives the method learning rates of its own, in place of the
    `lr` list (`sgd@0.025,0.05,0.1,0.2`, `ssgd:0.1,0.2@0.05,0.1`).
    """
    from keras_ssgd.train.registry import METHODS

    if isinstance(methods, str) or not methods:
        raise ArgumentError(
            "methods", "must be a non-empty list of method names (or "
            "'name:level,level@lr,lr' strings, (name, levels) pairs or "
            "(name, levels, lrs) triples)", methods,
        )
    chosen = []
    for method in methods:
        lrs = None
        if isinstance(method, str):
            head, at, lr_text = method.partition("@")
            name, _, text = head.partition(":")
            levels = None
            if text:
                levels = _numbers(text, "methods", method, methods,
                                  f"--method {name} must be a finite number "
                                  ">= 0", "levels", ">= 0")
            if at:
                lrs = _numbers(lr_text, "methods", method, methods,
                               f"--method {name}@LR must be a finite number "
                               "> 0", "learning rates", "> 0")
        elif isinstance(method, (tuple, list)) and len(method) in (2, 3):
            name, levels = method[0], method[1]
            levels = None if levels is None else tuple(levels)
            if len(method) == 3 and method[2] is not None:
                lrs = tuple(method[2])
        else:
            raise ArgumentError(
                "methods", "must hold method names, 'name:level,level@lr,lr' "
                "strings, (name, levels) pairs or (name, levels, lrs) "
                f"triples; {method!r} is none", methods,
            )
        if name not in METHODS:
            raise ArgumentError(
                "methods", f"has an unknown method {name!r}; valid methods: "
                f"{', '.join(METHODS)}", methods,
                cli_message=f"unknown method {name!r}; valid methods: "
                f"{', '.join(METHODS)}", cli_value=name,
            )
        if levels is not None and METHODS[name].level_name is None:
            raise ArgumentError("methods", f"has levels for {name!r}, "
                                "which takes none", methods,
                                cli_message=f"method {name!r} takes no "
                                "level")
        for level in levels or ():
            _level(level, "methods", name, methods)
        if lrs is not None:
            if not lrs:
                raise ArgumentError(
                    "methods", f"has no learning rate after '@' for {name}",
                    methods, cli_message=f"--method {name}@ needs learning "
                    "rates", cli_value=name,
                )
            lrs = tuple(dict.fromkeys(
                _float(x, "lr", positive=True) for x in lrs))
        chosen.append((name, levels or None, lrs))
    return chosen


def _numbers(text, argument, method, received, cli_message, what, bound):
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = None
    if not values:
        raise ArgumentError(
            argument, f"has bad {what} in {method!r}: each must be a finite "
            f"number {bound}", received, cli_message=cli_message,
            cli_value=repr(method),
        )
    return values


def learning_rates(lr):
    """`lr` (None, a number > 0 or a non-empty list of them) as a tuple of
    distinct rates in the order given (None: `()`)."""
    if lr is None:
        return ()
    if isinstance(lr, (list, tuple)):
        if not lr:
            raise ArgumentError("lr", "must be a number > 0 or a non-empty "
                                "list of them", lr)
        return tuple(dict.fromkeys(
            _float(x, "lr", positive=True) for x in lr))
    return (_float(lr, "lr", positive=True),)


def _level(level, argument, name, received):
    ok = (isinstance(level, numbers.Real) and not isinstance(level, bool)
          and math.isfinite(level) and level >= 0)
    if not ok:
        where = f" of {name}" if name else ""
        raise ArgumentError(
            argument, f"must hold levels >= 0 (finite numbers); {level!r}"
            f"{where} is not", received,
            cli_message=f"{FLAGS.get(argument)}"
            f"{' ' + name if name else ''} must be a finite number >= 0",
            cli_value=str(level),
        )
    return float(level)


def make_plan(build_model=None, data="mnist1d", methods=None, seeds=3,
              epochs=None, noise_levels=None, batch_size=None, lr=None,
              optimizer="sgd", momentum=0.9, lr_schedule=None,
              lr_drops=None, phases=None, steps_per_execution=None,
              noise_filter=None, eval_every_epoch=False,
              hessian_iterations=20, data_dir=None, validation_split=0.0,
              distributed="none", shared_noise=False, sync_batchnorm=False,
              scale_lr=True, warmup_epochs=5, budget="epochs", every=5,
              weight_decay=0.0):
    """Checks a comparison's arguments; returns `(config, specs, builder,
    arrays)`.

    The arguments are those of `keras_ssgd.compare` (see there), plus the
    distributed engine's (`distributed`, `shared_noise`,
    `sync_batchnorm`, `scale_lr`, `warmup_epochs`, as `ssgd-train`'s
    options). `builder` and `arrays` are the model builder and the data
    when given as Python objects (else None: the config names them).

    Raises:
        ArgumentError: an argument is not usable, alone or with the others.
        ValueError: the data or the model cannot be used
            (`arrays.DataError`, `preflight.ModelMismatch`; the message names
            the value).
    """
    from keras_ssgd.data import DATASETS
    from keras_ssgd.data import arrays as arrays_lib
    from keras_ssgd.phases import PhasePlan
    from keras_ssgd import user_code as user
    from keras_ssgd.distributed.engines import CHOICES as DISTRIBUTED
    from keras_ssgd.train.registry import METHODS
    from keras_ssgd.train.registry import MODELS
    from keras_ssgd.train.registry import model_builder
    from keras_ssgd.train.registry import recipe_for
    from keras_ssgd.train.runner import Config
    from keras_ssgd.train.runner import RunSpec

    # The model and the data.
    builder = None
    if callable(build_model):
        builder, model = build_model, user.spec_of(build_model)
    elif build_model is None or (isinstance(build_model, str) and (
            build_model in MODELS or user.is_function_spec(build_model))):
        model = build_model
        if model is not None and model not in MODELS:
            model_builder(model)  # UserCodeError (a ValueError) names it
    else:
        raise ArgumentError(
            "build_model", f"must be a builder function, one of "
            f"{list(MODELS)} or 'package.module:function'", build_model,
            cli_message=f"invalid choice: {build_model!r} (choose from "
            f"{', '.join(map(repr, MODELS))}, or package.module:function)",
        )
    arrays = None
    if isinstance(data, str):
        if data not in DATASETS and not arrays_lib.is_source(data):
            raise ArgumentError(
                "data", f"must be one of {sorted(DATASETS)}, a path to a "
                ".npz, 'package.module:function' or 'tfds:NAME', or the "
                "arrays themselves", data,
            )
        dataset = data
    elif hasattr(data, "__fspath__"):
        dataset = data.__fspath__()
        if not arrays_lib.is_source(dataset):
            raise ArgumentError("data", "must be a path to a .npz file",
                                data)
    else:
        arrays = arrays_lib.from_value(data, "arrays")
        dataset = "arrays"
    user_data = arrays is not None or arrays_lib.is_source(dataset)

    # Each argument alone.
    chosen = methods_of(methods) if methods is not None else [
        (name, None, None) for name in DEFAULT_METHODS]
    seeds = seeds_of(seeds)
    epochs = _int(epochs, "epochs", 1, allow_none=True)
    if noise_levels is not None:
        if isinstance(noise_levels, (str, bytes)) or not hasattr(
                noise_levels, "__iter__") or not list(noise_levels):
            raise ArgumentError("noise_levels", "must be a non-empty list "
                                "of levels >= 0", noise_levels)
        noise_levels = tuple(_level(x, "noise_levels", None, noise_levels)
                             for x in noise_levels)
    batch_size = _int(batch_size, "batch_size", 1, allow_none=True)
    lrs = learning_rates(lr)
    weight_decay = _float(weight_decay, "weight_decay", positive=False)
    optimizer = _choice(optimizer, "optimizer", ("sgd", "adam"))
    momentum = _float(momentum, "momentum", positive=False, below=1)
    _check_momentum(chosen, optimizer, momentum)
    lr_schedule = _choice(lr_schedule, "lr_schedule",
                          ("cosine", "step", "sgdr", "constant"),
                          allow_none=True)
    received_drops = lr_drops
    if lr_drops is not None:
        if isinstance(lr_drops, (str, bytes)) or not hasattr(
                lr_drops, "__iter__"):
            raise ArgumentError("lr_drops", "must be a list of epochs",
                                lr_drops)
        lr_drops = tuple(_int(d, "lr_drops", 1) for d in lr_drops)
    if phases is not None:
        try:
            phases = str(PhasePlan.parse(phases))
        except (TypeError, ValueError) as error:
            raise ArgumentError("phases", f"must be a phase plan such as "
                                f"'75-25S-25S' ({error})", phases,
                                cli_message=str(error)) from None
    steps_per_execution = _int(steps_per_execution, "steps_per_execution",
                               1, allow_none=True)
    noise_filter = _choice(
        noise_filter, "noise_filter",
        ("kernels", "conv_kernels", "dense_kernels", "recurrent_kernels",
         "all_trainable"), allow_none=True)
    eval_every_epoch = _bool(eval_every_epoch, "eval_every_epoch")
    hessian_iterations = _int(hessian_iterations, "hessian_iterations", 0)
    validation_split = _float(validation_split, "validation_split",
                              positive=False, below=1)
    distributed = _choice(distributed, "distributed", DISTRIBUTED)
    for name, value in (("shared_noise", shared_noise),
                        ("sync_batchnorm", sync_batchnorm),
                        ("scale_lr", scale_lr)):
        _bool(value, name)
    warmup_epochs = _int(warmup_epochs, "warmup_epochs", 0)
    budget = _choice(budget, "budget", BUDGETS)
    every = _int(every, "every", 1)

    # Against each other.
    recipe = recipe_for(dataset)
    if validation_split and not user_data:
        raise ArgumentError(
            "validation_split", "needs your own data (data: arrays, a "
            f".npz, 'package.module:function' or 'tfds:NAME'; here "
            f"{dataset!r})", validation_split,
            cli_message="needs your own data (--dataset path.npz, "
            f"package.module:function or tfds:NAME), not --dataset "
            f"{dataset}",
        )
    if data_dir and not dataset.startswith(arrays_lib.TFDS_PREFIX):
        raise ArgumentError(
            "data_dir", f"is read only with data='tfds:NAME' (here "
            f"{dataset!r})", data_dir,
            cli_message=f"only --dataset tfds:NAME reads it, not --dataset "
            f"{dataset}",
        )
    if phases:
        plan_epochs = PhasePlan.parse(phases).epochs
        if epochs is not None and epochs != plan_epochs:
            raise ArgumentError(
                "epochs", f"must be left out or match the phases: the plan "
                f"{phases} sets {plan_epochs} epochs", epochs,
                cli_message=f"the plan {phases} sets {plan_epochs} epochs",
            )
        if lr_schedule not in (None, "step"):
            raise ArgumentError(
                "lr_schedule", "must be left out with phases: the plan "
                "drops the learning rate at the phase boundaries",
                lr_schedule,
                cli_message="--phases drops the learning rate at the phase "
                "boundaries",
            )
        epochs, lr_schedule = plan_epochs, "step"
        if budget != "epochs":
            raise ArgumentError(
                "budget", "must be 'epochs' with phases: a phase plan "
                "counts its passes in its own epochs, and is not stretched",
                budget,
                cli_message="--phases counts its passes in its own epochs "
                "and is not stretched; only --budget epochs goes with it",
            )
    total = epochs or recipe.epochs
    schedule = lr_schedule or recipe.lr_schedule
    drops = lr_drops
    if drops is None:
        drops = recipe.lr_drops if epochs is None else ()
        if schedule == "step" and not drops and not phases:
            drops = (total // 2, (3 * total) // 4)
    if phases:
        drops = ()
    for drop in drops:
        if drop >= total:
            raise ArgumentError(
                "lr_drops", f"must hold epochs before the end of training "
                f"({total} epochs): epoch {drop} is not before the end",
                received_drops,
            )
    if distributed != "horovod" and (shared_noise or sync_batchnorm):
        raise ArgumentError(
            "shared_noise" if shared_noise else "sync_batchnorm",
            f"needs distributed='horovod' (here {distributed!r})", True,
            cli_message="--shared-noise and --sync-batchnorm need "
            f"--distributed horovod, not --distributed {distributed}",
            cli_value="",
        )
    if not scale_lr and distributed in ("none", "mirrored"):
        raise ArgumentError(
            "scale_lr", "=False needs distributed='horovod', 'multiworker' "
            f"or 'keras' (here {distributed!r})", scale_lr,
            cli_message="needs --distributed horovod, multiworker or keras, "
            f"not --distributed {distributed}", cli_value="",
        )
    config = Config(
        dataset=dataset,
        model=model or recipe.model,
        epochs=total,
        batch_size=batch_size or recipe.batch_size,
        lr=lrs[0] if lrs else recipe.lr,
        optimizer=optimizer,
        momentum=momentum if optimizer == "sgd" else 0.0,
        lr_schedule=schedule,
        lr_drops=tuple(sorted(drops)),
        phases=phases,
        steps_per_execution=(
            steps_per_execution or recipe.steps_per_execution),
        hessian_iterations=hessian_iterations,
        noise_filter=noise_filter,
        epoch_eval=eval_every_epoch,
        data_dir=data_dir,
        validation_split=validation_split,
        every=every,
        budget=budget,
        weight_decay=weight_decay,
    )
    _check_builder(config.model, chosen, builder)
    # A built-in model's own L2 is known here; a user's model is checked
    # once built (`_check_model`).
    from keras_ssgd.train.registry import OWN_L2

    if weight_decay and builder is None and config.model in OWN_L2:
        raise ArgumentError(
            "weight_decay", f"must be 0 for the model {config.model}, which "
            "adds its own L2 penalty to the loss (its layers' "
            "kernel_regularizer): the two would add up", weight_decay,
            cli_message=f"must be 0 for --model {config.model}, which adds "
            "its own L2 penalty to the loss (its layers' "
            "kernel_regularizer): the two would add up",
        )

    config = preflight(config, arrays=arrays, builder=builder)
    if config.data_order == "user":  # the user's dataset objects
        if batch_size is not None:
            raise ArgumentError(
                "batch_size", f"does not apply: {dataset} returns dataset "
                f"objects, whose batches are the user's (batches of "
                f"{config.batch_size} here)", batch_size,
                cli_message=f"--dataset {dataset} returns dataset objects, "
                "whose batches are the user's (batches of "
                f"{config.batch_size} here)",
            )
        if distributed != "none":
            raise ArgumentError(
                "distributed", f"must be 'none': {dataset} returns dataset "
                "objects, which the distributed engines do not shard; give "
                "arrays instead", distributed,
                cli_message=f"--dataset {dataset} returns dataset objects, "
                "which the distributed engines do not shard; give arrays "
                "instead",
            )
    if phases and PhasePlan.parse(phases).has_split:
        refused = [
            name for name, _, _ in chosen
            if METHODS[name].model_class is not None
            and not METHODS[name].has_split_form
        ]
        if refused:
            raise ArgumentError(
                "phases", f"has H phases, which run split S-SGD, which only "
                f"the methods ssgd and ssgd-split have, not "
                f"{', '.join(dict.fromkeys(refused))}", phases,
            )
    runs = []  # (method name, level, lr, seed)
    for seed in seeds:
        for name, levels, own_lrs in chosen:
            method = METHODS[name]
            rates = own_lrs or lrs or (config.lr,)
            if method.level_name is None:
                runs += [(name, None, rate, seed) for rate in rates]
                continue
            for level in levels or noise_levels or method.default_levels:
                try:
                    level = method.check_level(level)
                except ValueError as error:
                    raise ArgumentError(
                        "methods", f"has a level {name} cannot take: "
                        f"{error}", methods,
                        cli_message=f"--method {name}: {error}",
                        cli_value=name,
                    ) from None
                runs += [(name, level, rate, seed) for rate in rates]
    _check_validation(config, runs, user_data)
    # Each (method, level, lr, seed) once, in the order given; each at the
    # epochs of each budget.
    specs = {}
    for name, level, rate, seed in dict.fromkeys(runs):
        for kind, epochs in budget_epochs(config, METHODS[name],
                                          [n for n, _, _ in chosen]):
            # The key names the learning rate where it is not the
            # recipe's (`config.lr`, the first of `lr`).
            spec = RunSpec(name, level, seed,
                           None if epochs == config.epochs else epochs,
                           lr=None if rate == config.lr else rate,
                           weight_decay=weight_decay or None)
            known = specs.get(spec)
            specs[spec] = dataclasses.replace(
                spec, budgets=(known.budgets if known else ()) + (kind,)
            )
    return config, list(specs.values()), builder, arrays


BUDGETS = ("epochs", "passes", "both")


def check_primary(primary, specs):
    """`primary` (a method name of `specs` other than SGD, or None)."""
    names = list(dict.fromkeys(s.method for s in specs
                               if s.method != REFERENCE))
    if primary is not None and primary not in names:
        raise ArgumentError(
            "primary", f"must be one of the methods compared other than "
            f"sgd ({', '.join(names) or 'none'})", primary,
        )
    return primary


def budget_epochs(config, method, names):
    """`(budget, epochs)` of a method's runs under `config.budget`.

    At equal epochs every method trains `config.epochs`. At equal passes
    every method gets the forward/backward passes of the costliest method
    compared (`names`): `round(epochs * most / passes)` epochs, where
    `passes` is the method's passes per step (`runner.passes_per_step`).
    A one-pass method beside S-SGD or SAM trains twice the epochs.

    Example:

    >>> from keras_ssgd.train.registry import METHODS
    >>> from keras_ssgd.train.runner import Config
    >>> config = Config("mnist1d", "mlp", 10, 100, 0.1, "sgd", 0.9,
    ...                 "cosine", (), budget="both", every=4)
    >>> budget_epochs(config, METHODS["sgd"], ["sgd", "ssgd"])
    [('epochs', 10), ('passes', 20)]
    >>> budget_epochs(config, METHODS["ssgd-every"], ["sgd", "ssgd"])
    [('epochs', 10), ('passes', 16)]
    """
    from keras_ssgd.train.registry import METHODS
    from keras_ssgd.train.runner import passes_per_step

    out = []
    if config.budget in ("epochs", "both"):
        out.append(("epochs", config.epochs))
    if config.budget in ("passes", "both"):
        def cost(m):
            return passes_per_step(m, config.phases, config.every)

        most = max(cost(METHODS[n]) for n in names)
        out.append(("passes", round(config.epochs * most / cost(method))))
    return out


def configurations(runs):
    """`{method: [(level, lr), ...]}`: each method's configurations, in the
    order given (`runs`: `(method, level, lr, seed)` tuples)."""
    out = {}
    for name, level, rate, _ in runs:
        out.setdefault(name, [])
        if (level, rate) not in out[name]:
            out[name].append((level, rate))
    return out


def _check_validation(config, runs, user_data):
    """More than one configuration of a method needs a validation set to
    choose on: the built-in datasets hold one out of their training split
    (MNIST-1D 500 signals, CIFAR the last 5000 images, ImageNet 1%); the
    user's data needs `validation_split`."""
    several = [name for name, found in configurations(runs).items()
               if len(found) > 1]
    if not user_data or config.validation_split:
        return
    if several:
        raise ArgumentError(
            "validation_split", f"must be > 0 when a method has more than "
            f"one configuration (here {', '.join(several)}): the pick among "
            "them is made on validation data, never on the test set, and "
            f"the data {config.dataset!r} has none of its own",
            config.validation_split,
            cli_message=f"must be > 0 when a method has more than one "
            f"configuration (levels or learning rates; here "
            f"{', '.join(several)}): the pick is made on validation data, "
            f"never on the test set, and --dataset {config.dataset} has "
            "none of its own",
        )


def _check_momentum(chosen, optimizer, momentum):
    """A method that perturbs along the optimizer's momentum (`msam`)
    needs one: SGD with momentum > 0, or Adam."""
    from keras_ssgd.train.registry import METHODS

    needing = [c[0] for c in chosen if METHODS[c[0]].needs_momentum]
    if needing and optimizer == "sgd" and momentum == 0:  # the optimizer's
        raise ArgumentError(
            "momentum", f"must be > 0 for method {needing[0]!r}, which "
            "perturbs along the optimizer's momentum (or use optimizer "
            "'adam')", momentum,
            cli_message=f"must be > 0 for --method {needing[0]}, which "
            "perturbs along the optimizer's momentum (or use --optimizer "
            "adam)",
        )


def _check_builder(name, chosen, builder=None):
    """A user's builder takes (input_shape, num_classes[, dropout])."""
    from keras_ssgd import user_code as user
    from keras_ssgd.train.registry import METHODS
    from keras_ssgd.train.registry import MODELS
    from keras_ssgd.train.registry import model_builder

    if builder is None and name in MODELS:
        return
    builder = builder or model_builder(name)
    if not user.accepts(builder, (1,), 2):
        raise ArgumentError(
            "build_model", "must take (input_shape, num_classes) like the "
            "built-in builders: build(input_shape, num_classes, "
            "dropout=0.0)", name,
            cli_message=f"{name} must take (input_shape, num_classes) like "
            "the built-in builders: build(input_shape, num_classes, "
            "dropout=0.0)", cli_value=f"--model {name}",
        )
    needing = [c[0] for c in chosen if METHODS[c[0]].uses_dropout]
    if needing and not user.accepts(builder, (1,), 2, 0.5):
        raise ArgumentError(
            "build_model", "takes no dropout rate (a third argument, "
            "build(input_shape, num_classes, dropout=0.0)), which method "
            f"{needing[0]!r} needs", name,
            cli_message=f"the model {name} takes no dropout rate (a third "
            "argument, build(input_shape, num_classes, dropout=0.0)), which "
            f"--method {needing[0]} needs", cli_value=f"--model {name}",
        )


# The user's data read and the user's model built on it, before any run.


def preflight(config, arrays=None, builder=None):
    """Reads the user's data and builds the user's model, before training.

    For the user's data: reads and checks the arrays (once; the runs reuse
    them) and returns `config` with their digest. For the user's model:
    builds it once on the data's shapes and runs it on two examples. The
    built-in models and datasets are known to fit and are not loaded.
    `arrays` and `builder`, if given, are the data and model (the Python
    API's objects) in place of the ones `config` names.

    Raises:
        ValueError: `arrays.DataError` or `ModelMismatch`; the
            message names the value.
    """
    from keras_ssgd import data as data_lib
    from keras_ssgd.data import arrays as arrays_lib
    from keras_ssgd.data import objects
    from keras_ssgd.train.registry import MODELS

    if arrays is None:  # CIFAR, ImageNet: TensorFlow, or a clear error
        data_lib.require_tensorflow(config.dataset)
    if arrays is None and arrays_lib.is_source(config.dataset):
        arrays = arrays_lib.read(config.dataset, config.data_dir)
    if isinstance(arrays, objects.UserDatasets):
        # The user's own batches, in the user's order.
        if config.validation_split:
            raise arrays_lib.DataError(
                f"--validation-split needs arrays: --dataset "
                f"{config.dataset} returns {arrays.kind} objects (return a "
                "validation set of your own as test, or arrays). Received: "
                f"--validation-split {config.validation_split}"
            )
        config = dataclasses.replace(config, batch_size=arrays.batch_size,
                                     data_order=objects.USER_ORDER)
        _check_model(config, builder, arrays.x_sample, arrays.input_shape,
                     arrays.num_classes)
        return config
    if arrays is not None:
        arrays.split(config.validation_split)  # enough left on both sides
        config = dataclasses.replace(config, data_digest=arrays.digest)
    if builder is None and config.model in MODELS and arrays is None:
        return config
    if arrays is not None:
        x_sample = arrays.x_train[:2]
        input_shape, num_classes = arrays.input_shape, arrays.num_classes
    else:
        data = data_lib.load(config.dataset, batch_size=config.batch_size,
                             seed=0)
        x_sample = next(iter(data.train_eval))[0][:2]
        input_shape, num_classes = data.input_shape, data.num_classes
    _check_model(config, builder, x_sample, input_shape, num_classes)
    return config


def _check_model(config, builder, x_sample, input_shape, num_classes):
    """`check_model`, its message naming the dataset too."""
    from keras_ssgd.train.registry import model_builder

    try:
        model = check_model(builder or model_builder(config.model),
                            config.model, x_sample, input_shape, num_classes)
    except ModelMismatch as error:
        raise ModelMismatch(
            f"{error} (--dataset {config.dataset})"
        ) from error
    if config.weight_decay and regularized(model):
        raise ArgumentError(
            "weight_decay", f"must be 0 for the model {config.model}, which "
            "adds its own penalty to the loss (a weight regularizer or "
            "add_loss): the two would add up", config.weight_decay,
            cli_message=f"must be 0 for --model {config.model}, which adds "
            "its own penalty to the loss (a weight regularizer or "
            "add_loss): the two would add up",
        )


def regularized(model):
    """Whether `model` adds a penalty of its own to the loss (a weight
    regularizer, or `add_loss`): Keras's `model.losses` after a call."""
    return bool(model.losses)


class ModelMismatch(ValueError):
    """The model cannot train on the data; the message says why."""


def check_model(builder, name, x_sample, input_shape, num_classes):
    """Builds the model once and runs it on a few examples.

    Args:
        builder: `build(input_shape, num_classes, dropout=0.0)`.
        name: str, the model as the user named it (for messages).
        x_sample: array, a few training examples.
        input_shape: tuple, the shape of one example.
        num_classes: int.

    Raises:
        ModelMismatch: the builder fails, returns something else than a
            `keras.Model`, fails on the examples, or does not give one
            logit per class. The message names `name` and the shapes.
    """
    import keras

    try:
        model = builder(tuple(input_shape), num_classes)
    except Exception as error:
        raise ModelMismatch(
            f"--model {name}: building it for inputs of shape "
            f"{tuple(input_shape)} and {num_classes} classes failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(model, keras.Model):
        raise ModelMismatch(
            f"--model {name}: the builder must return a keras.Model. "
            f"Received: {type(model).__name__}"
        )
    x_sample = np.asarray(x_sample)
    try:
        output = model(x_sample, training=False)
    except Exception as error:
        raise ModelMismatch(
            f"--model {name} does not take the data's inputs: examples of "
            f"shape {tuple(x_sample.shape[1:])} ({x_sample.dtype}) fail: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from error
    shape = tuple(keras.ops.shape(output)) if not isinstance(
        output, (list, tuple, dict)) else None
    expected = (len(x_sample), num_classes)
    if shape != expected:
        got = shape if shape is not None else f"a {type(output).__name__}"
        raise ModelMismatch(
            f"--model {name} does not match the data: {len(x_sample)} "
            f"examples of shape {tuple(x_sample.shape[1:])} give outputs of "
            f"shape {got}; the data has {num_classes} classes, so the model "
            f"must give one logit per class, shape {expected}"
        )
    return model


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else ""
