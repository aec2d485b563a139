"""The recipe and runs of a comparison, from Python values, checked.

`make_plan` is where `keras_ssgd.compare` and `ssgd-train` agree on what
a comparison is. Each argument is checked alone by its option
(`options.checked`); the plan holds the rules that relate arguments to
each other, each in a function of its own below. Then it reads the
user's data and builds the user's model on them once (`preflight`), and
returns the recipe (`runner.Config`) and the runs (`runner.RunSpec`s).
The command converts its options' text to Python values first, then
calls it.

A bad argument raises `ArgumentError` (`checks.ArgumentError`), a
`ValueError` naming the argument and the value received, in the Python
API's words (`str(error)`) or the command's (`error.cli()`).
"""

import dataclasses
import types

from keras_ssgd.methods import REFERENCE
from keras_ssgd.train import options
from keras_ssgd.train.checks import ArgumentError
from keras_ssgd.train.checks import listed
from keras_ssgd.train.options import flag_of


def make_plan(build_model=None, data="mnist1d", **arguments):
    """Checks a comparison's arguments; returns `(config, specs, builder,
    arrays)`.

    The arguments are those of `keras_ssgd.compare` (see there), plus the
    distributed engine's (`distributed`, `shared_noise`,
    `sync_batchnorm`, `scale_lr`, `warmup_epochs`, as `ssgd-train`'s
    options); `options.PLAN` declares each, with its default. `builder`
    and `arrays` are the model builder and the data when given as Python
    objects (else None: the config names them).

    Raises:
        TypeError: an argument that is not one of `options.PLAN`.
        ArgumentError: an argument is not usable, alone or with the others.
        ValueError: the data or the model cannot be used
            (`arrays.DataError`, `preflight.ModelMismatch`; the message
            names the value).
    """
    from keras_ssgd.train.preflight import preflight
    from keras_ssgd.train.registry import recipe_for

    # Each argument alone, then the rules between them.
    given = dict(build_model=build_model, data=data, **arguments)
    plan = types.SimpleNamespace(**options.checked(given))
    builder, _ = plan.build_model
    dataset, arrays = plan.data
    _check_momentum(plan.methods, plan.optimizer, plan.momentum)
    _check_user_data(plan, dataset, arrays)
    _check_phases(plan)
    _check_engine_options(plan)
    config = _config(plan, recipe_for(dataset), given.get("lr_drops"))
    _check_builder(config.model, plan.methods, builder)
    _check_own_l2(config, builder)
    # The user's data read and the user's model built on them, once.
    config = preflight(config, arrays=arrays, builder=builder)
    _check_user_objects(config, plan, given.get("batch_size"))
    # The runs: each method's levels and learning rates, per seed.
    runs = _runs(config, plan, given.get("methods"))
    _check_validation(config, runs, _user_data(dataset, arrays))
    return config, _specs(config, runs, plan), builder, arrays


def _user_data(dataset, arrays):
    """Whether the data are the user's (arrays, a `.npz`, a function,
    `tfds:NAME`) rather than a built-in dataset."""
    from keras_ssgd.data import arrays as arrays_lib

    return arrays is not None or arrays_lib.is_source(dataset)


def _check_user_data(plan, dataset, arrays):
    """`validation_split` needs the user's data, `data_dir` tfds's."""
    from keras_ssgd.data import arrays as arrays_lib

    data = flag_of("data")
    if plan.validation_split and not _user_data(dataset, arrays):
        raise ArgumentError(
            "validation_split", "needs your own data (data: arrays, a "
            f".npz, 'package.module:function' or 'tfds:NAME'; here "
            f"{dataset!r})", plan.validation_split,
            cli_message=f"needs your own data ({data} path.npz, "
            f"package.module:function or tfds:NAME), not {data} {dataset}",
        )
    if plan.data_dir and not dataset.startswith(arrays_lib.TFDS_PREFIX):
        raise ArgumentError(
            "data_dir", f"is read only with data='tfds:NAME' (here "
            f"{dataset!r})", plan.data_dir,
            cli_message=f"only {data} tfds:NAME reads it, not {data} "
            f"{dataset}",
        )


def _check_phases(plan):
    """A phase plan sets the epochs and the learning-rate drops, is not
    stretched to a budget of passes, and its `H` phases run split S-SGD,
    which only the methods with a split form have."""
    from keras_ssgd.train.registry import METHODS

    if plan.phases is None:
        return
    phases, flag = str(plan.phases), flag_of("phases")
    if plan.epochs is not None and plan.epochs != plan.phases.epochs:
        raise ArgumentError(
            "epochs", f"must be left out or match the phases: the plan "
            f"{phases} sets {plan.phases.epochs} epochs", plan.epochs,
            cli_message=f"the plan {phases} sets {plan.phases.epochs} "
            "epochs",
        )
    if plan.lr_schedule not in (None, "step"):
        raise ArgumentError(
            "lr_schedule", "must be left out with phases: the plan drops "
            "the learning rate at the phase boundaries", plan.lr_schedule,
            cli_message=f"{flag} drops the learning rate at the phase "
            "boundaries",
        )
    if plan.budget != "epochs":
        raise ArgumentError(
            "budget", "must be 'epochs' with phases: a phase plan counts "
            "its passes in its own epochs, and is not stretched",
            plan.budget,
            cli_message=f"{flag} counts its passes in its own epochs and is "
            f"not stretched; only {flag_of('budget')} epochs goes with it",
        )
    refused = [name for name, _, _ in plan.methods
               if METHODS[name].model_class is not None
               and not METHODS[name].has_split_form]
    if plan.phases.has_split and refused:
        raise ArgumentError(
            "phases", f"has H phases, which run split S-SGD, which only "
            f"the methods ssgd and ssgd-split have, not "
            f"{', '.join(dict.fromkeys(refused))}", phases,
        )


