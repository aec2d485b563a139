"""TensorFlow's native start-up lines filtered by TF_CPP_MIN_LOG_LEVEL."""

from keras_ssgd import native_log

PREAMBLE = ("WARNING: All log messages before absl::InitializeLog() is called "
            "are written to STDERR\n")
ONEDNN = ("I0000 00:00:1796564487.906186    2100 port.cc:153] oneDNN custom "
          "operations are on. You may see slightly different numerical "
          "results.\n")
GUARD = ("W0000 00:00:1796564488.013365    2100 cpu_feature_guard.cc:227] This "
         "TensorFlow binary is optimized.\n"
         "To enable the following instructions: AVX2 AVX512F FMA, rebuild.\n")
ERROR = "E0000 00:00:1796564488.1    2100 cuda_dnn.cc:8] Unable to load cuDNN\n"
PYTHON = "UserWarning: something the user must see\n"


def test_levels_drop_what_tensorflow_says_they_drop():
    text = PYTHON + PREAMBLE + ONEDNN + GUARD + ERROR + PREAMBLE + ONEDNN
    assert native_log.filter_native_log(text, 0) == (
        PYTHON + ONEDNN + GUARD + ERROR + ONEDNN)
    assert native_log.filter_native_log(text, 1) == PYTHON + GUARD + ERROR
    # A message's second line goes with it.
    assert native_log.filter_native_log(text, 2) == PYTHON + ERROR
    assert native_log.filter_native_log(text, 3) == PYTHON


def test_lines_after_a_dropped_message_that_are_not_its_own_are_kept():
    # A Python line written after an INFO message is its continuation only
    # until the next prefix or preamble; the next absl line decides anew.
    text = ONEDNN + ERROR + PYTHON
    assert native_log.filter_native_log(text, 2) == ERROR + PYTHON


def test_import_quietly_writes_back_what_the_level_keeps(
    capfd, monkeypatch, tmp_path
):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    module = "keras_ssgd_native_log_probe"
    # Writes to descriptor 2 as a native library does.
    (tmp_path / f"{module}.py").write_text(
        "import os, sys\n"
        f"os.write(2, {(PREAMBLE + ONEDNN + ERROR).encode()!r})\n"
        "print('still printed', file=sys.stderr)\n"
        "VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    imported = native_log.import_quietly(module)
    assert imported.VALUE == 1
    assert native_log.import_quietly(module) is imported  # imported once
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "absl::InitializeLog" not in err
    assert "Unable to load cuDNN" in err and "still printed" in err

