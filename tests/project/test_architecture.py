"""The reading order that `docs/architecture.md` gives for one training
step is the order in which a real TensorFlow step calls those functions."""

import pathlib
import re
import sys

import keras
import numpy as np

import keras_ssgd

ROOT = pathlib.Path(__file__).parents[2]
PACKAGE = ROOT / "keras_ssgd"


def documented_order():
    """`[(file, qualified name)]` of the numbered list under "A training
    step"."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.split("## A training step", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `([\w/]+\.py)`, `([\w.]+)`", section, re.M)


def traced_calls(run):
    """`[(file, qualified name)]` of the package's functions, in the order
    of their calls while `run()` runs (repeats kept)."""
    calls = []

    def profile(frame, event, arg):
        if event != "call":
            return
        path = pathlib.Path(frame.f_code.co_filename)
        if PACKAGE in path.parents:
            calls.append((str(path.relative_to(PACKAGE)),
                          frame.f_code.co_qualname))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def test_the_documented_step_is_the_order_of_a_real_step():
    order = documented_order()
    assert len(order) >= 5
    inputs = keras.Input((4,))
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(2)(inputs), noise_level=0.1, seed=0
    )
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 4), "float32"), np.ones((8, 2), "float32")
    calls = traced_calls(
        lambda: model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    )
    # Each documented function is called, after the one before it.
    position = 0
    for entry in order:
        assert entry in calls[position:], (
            f"{entry} is not called after {order[order.index(entry) - 1]}"
            if order.index(entry) else f"{entry} is not called")
        position = calls.index(entry, position) + 1
