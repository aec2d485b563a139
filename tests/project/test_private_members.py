"""No module reads or writes a private member of a model, or of any other
object, from outside the model's own modules (an `ast` check of the whole
package). Private Keras members go through `keras_ssgd/_keras_compat.py`,
which the compat tests check against the installed Keras."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "keras_ssgd"

# The modules that define the models' members: they use their own private
# members through `self`, and the custom-step functions are bound methods
# of `SymmetricSGDModel`.
MODEL_MODULES = {
    "perturbed.py", "model.py", "distributable.py", "custom_step.py",
}
# Where Keras's private members are named, each checked against Keras.
COMPAT = "_keras_compat.py"


def _private(name):
    return name.startswith("_") and not (
        name.startswith("__") and name.endswith("__")
    )


def private_uses(source, model_module=False):
    """`(line, text)` of every use of a private member in `source`: an
    attribute of anything but `self`, `cls`, `super()` or an imported
    module (outside the model's own modules), and `getattr`, `hasattr`,
    `setattr` or `delattr` with a private name as a string constant
    (anywhere)."""
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {a.asname or a.name for a in node.names}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
            "getattr", "hasattr", "setattr", "delattr"
        ):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and _private(str(name.value)):
                found.append((node.lineno, ast.unparse(node)))
        if model_module or not isinstance(node, ast.Attribute):
            continue
        if not _private(node.attr):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and (
            owner.id in ("self", "cls") or owner.id in imported
        ):
            continue
        if isinstance(owner, ast.Call) and getattr(
            owner.func, "id", None
        ) == "super":
            continue
        found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_no_module_uses_a_private_member_from_outside():
    uses = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = str(path.relative_to(PACKAGE))
        if relative == COMPAT:
            continue
        found = private_uses(path.read_text(),
                             model_module=relative in MODEL_MODULES)
        if found:
            uses[relative] = found
    assert uses == {}


def test_the_check_finds_reads_writes_and_string_lookups():
    source = (
        "import keras\n"
        "from keras_ssgd import backends\n"
        "def f(model, self):\n"
        "    split = getattr(self, '_split_now', False)\n"
        "    form = model._form()\n"
        "    model._set_phase_split(True)\n"
        "    model._static_noisy = True\n"
        "    self._own = 1\n"
        "    backends._module('jax')\n"
        "    return model.__class__\n"
    )
    assert [line for line, _ in private_uses(source)] == [4, 5, 6, 7]
    # In a model's own module only the string lookups count.
    assert [line for line, _ in private_uses(source, True)] == [4]
