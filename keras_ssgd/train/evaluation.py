"""What a finished run is measured on: the test set, the validation set,
the training set with the clean weights and, if asked, the Hessian's top
eigenvalue; the trained model saved."""

import math
import time

from keras_ssgd.store import atomic_path

# Examples per batch of the Hessian-vector products (`_hessian_batches`).
HESSIAN_BATCH = 500


def figures(model, data, validation, config, is_root, model_path):
    """The record's figures of a trained run (a dict, in the record's
    order): `validation_*` (with a validation set), `hessian_*` (with
    `config.hessian_iterations`, on the root process), `model_file` (with
    `model_path`, the model saved there atomically by the root process),
    then `status`, `test_*` and `train_*`."""
    record = {}
    test_loss, test_accuracy = model.evaluate(data.test, verbose=0)
    if validation is not None:
        val_loss, val_accuracy = model.evaluate(validation, verbose=0)
        record["validation_accuracy"] = 100.0 * val_accuracy
        record["validation_loss"] = finite_or_none(val_loss)
    train_loss, train_accuracy = model.evaluate(data.train_eval, verbose=0)
    status = "ok" if math.isfinite(test_loss) else "diverged"
    if config.hessian_iterations and status == "ok" and is_root:
        record.update(_hessian(model, data, config))
    if model_path is not None and is_root:
        with atomic_path(model_path) as tmp:  # never a half-written model
            model.save(tmp)
        record["model_file"] = str(model_path)
    record.update(
        status=status,
        test_accuracy=100.0 * test_accuracy,
        test_loss=finite_or_none(test_loss),
        train_loss=finite_or_none(train_loss),
        train_accuracy=100.0 * train_accuracy,
    )
    return record


def _hessian(model, data, config):
    """`hessian_top` (or `None` and `hessian_error`) and
    `hessian_seconds`: Hessian-vector products of the backend in use
    (keras_ssgd.landscape.hvp), over the NumPy batches."""
    from keras_ssgd.landscape.hessian import hessian_eigenvalues

    record = {}
    start = time.perf_counter()
    try:
        top = hessian_eigenvalues(
            model, _hessian_batches(data.train_eval), k=1,
            iterations=config.hessian_iterations,
        )
        record["hessian_top"] = float(top[0])
    except RuntimeError as error:
        # ARPACK did not converge: the trained run is kept, without its
        # eigenvalue, and says why.
        record["hessian_top"] = None
        record["hessian_error"] = str(error)
    record["hessian_seconds"] = time.perf_counter() - start
    return record


def _hessian_batches(train_eval, size=HESSIAN_BATCH):
    """The training set for the Hessian: NumPy batches of at least `size`
    examples (each batch costs a fixed overhead on PyTorch, about a second
    per batch of the MNIST-1D CNN on 2 CPU cores); tf.data as it is."""
    from keras_ssgd.data.pipeline import Batches

    if isinstance(train_eval, Batches) and train_eval.batch_size < size:
        return Batches(train_eval.x, train_eval.y, size, shuffle=False)
    return train_eval


def finite_or_none(x):
    """`x` as a float, or `None` where it is missing or not finite."""
    return float(x) if x is not None and math.isfinite(x) else None
