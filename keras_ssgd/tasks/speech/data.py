"""Speech recognition batches: log-mel features and character labels.

Two sources give the same batches, `({"features": (batch, time, F),
"lengths": (batch,)}, labels (batch, max_chars))` with labels in the ids of
`keras_ssgd.tasks.speech.ctc` (0-padded) and `F = num_mel_bins * 3` (log-mel energies
with their first and second differences) or whatever the files hold:

- `load_librispeech`: LibriSpeech through tensorflow-datasets, features
  computed here from the 16 kHz audio with `tf.signal`;
- `load_speech_folder`: features already on disk, one `.npy` per
  utterance, which is how WSJ si-284 (licensed by the LDC, not in tfds) is
  used. The layout, for each split (`train`, `test`, ...):

      DATA_DIR/train/transcripts.txt   # one line per utterance: "ID words"
      DATA_DIR/train/ID.npy            # float32 (frames, F), one per ID
      DATA_DIR/test/transcripts.txt
      DATA_DIR/test/ID.npy

  For WSJ, put si-284 in `train` and eval92 (or dev93) in `test`; the
  features can be made with `log_mel` from the 16 kHz waveforms (or any
  extractor, e.g. Kaldi's 40 filterbanks with deltas, as long as every file
  of a run has the same `F`). Transcripts are normalised by
  `keras_ssgd.tasks.speech.ctc.normalize_text` (lower case, letters, space, apostrophe);
  WSJ's noise markers should be removed beforehand.

Features are read (or computed) as batches are made, never all held in
memory (WSJ si-284 is about 14 GB of float32 features). Batches of the
training set are reshuffled every epoch; test batches come in order. Padded frames are zeros and padded labels 0 (see
`keras_ssgd.tasks.speech.sgcn`).
"""

import pathlib

import numpy as np
import tensorflow as tf

from keras_ssgd.tasks.speech import ctc as speech
from keras_ssgd.data.pipeline import Data
from keras_ssgd.validation import check_positive_int

TRANSCRIPTS = "transcripts.txt"


def log_mel(pcm, sample_rate=16000, num_mel_bins=40, deltas=True):
    """Log-mel features of one waveform, normalised per utterance.

    25 ms Hann windows every 10 ms (`tf.signal.stft`, 512-point FFT), power
    spectrum, `num_mel_bins` mel filters from 20 Hz to the Nyquist rate,
    `log(x + 1e-6)`; with `deltas`, the first and second differences over
    time (central differences) are appended. Each feature is
    then scaled to zero mean and unit variance over the utterance.

    Args:
        pcm: 1-D float or int16 tensor of samples (int16 is scaled to
            [-1, 1]).
        sample_rate: int. Defaults to `16000`.
        num_mel_bins: int. Defaults to `40`.
        deltas: bool. Append first and second differences. Defaults to
            `True`.

    Returns:
        A float32 tensor `(frames, num_mel_bins * (3 if deltas else 1))`,
        at least one frame.
    """
    pcm = tf.convert_to_tensor(pcm)
    if pcm.dtype.is_integer:  # 16-bit samples (tfds stores them as int64)
        pcm = tf.cast(pcm, tf.float32) / 32768.0
    pcm = tf.cast(pcm, tf.float32)
    window = int(0.025 * sample_rate)
    pcm = tf.pad(pcm, [[0, tf.maximum(0, window - tf.shape(pcm)[0])]])
    stft = tf.signal.stft(pcm, window, int(0.010 * sample_rate), 512, pad_end=True)
    power = tf.square(tf.abs(stft))
    mel = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins, 257, sample_rate, 20.0, sample_rate / 2.0
    )
    features = tf.math.log(tf.matmul(power, mel) + 1e-6)
    if deltas:
        first = _difference(features)
        features = tf.concat([features, first, _difference(first)], axis=-1)
    mean, variance = tf.nn.moments(features, axes=[0], keepdims=True)
    return (features - mean) * tf.math.rsqrt(variance + 1e-5)


def _difference(x):
    """Central difference over time, `(x[t+1] - x[t-1]) / 2`, with the edge
    frames repeated."""
    padded = tf.concat([x[:1], x, x[-1:]], axis=0)
    return (padded[2:] - padded[:-2]) / 2.0


