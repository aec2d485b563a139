"""The check of each argument of a comparison, alone.

A check takes the value and the argument's name and returns the value in
the form the plan uses (`(0, 1, 2)` for `seeds=3`), or raises
`ArgumentError`, a `ValueError` naming the argument and the value
received, in the Python API's words (`str(error)`, ``Argument `epochs`
must be an int > 0. Received: epochs=0``) or the command's (`error.cli()`,
`argument --epochs: must be an int > 0. Received: 0`). The options' table
(`options.OPTIONS`) says which check each argument gets; the rules that
relate arguments to each other are the plan's (`plan.make_plan`).

Example:

>>> integer(least=1)(3, "epochs")
3
>>> seeds("10-12", "seeds")
(10, 11, 12)
>>> str(ArgumentError("every", "must be an int > 0", 0))
'Argument `every` must be an int > 0. Received: every=0'
"""

import math
import numbers


class ArgumentError(ValueError):
    """An argument of a comparison that cannot be used.

    Args:
        argument: str, the Python name (`"lr_drops"`).
        message: str, what is wrong, as a predicate (`"must be > 0"`).
        value: the value received (Python form).
        cli_message: str, the message in the command's words, if they
            differ (they name other options as flags).
        cli_value: str, the value as the command line gave it, if it
            differs from `str(value)`; `""` for none.
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
        """The message in the command's words, naming the option's flag."""
        from keras_ssgd.train.options import flag_of

        value = self.cli_value
        if value == "":
            return f"argument {flag_of(self.argument)}: {self.cli_message}"
        if value is None:
            value = (" ".join(map(str, self.value))
                     if isinstance(self.value, (list, tuple))
                     else str(self.value))
        return (f"argument {flag_of(self.argument)}: {self.cli_message}. "
                f"Received: {value}")


def listed(words):
    """`a`, `a or b`, `a, b or c`."""
    words = list(words)
    return (", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1
            else words[0])


def unchecked(value, name):
    """Any value, as it is (an option whose check is a rule of the plan's,
    or the command's own)."""
    return value


def integer(least, optional=False):
    """The check of an int >= `least` (bools refused; None if
    `optional`)."""

    def check(value, name):
        if value is None and optional:
            return None
        bound = "> 0" if least == 1 else f">= {least}"
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ArgumentError(name, f"must be an int {bound}", value)
        if value < least:
            raise ArgumentError(name, f"must be {bound}"
                                if least != 1 else "must be an int > 0", value)
        return int(value)

    return check


def number(positive=False, below=None, optional=False):
    """The check of a finite number, > 0 if `positive` (else >= 0), below
    `below` if given; None if `optional`."""

    def check(value, name):
        if value is None and optional:
            return None
        bound = "> 0" if positive else ">= 0"
        if below is not None:
            bound = f"in [0, {below:g})"
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and math.isfinite(value)
              and (value > 0 if positive else value >= 0)
              and (below is None or value < below))
        if not ok:
            raise ArgumentError(name, f"must be a finite number {bound}"
                                if below is None else f"must be {bound}",
                                value)
        return float(value)

    return check


def choice(choices, optional=False):
    """The check of one of `choices` (None too if `optional`)."""

    def check(value, name):
        if value is None and optional:
            return None
        if value not in choices:
            raise ArgumentError(name, f"must be one of {list(choices)}",
                                value)
        return value

    check.choices = tuple(choices)
    return check


def boolean(value, name):
    """A bool."""
    if not isinstance(value, bool):
        raise ArgumentError(name, "must be a bool", value)
    return value


def level(value, name, method=None, received=None):
    """A level (a finite number >= 0) in `received`, the argument's value
    (`noise_levels`, or `methods` where `method` names the method)."""
    from keras_ssgd.train.options import flag_of
    from keras_ssgd.validation import check_noise_level

    try:
        return check_noise_level(value, name)
    except (TypeError, ValueError):
        where = f" of {method}" if method else ""
        raise ArgumentError(
            name, f"must hold levels >= 0 (finite numbers); {value!r}"
            f"{where} is not", received,
            cli_message=f"{flag_of(name)}{' ' + method if method else ''} "
            "must be a finite number >= 0", cli_value=str(value),
        ) from None


