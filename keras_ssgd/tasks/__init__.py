"""The paper's tasks: each one's data loader and model builders in one place.

S-SGD itself needs none of this: the step is in the modules at the top of
`keras_ssgd`. These packages hold what the paper trained it on, one folder
per task, so `experiments/paper/` and `ssgd-train` can build any row of it.

The layout of `keras_ssgd`, one line per module:

The S-SGD step (what `keras_ssgd.SymmetricSGDModel` runs):
    model          SymmetricSGDModel: S-SGD's points for its step_form.
    custom_step    symmetric_gradients, symmetric_value_and_grad: S-SGD in
                   a train_step of the user's own.
    forms          The step forms (full, split, pairs) and their points.
    points         Point and measure_points: the one measurement loop.
    perturbed      PerturbedModel: the training step every method shares.
    distributable  What engines set on a model; the passes per device.
    sharing        StepSharing: how an engine shares the step (model.sharing);
                   device_plan, the per-device plan under keras.distribution.
    recurrent      Stateful RNN states carried across the passes.
    cadence        Which steps perturb (the level, every=k).
    stream         NoiseStream: the noise level and seed at (seed, step).
    noise          The noise maths: ||n|| = noise_level * ||W|| per variable.
    filters        Which variables get noise (kernels, not biases, by default).
    gradients      The passes' losses and gradients combined (sparse kept sparse).
    methods        The training methods by name: the one table.
    wrapping       wrap(): any Keras model into one of the methods.
    phases         PhasePlan: Table 1's notation ("75-25S-25S").
    schedules      Learning-rate schedules: SGDR in epochs, WarmupScaled.
    callbacks      NoiseSchedule: the noise level by epoch during fit();
                   StochasticWeightAveraging (SWA).
    batchnorm      BatchNorm statistics recomputed for averaged weights.
    validation     The argument checks and their Keras-style errors.
    baselines/     The methods S-SGD is compared with: SAM, ASAM, SmoothOut,
                   weight noise, DropConnect (each a PerturbedModel).
    backends/      What differs on TensorFlow, JAX and PyTorch; jax_devices,
                   the step per device under keras.distribution; seeds,
                   PyTorch's generator seeded from both seed words.
    native_log     The commands' quieting: Keras and TensorFlow imported
                   without TensorFlow's start-up lines (oneDNN, absl).
    user_code      The user's own functions by name (`package.module:function`).
    store          Results on disk: a run folder, its records, atomic writes.
    checkpoint     A run in progress on disk, to continue it after a stop.
    kill_points    Named points where a test kills the process (tests only).
    _keras_compat  Every private Keras name the package uses, each tested.

The tools built on it:
    train/         ssgd-train: methods x seeds x levels, stored, compared.
    landscape/     ssgd-landscape and the flatness measures (Hessian).
    distributed/   Horovod, MultiWorkerMirroredStrategy, keras.distribution;
                   engines (how one ssgd-train run spreads over devices).

Shared by every task:
    data/          load(name), the registry of datasets; Batches and Data
                   (NumPy batches, any backend); arrays (the user's .npz,
                   module:function or tfds:NAME); objects (the user's dataset
                   objects); user_function (calling the user's data
                   function, DataError); held_out (validation split).
    models/        The model builders by name (from the tasks below), and
                   mlp, the one builder that belongs to no task.

The paper's tasks (this package):
    mnist1d/       data (load_mnist1d), cnn (mnist1d_cnn), lstm (mnist1d_lstm).
    cifar/         data (load_cifar), resnet (cifar_resnet), wide_resnet, vgg
                   (cifar_vgg).
    imagenet/      data (load_imagenet), resnet (imagenet_resnet).
    ptb/           data (load_ptb, ptb_ids), lstm (ptb_lstm), recipe,
                   callbacks, perplexity, training: Table 5's language models.
    speech/        data (log-mel features), sgcn (the SGCN model), ctc (CTC
                   loss, greedy decoding, word error rate): Table 4.
"""