def _label_ids(text):
    """Character ids of a scalar string tensor, in the graph."""
    text = tf.strings.regex_replace(tf.strings.lower(text), "[^a-z' ]", "")
    text = tf.strings.strip(tf.strings.regex_replace(text, " +", " "))
    chars = tf.strings.bytes_split(text)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(speech.ALPHABET[1:]),
            tf.range(1, speech.NUM_CLASSES, dtype=tf.int32),
        ),
        default_value=speech.BLANK,
    )
    return table.lookup(chars)


def _pack(features, labels):
    return {"features": features, "lengths": tf.shape(features)[0]}, labels


def speech_batches(items, prepare, batch_size, seed=None, shuffle=False,
                   shuffle_buffer=None):
    """Model batches from a dataset of raw items.

    The items (file names, or tfds examples) are shuffled first, every epoch
    anew, then turned into `(features (time, F), labels (n,))` by `prepare`
    and padded into batches: nothing is held in memory beyond the buffers.

    Args:
        items: `tf.data.Dataset` of raw items.
        prepare: function of one item to `(features, labels)`.
        batch_size: int > 0.
        seed: int or None. Seed of the shuffling.
        shuffle: bool. Reshuffle every epoch. Defaults to `False`.
        shuffle_buffer: int or None. Defaults to the whole dataset.

    Returns:
        A `tf.data.Dataset` of `({"features", "lengths"}, labels)` batches.
    """
    check_positive_int(batch_size, "batch_size")
    ds = items
    if shuffle:
        buffer = shuffle_buffer or max(1, int(ds.cardinality()))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(_pack, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size, padding_values=(
        {"features": 0.0, "lengths": 0}, speech.BLANK))
    return ds.prefetch(tf.data.AUTOTUNE)


def _data(train, test, prepare, dims, batch_size, seed, shuffle_buffer=None):
    return Data(
        train=speech_batches(train, prepare, batch_size, seed=seed, shuffle=True,
                             shuffle_buffer=shuffle_buffer),
        test=speech_batches(test, prepare, batch_size),
        train_eval=speech_batches(train, prepare, batch_size),
        train_size=int(train.cardinality()),
        input_shape=(None, dims),
        num_classes=speech.NUM_CLASSES,
    )


def read_transcripts(path):
    """`{utterance id: transcript}` from a `transcripts.txt` (one "ID words"
    line per utterance; blank lines skipped)."""
    result = {}
    for number, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utterance, _, text = line.strip().partition(" ")
        if not speech.normalize_text(text):
            raise ValueError(
                f"Line {number} of {path} has no transcript after the "
                f"utterance id (expected 'ID words'). Received: {line!r}"
            )
        result[utterance] = text
    return result


def _folder_split(folder, split):
    where = folder / split
    listing = where / TRANSCRIPTS
    if not listing.is_file():
        raise FileNotFoundError(
            f"Argument `data_dir` must hold a folder {split!r} with a "
            f"{TRANSCRIPTS} (one 'ID words' line per utterance) and one ID.npy "
            f"of float32 features (frames, F) per utterance. "
            f"Received: data_dir={str(folder)!r}, missing: {listing}"
        )
    transcripts = read_transcripts(listing)
    if not transcripts:
        raise ValueError(f"{listing} lists no utterance (expected 'ID words' lines).")
    missing = [u for u in transcripts if not (where / f"{u}.npy").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} utterance(s) of {listing} have no feature file in "
            f"{where}, e.g. {missing[0]}.npy (expected ID.npy per listed ID)."
        )
    paths, texts, dims = [], [], None
    for utterance, text in transcripts.items():
        path = where / f"{utterance}.npy"
        shape = np.load(path, mmap_mode="r").shape  # reads the header only
        if len(shape) != 2 or (dims is not None and shape[1] != dims) or shape[0] == 0:
            raise ValueError(
                f"Feature file {path} must be a non-empty (frames, F) array with "
                f"the same F as the others{'' if dims is None else f' (F={dims})'}. "
                f"Received shape: {shape}"
            )
        dims = shape[1]
        paths.append(str(path))
        texts.append(text)
    return tf.data.Dataset.from_tensor_slices((paths, texts)), dims


def _read_features(dims):
    def prepare(path, text):
        features = tf.numpy_function(
            lambda p: np.load(p.decode()).astype(np.float32), [path], tf.float32)
        return tf.ensure_shape(features, (None, dims)), _label_ids(text)
    return prepare