def levels(value, name):
    """None, or a non-empty list of levels (`level`) as a tuple."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(
            value, "__iter__") or not list(value):
        raise ArgumentError(name, "must be a non-empty list of levels >= 0",
                            value)
    return tuple(level(x, name, None, value) for x in value)


def epochs_list(value, name):
    """None, or a list of epochs (ints > 0) as a tuple."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ArgumentError(name, "must be a list of epochs", value)
    return tuple(integer(1)(x, name) for x in value)


def learning_rates(value, name):
    """None, a number > 0 or a non-empty list of them, as a tuple of
    distinct rates in the order given (None: `()`)."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        if not value:
            raise ArgumentError(name, "must be a number > 0 or a non-empty "
                                "list of them", value)
        return tuple(dict.fromkeys(
            number(positive=True)(x, name) for x in value))
    return (number(positive=True)(value, name),)


def phase_plan(value, name):
    """None, or a phase plan such as `"75-25S-25S"`, parsed (a
    `phases.PhasePlan`)."""
    from keras_ssgd.phases import PhasePlan

    if value is None:
        return None
    try:
        return PhasePlan.parse(value)
    except (TypeError, ValueError) as error:
        raise ArgumentError(name, f"must be a phase plan such as "
                            f"'75-25S-25S' ({error})", value,
                            cli_message=str(error)) from None


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
    if text.isdigit() or (text.startswith("-") and text.lstrip("-").isdigit()):
        if text.startswith("-") or int(text) == 0:
            raise ValueError(f"--seeds must be an int > 0. Received: {text}")
        return tuple(range(int(text)))
    found = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(
                f"{usage}. Received: {text!r} (bad part {part.strip()!r})"
            )
        if dash and int(last) < int(first):
            raise ValueError(
                f"{usage}; a range A-B needs A <= B. Received: {text!r} (bad "
                f"part {part.strip()!r})"
            )
        found.extend(range(int(first), int(last if dash else first) + 1))
    return tuple(dict.fromkeys(found))


def seeds(value, name):
    """An int N (0 .. N-1), a string `"N"`, `"A-B"`, `"A,B,..."`, or an
    iterable of ints >= 0, as a tuple of distinct seeds in the order
    given."""
    usage = ("must be an int > 0 (seeds 0 .. N-1), a string 'N', 'A-B' or "
             "'A,B,...', or a")
    if isinstance(value, str):
        try:
            return parse_seeds(value)
        except ValueError as error:
            raise ArgumentError(
                name, f"{usage} list of ints >= 0 ({error})", value,
                cli_message=str(error), cli_value="",
            ) from None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 1:
            raise ArgumentError(name, "must be an int > 0", value)
        return tuple(range(int(value)))
    try:
        items = list(value)
    except TypeError:
        items = None
    if not items or any(
        isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0
        for s in items
    ):
        raise ArgumentError(name, f"{usage} non-empty list of ints >= 0",
                            value)
    return tuple(dict.fromkeys(int(s) for s in items))


def build_model(value, name):
    """A builder function, a built-in model name or
    `package.module:function`, as `(builder or None, model name or
    None)`.

    Raises:
        ArgumentError: none of these.
        ValueError (`user_code.UserCodeError`): `package.module:function`
            cannot be loaded; the message names it.
    """
    from keras_ssgd import user_code as user
    from keras_ssgd.train.registry import MODELS
    from keras_ssgd.train.registry import model_builder

    if callable(value):
        return value, user.spec_of(value)
    if value is None or (isinstance(value, str) and value in MODELS):
        return None, value
    if isinstance(value, str) and user.is_function_spec(value):
        model_builder(value)  # UserCodeError (a ValueError) names it
        return None, value
    raise ArgumentError(
        name, f"must be a builder function, one of {list(MODELS)} or "
        "'package.module:function'", value,
        cli_message=f"invalid choice: {value!r} (choose from "
        f"{', '.join(map(repr, MODELS))}, or package.module:function)",
        cli_value="",
    )


def data(value, name):
    """A dataset name, a path to a `.npz`, `package.module:function`,
    `tfds:NAME` or the arrays themselves, as `(dataset, arrays or None)`
    (`dataset` is `"arrays"` for arrays).

    Raises:
        ArgumentError: none of these.
        ValueError (`arrays.DataError`): the arrays do not fit together.
    """
    from keras_ssgd.data import DATASETS
    from keras_ssgd.data import arrays as arrays_lib

    if isinstance(value, str):
        if value not in DATASETS and not arrays_lib.is_source(value):
            raise ArgumentError(
                name, f"must be one of {sorted(DATASETS)}, a path to a "
                ".npz, 'package.module:function' or 'tfds:NAME', or the "
                "arrays themselves", value,
                cli_message=f"invalid choice: {value!r} (choose from "
                f"{', '.join(map(repr, sorted(DATASETS)))}, or your own "
                "data: path/to/data.npz, package.module:function, "
                "tfds:NAME)", cli_value="",
            )
        return value, None
    if hasattr(value, "__fspath__"):
        if not arrays_lib.is_source(value.__fspath__()):
            raise ArgumentError(name, "must be a path to a .npz file", value)
        return value.__fspath__(), None
    return "arrays", arrays_lib.from_value(value, "arrays")


def methods(value, name):
    """None (the default methods), or method names, `"name:level,level@lr,
    lr"` strings, `(name, levels)` pairs or `(name, levels, lrs)` triples,
    as a list of `(name, levels or None, lrs or None)`.

    `@lr,lr` gives the method learning rates of its own, in place of the
    `lr` list (`sgd@0.025,0.05,0.1,0.2`, `ssgd:0.1,0.2@0.05,0.1`).
    """
    from keras_ssgd.methods import DEFAULT_METHODS

    if value is None:
        return [(method, None, None) for method in DEFAULT_METHODS]
    if isinstance(value, str) or not value:
        raise ArgumentError(
            name, "must be a non-empty list of method names (or "
            "'name:level,level@lr,lr' strings, (name, levels) pairs or "
            "(name, levels, lrs) triples)", value,
        )
    return [_method(method, name, value) for method in value]


def _method(method, name, received):
    """One method of `methods` as `(name, levels or None, lrs or None)`."""
    from keras_ssgd.train.options import flag_of
    from keras_ssgd.train.registry import METHODS

    flag, lrs = flag_of(name), None
    if isinstance(method, str):
        head, at, lr_text = method.partition("@")
        method_name, _, text = head.partition(":")
        found = None
        if text:
            found = _numbers(text, name, method, received,
                             f"{flag} {method_name} must be a finite number "
                             ">= 0", "levels", ">= 0")
        if at and lr_text:
            lrs = _numbers(lr_text, name, method, received,
                           f"{flag} {method_name}@LR must be a finite number "
                           "> 0", "learning rates", "> 0")
        elif at:
            lrs = ()
    elif isinstance(method, (tuple, list)) and len(method) in (2, 3):
        method_name, found = method[0], method[1]
        found = None if found is None else tuple(found)
        if len(method) == 3 and method[2] is not None:
            lrs = tuple(method[2])
    else:
        raise ArgumentError(
            name, "must hold method names, 'name:level,level@lr,lr' "
            "strings, (name, levels) pairs or (name, levels, lrs) "
            f"triples; {method!r} is none", received,
        )
    if method_name not in METHODS:
        raise ArgumentError(
            name, f"has an unknown method {method_name!r}; valid methods: "
            f"{', '.join(METHODS)}", received,
            cli_message=f"unknown method {method_name!r}; valid methods: "
            f"{', '.join(METHODS)}", cli_value=method_name,
        )
    if found is not None and METHODS[method_name].level_name is None:
        raise ArgumentError(name, f"has levels for {method_name!r}, which "
                            "takes none", received,
                            cli_message=f"method {method_name!r} takes no "
                            "level")
    for value in found or ():
        level(value, name, method_name, received)
    if lrs is not None:
        if not lrs:
            raise ArgumentError(
                name, f"has no learning rate after '@' for {method_name}",
                received, cli_message=f"{flag} {method_name}@ needs "
                "learning rates", cli_value=method_name,
            )
        lrs = learning_rates(list(lrs), "lr")
    return method_name, found or None, lrs


def _numbers(text, name, method, received, cli_message, what, bound):
    """The comma-separated numbers of `text` (a part of `method`)."""
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = None
    if not values:
        raise ArgumentError(
            name, f"has bad {what} in {method!r}: each must be a finite "
            f"number {bound}", received, cli_message=cli_message,
            cli_value=repr(method),
        )
    return values