def _check_engine_options(plan):
    """A switch of an engine other than `distributed`'s (`shared_noise`
    without Horovod) is refused: it would do nothing. The message names
    the switches the same engines take together."""
    from keras_ssgd.distributed.engines import ENGINES
    from keras_ssgd.distributed.engines import takers

    engine = ENGINES[plan.distributed]
    switches = [option for option in options.ENGINE.values()
                if option.text is bool]
    refused = [option for option in switches
               if option.name not in engine.options
               and getattr(plan, option.name) != option.default]
    if not refused:
        return
    first = refused[0]
    names = takers(first.name)
    group = [o.option for o in switches if takers(o.name) == names]
    flag = flag_of("distributed")
    need = f"{' and '.join(group)} need" if len(group) > 1 else "needs"
    raise ArgumentError(
        first.name, f"needs distributed={listed(map(repr, names))} (here "
        f"{plan.distributed!r})", getattr(plan, first.name),
        cli_message=f"{need} {flag} {listed(names)}, not {flag} "
        f"{plan.distributed}", cli_value="",
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
            cli_message=f"must be > 0 for {flag_of('methods')} "
            f"{needing[0]}, which perturbs along the optimizer's momentum "
            f"(or use {flag_of('optimizer')} adam)",
        )


def _config(plan, recipe, received_drops):
    """The recipe (`runner.Config`): the arguments given, the phase plan's
    epochs and schedule, and the dataset's recipe for the rest."""
    from keras_ssgd.train.runner import Config

    epochs, schedule = plan.epochs, plan.lr_schedule
    if plan.phases is not None:
        epochs, schedule = plan.phases.epochs, "step"
    total = epochs or recipe.epochs
    schedule = schedule or recipe.lr_schedule
    drops = plan.lr_drops
    if drops is None:
        drops = recipe.lr_drops if epochs is None else ()
        if schedule == "step" and not drops and plan.phases is None:
            drops = (total // 2, (3 * total) // 4)
    if plan.phases is not None:
        drops = ()
    for drop in drops:
        if drop >= total:
            raise ArgumentError(
                "lr_drops", f"must hold epochs before the end of training "
                f"({total} epochs): epoch {drop} is not before the end",
                received_drops,
            )
    _, model = plan.build_model
    dataset, _ = plan.data
    return Config(
        dataset=dataset,
        model=model or recipe.model,
        epochs=total,
        batch_size=plan.batch_size or recipe.batch_size,
        lr=plan.lr[0] if plan.lr else recipe.lr,
        optimizer=plan.optimizer,
        momentum=plan.momentum if plan.optimizer == "sgd" else 0.0,
        lr_schedule=schedule,
        lr_drops=tuple(sorted(drops)),
        phases=plan.phases,
        steps_per_execution=(
            plan.steps_per_execution or recipe.steps_per_execution),
        hessian_iterations=plan.hessian_iterations,
        noise_filter=plan.noise_filter,
        epoch_eval=plan.eval_every_epoch,
        data_dir=plan.data_dir,
        validation_split=plan.validation_split,
        every=plan.every,
        budget=plan.budget,
        weight_decay=plan.weight_decay,
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
    flag = flag_of("build_model")
    if not user.accepts(builder, (1,), 2):
        raise ArgumentError(
            "build_model", "must take (input_shape, num_classes) like the "
            "built-in builders: build(input_shape, num_classes, "
            "dropout=0.0)", name,
            cli_message=f"{name} must take (input_shape, num_classes) like "
            "the built-in builders: build(input_shape, num_classes, "
            "dropout=0.0)", cli_value=f"{flag} {name}",
        )
    needing = [c[0] for c in chosen if METHODS[c[0]].uses_dropout]
    if needing and not user.accepts(builder, (1,), 2, 0.5):
        raise ArgumentError(
            "build_model", "takes no dropout rate (a third argument, "
            "build(input_shape, num_classes, dropout=0.0)), which method "
            f"{needing[0]!r} needs", name,
            cli_message=f"the model {name} takes no dropout rate (a third "
            "argument, build(input_shape, num_classes, dropout=0.0)), which "
            f"{flag_of('methods')} {needing[0]} needs",
            cli_value=f"{flag} {name}",
        )


def _check_own_l2(config, builder):
    """A built-in model's own L2 is known before it is built (a user's
    model is checked once built: `preflight`)."""
    from keras_ssgd.train.registry import OWN_L2

    if config.weight_decay and builder is None and config.model in OWN_L2:
        raise ArgumentError(
            "weight_decay", f"must be 0 for the model {config.model}, which "
            "adds its own L2 penalty to the loss (its layers' "
            "kernel_regularizer): the two would add up", config.weight_decay,
            cli_message=f"must be 0 for {flag_of('build_model')} "
            f"{config.model}, which adds its own L2 penalty to the loss (its "
            "layers' kernel_regularizer): the two would add up",
        )


def _check_user_objects(config, plan, batch_size):
    """The user's dataset objects come in the user's batches, which the
    distributed engines do not shard."""
    if config.data_order != "user":
        return
    dataset = f"{flag_of('data')} {config.dataset}"
    if batch_size is not None:
        raise ArgumentError(
            "batch_size", f"does not apply: {config.dataset} returns "
            "dataset objects, whose batches are the user's (batches of "
            f"{config.batch_size} here)", batch_size,
            cli_message=f"{dataset} returns dataset objects, whose batches "
            f"are the user's (batches of {config.batch_size} here)",
        )
    if plan.distributed != "none":
        raise ArgumentError(
            "distributed", f"must be 'none': {config.dataset} returns "
            "dataset objects, which the distributed engines do not shard; "
            "give arrays instead", plan.distributed,
            cli_message=f"{dataset} returns dataset objects, which the "
            "distributed engines do not shard; give arrays instead",
        )


def _runs(config, plan, received):
    """`(method, level, lr, seed)` of each run, each level checked against
    its method's range (`Method.check_level`)."""
    from keras_ssgd.train.registry import METHODS

    runs = []
    for seed in plan.seeds:
        for name, levels, own_lrs in plan.methods:
            method = METHODS[name]
            rates = own_lrs or plan.lr or (config.lr,)
            if method.level_name is None:
                runs += [(name, None, rate, seed) for rate in rates]
                continue
            for level in levels or plan.noise_levels or method.default_levels:
                try:
                    level = method.check_level(level)
                except ValueError as error:
                    raise ArgumentError(
                        "methods", f"has a level {name} cannot take: "
                        f"{error}", received,
                        cli_message=f"{flag_of('methods')} {name}: {error}",
                        cli_value=name,
                    ) from None
                runs += [(name, level, rate, seed) for rate in rates]
    return runs


def _specs(config, runs, plan):
    """Each (method, level, lr, seed) once, in the order given; each at
    the epochs of each budget (`budget_epochs`)."""
    from keras_ssgd.train.registry import METHODS
    from keras_ssgd.train.runner import RunSpec

    names = [name for name, _, _ in plan.methods]
    specs = {}
    for name, level, rate, seed in dict.fromkeys(runs):
        for kind, epochs in budget_epochs(config, METHODS[name], names):
            # The key names the learning rate where it is not the
            # recipe's (`config.lr`, the first of `lr`).
            spec = RunSpec(name, level, seed,
                           None if epochs == config.epochs else epochs,
                           lr=None if rate == config.lr else rate,
                           weight_decay=plan.weight_decay or None)
            known = specs.get(spec)
            specs[spec] = dataclasses.replace(
                spec, budgets=(known.budgets if known else ()) + (kind,)
            )
    return list(specs.values())


def check_checkpoint_every(every, config, distributed="none"):
    """`every` (batches between checkpoints within an epoch, or None), a
    multiple of `config.steps_per_execution` (Keras hands control back to
    callbacks between executions only), on one device (the engines that
    resume, Horovod, do so at epochs' ends)."""
    from keras_ssgd.train import checks

    every = checks.integer(1, optional=True)(every, "checkpoint_every")
    if every is not None and distributed != "none":
        raise ArgumentError(
            "checkpoint_every", f"needs distributed='none' (here "
            f"{distributed!r}): a run spread over devices is checkpointed "
            "at the end of every epoch", every,
        )
    per = config.steps_per_execution or 1
    if every is not None and every % per:
        raise ArgumentError(
            "checkpoint_every", f"must be a multiple of steps_per_execution "
            f"({per}): a checkpoint is written between executions of "
            f"{per} steps", every,
        )
    return every


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
            return passes_per_step(m, config.phase_plan, config.every)

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
    if not user_data or config.validation_split or not several:
        return
    raise ArgumentError(
        "validation_split", f"must be > 0 when a method has more than "
        f"one configuration (here {', '.join(several)}): the pick among "
        "them is made on validation data, never on the test set, and "
        f"the data {config.dataset!r} has none of its own",
        config.validation_split,
        cli_message=f"must be > 0 when a method has more than one "
        f"configuration (levels or learning rates; here "
        f"{', '.join(several)}): the pick is made on validation data, "
        f"never on the test set, and {flag_of('data')} {config.dataset} "
        "has none of its own",
    )