def load_speech_folder(data_dir, batch_size=32, seed=None, train_split="train",
                       test_split="test"):
    """Speech batches from features on disk (the layout in the module
    docstring; e.g. WSJ si-284 / eval92).

    Args:
        data_dir: folder holding one sub-folder per split.
        batch_size: int > 0. Defaults to `32`.
        seed: int or None. Seed of the shuffling.
        train_split: str. Sub-folder of the training set. Defaults to
            `"train"`.
        test_split: str. Sub-folder of the test set. Defaults to `"test"`.

    Returns:
        A `keras_ssgd.data.Data` (`input_shape` is `(None, F)`,
        `num_classes` is `keras_ssgd.tasks.speech.ctc.NUM_CLASSES`).

    Raises:
        FileNotFoundError: `data_dir`, a split folder, its transcripts or a
            feature file is missing (the message says what was expected
            where).

    Example:

    <!-- example: skip needs the WSJ features on disk (licensed corpus). -->

    >>> data = load_speech_folder("/data/wsj-fbank", batch_size=32, seed=0,
    ...                           train_split="si284", test_split="eval92")

    Reference:
    - Paul and Baker, "The Design for the Wall Street Journal-based CSR
      Corpus", 1992.
    """
    check_positive_int(batch_size, "batch_size")
    folder = pathlib.Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Argument `data_dir` must be a folder with {train_split}/ and "
            f"{test_split}/ sub-folders of {TRANSCRIPTS} and ID.npy files. "
            f"Received: data_dir={str(data_dir)!r} (no such folder)"
        )
    train, dims = _folder_split(folder, train_split)
    test, test_dims = _folder_split(folder, test_split)
    if test_dims != dims:
        raise ValueError(
            f"The {train_split} and {test_split} features must have the same "
            f"size F. Received: F={dims} and F={test_dims}"
        )
    return _data(train, test, _read_features(dims), dims, batch_size, seed)


def load_librispeech(batch_size=32, seed=None, train_split="train_clean100",
                     test_split="dev_clean", num_mel_bins=40, data_dir=None,
                     shuffle_buffer=1024):
    """LibriSpeech from `tfds.load("librispeech")`, as log-mel batches.

    The features (`log_mel`, `num_mel_bins * 3` per frame) are computed from
    the audio as it is read, every epoch. The training files are read in a
    shuffled order and the examples shuffled again in a buffer of
    `shuffle_buffer`. `tfds.load` downloads and prepares the data on first
    use (tens of GB for the training splits) into `data_dir`.

    Args:
        batch_size: int > 0. Defaults to `32`.
        seed: int or None. Seed of the shuffling.
        train_split: str. A tfds split (`train_clean100`, `train_clean360`,
            `train_other500`, or a combination like
            `"train_clean100+train_clean360"`). Defaults to `"train_clean100"`.
        test_split: str. Defaults to `"dev_clean"`.
        num_mel_bins: int. Defaults to `40`.
        data_dir: str or None. Where tensorflow-datasets keeps its data.
        shuffle_buffer: int. Examples (audio) held for shuffling. Defaults
            to `1024`.

    Returns:
        A `keras_ssgd.data.Data`.

    Example:

    <!-- example: skip downloads LibriSpeech through tensorflow-datasets. -->

    >>> data = load_librispeech(batch_size=32, seed=0)

    Reference:
    - Panayotov et al., "Librispeech: an ASR corpus based on public domain
      audio books", ICASSP 2015.
    """
    import tensorflow_datasets as tfds

    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_mel_bins, "num_mel_bins")
    check_positive_int(shuffle_buffer, "shuffle_buffer")
    try:
        train = tfds.load(
            "librispeech", split=train_split, data_dir=data_dir, shuffle_files=True,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
        test = tfds.load("librispeech", split=test_split, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001 (tfds raises many types; keep one message)
        raise RuntimeError(
            f"Could not load LibriSpeech splits {train_split!r} and {test_split!r} "
            f"with tensorflow-datasets (data_dir={data_dir!r}): "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from None

    def prepare(example):
        return log_mel(example["speech"], num_mel_bins=num_mel_bins), _label_ids(example["text"])

    return _data(train, test, prepare, num_mel_bins * 3, batch_size, seed,
                 shuffle_buffer=shuffle_buffer)
