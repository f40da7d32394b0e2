"""The Python API on its own: arrays in any layout, models, errors, progress and Ctrl-C."""

import os
import pickle
import signal
import time

import numpy as np
import pytest

import unmix
from conftest import mixture


def abs_corr(a, b):
    """Mean over true sources of the best |corr| with an estimate."""
    c = np.abs(np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:])
    return c.max(axis=1).mean()


def test_separates_a_linear_mixture_with_the_default_options():
    x, s = mixture(frames=6000, seed=7)
    result = unmix.separate(x, 3, sample_rate=1000)
    assert result.sources.dtype == np.float32 and result.sources.shape == (6000, 3)
    assert abs_corr(s, result.sources) > 0.99
    assert result.report["model"]["chosen"] in ("linear", "linear-ar-gmm", "post-nonlinear", "chain", "vae")
    assert result.report["sample_rate_hz"] == 1000
    # The model reapplied gives the separation's own sources, bit for bit.
    assert np.array_equal(result.model.apply(x), result.sources)


def test_any_layout_and_type_gives_the_same_sources():
    x, _ = mixture(seed=8)
    model = unmix.separate(x, 3, model="linear").model
    expected = model.apply(x)
    for variant in (x.astype(np.float64), np.asfortranarray(x), x.tolist()):
        assert np.array_equal(model.apply(unmix.as_frames(variant)), expected)
    # A float32 C-contiguous array is handed on as it is.
    assert unmix.as_frames(x) is x


def test_options_are_the_command_lines():
    options = unmix.separate_options()
    assert options["epochs"].default == 400
    assert options["max_train_frames"].default == 131072
    assert options["no_whiten"].switch and options["no_whiten"].default is False
    assert "linear" in options["model"].choices
    assert "output" not in options and "truth" not in options
    assert "max_train_frames" in unmix.separate.__doc__
    # A word of Python's takes a trailing underscore.
    assert options["lambda_"].option == "lambda" and options["lambda_"].default == 1.0
    assert "lambda" not in options


def test_priors_and_header():
    x, _ = mixture(seed=9)
    model = unmix.separate(x, 3, model="linear").model
    priors = model.priors
    assert priors["weights"].shape == priors["means"].shape == priors["variances"].shape
    assert priors["weights"].shape[0] == 3
    np.testing.assert_allclose(priors["weights"].sum(axis=1), 1.0, rtol=1e-5)
    assert (priors["variances"] > 0).all()
    assert model.header["channels"] == 3
    assert repr(model) == "Model(n_channels=3, n_sources=3, sample_rate=1, domain='time')"


def test_reconstruct_and_the_affine_map():
    x, _ = mixture(seed=17)
    model = unmix.separate(x, 3, model="linear").model
    sources = model.apply(x)
    np.testing.assert_allclose(model.reconstruct(sources), x, rtol=1e-3, atol=1e-3 * float(x.std()))
    w, b = model.affine
    np.testing.assert_allclose(x @ w.T + b, sources, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="sources have 2 columns, the model writes 3"):
        model.reconstruct(sources[:, :2])
    vae = unmix.separate(x, 3, model="vae", hidden=[8], epochs=5, restarts=1).model
    assert vae.affine is None


def test_scores_are_a_dataframe_with_pandas_and_a_dict_without(monkeypatch):
    x, _ = mixture(frames=3000, seed=18)
    model = unmix.separate(x, 3, sample_rate=100, model="linear").model
    columns = ["start_s", "frames", "rms_source1", "rms_source2", "rms_source3", "log_prior_mean", "log_prior_min",
               "reconstruction_error_mean", "reconstruction_error_max", "log_prior_outliers",
               "reconstruction_outliers"]
    try:
        import pandas  # noqa: F401

        table = model.scores(x, window_s=5)
        assert list(table.columns) == columns and len(table) == 6
    except ImportError:
        pass
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    table = model.scores(x, window_s=5)
    assert isinstance(table, dict) and list(table) == columns
    assert list(table["start_s"]) == [0, 5, 10, 15, 20, 25] and list(table["frames"]) == [500] * 6
    assert len(model.scores(x)["start_s"]) == 30  # the command line's 1 s windows
    with pytest.raises(ValueError, match="--hop-s 6 is longer than --window-s 5"):
        model.scores(x, window_s=5, hop_s=6)
    with pytest.raises(ValueError, match="-1"):
        model.scores(x, window_s=-1)


def test_models_save_load_and_pickle(tmp_path):
    x, _ = mixture(seed=10)
    model = unmix.separate(x, 3, model="linear").model
    model.save(tmp_path / "m.unmix")
    for copy in (unmix.Model.load(tmp_path / "m.unmix"), pickle.loads(pickle.dumps(model))):
        assert np.array_equal(copy.apply(x), model.apply(x))


def test_bad_input_raises_with_one_line():
    x, _ = mixture(seed=11)
    nan = x.copy()
    nan[17, 1] = np.nan
    cases = [
        (lambda: unmix.separate(nan, 3), ValueError, "sample NaN at frame 17, channel 2"),
        (lambda: unmix.separate(x[:, 0], 1), ValueError, "frames × channels"),
        (lambda: unmix.separate(x, 4), ValueError, "array: 3 channels cannot be separated into 4 sources"),
        (lambda: unmix.separate(x.astype(np.complex64), 3), ValueError, "real numbers"),
        (lambda: unmix.separate(x, 3, epochs="many"), ValueError, "--epochs"),
        (lambda: unmix.separate(x, 3, no_whiten="yes"), ValueError, "switch"),
        (lambda: unmix.separate(x, 3, output="dir"), TypeError, "unexpected keyword argument 'output'"),
        (lambda: unmix.separate(x, 3, lambda_=-1.0, model="vae"), ValueError, "lambda"),
        (lambda: unmix.separate(x, 3, sample_rate=0), ValueError, "sample_rate"),
        (lambda: unmix.separate(x, "auto", domain="stft"), ValueError, "domain stft) needs the number of sources"),
        (lambda: unmix.separate(x, 3, domain="stft", stft_hop=3), ValueError, "hop"),
    ]
    silent = x.copy()
    silent[:, 2] = 0.5
    cases.append((lambda: unmix.separate(silent, 2, model="linear"), ValueError, "channel 3 is constant"))
    for call, kind, said in cases:
        with pytest.raises(kind) as raised:
            call()
        message = str(raised.value)
        assert said in message and "\n" not in message, message


def test_model_files_errors_name_the_file(tmp_path):
    with pytest.raises(OSError, match="missing.unmix"):
        unmix.Model.load(tmp_path / "missing.unmix")
    (tmp_path / "bad.unmix").write_bytes(b"RIFF this is not a model")
    with pytest.raises(ValueError, match="bad.unmix: not an unmix model file"):
        unmix.Model.load(tmp_path / "bad.unmix")
    x, _ = mixture(seed=12)
    model = unmix.separate(x, 3, model="linear").model
    truncated = model.to_bytes()[:-9]
    (tmp_path / "cut.unmix").write_bytes(truncated)
    with pytest.raises(ValueError, match="cut.unmix"):
        unmix.Model.load(tmp_path / "cut.unmix")
    with pytest.raises(ValueError, match="2 channels"):
        model.apply(x[:, :2].copy())
    with pytest.raises(OSError, match="no-such-dir"):
        model.save(tmp_path / "no-such-dir" / "m.unmix")
    assert not (tmp_path / "no-such-dir").exists()


def test_progress_reaches_the_callback():
    x, _ = mixture(seed=13)
    seen = []
    unmix.separate(x, 3, model="vae", epochs=40, restarts=1, progress=lambda *step: seen.append(step))
    phases = [phase for phase, new_phase, *_ in seen if new_phase]
    assert "training" in phases
    last = [step for step in seen if step[0] == "training"][-1]
    assert 0 < last[2] <= last[3] == 40


def test_a_failing_progress_callback_stops_the_fit():
    x, _ = mixture(seed=14)

    def broken(*_):
        raise RuntimeError("the bar broke")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the bar broke"):
        unmix.separate(x, 3, model="vae", epochs=400, restarts=1, progress=broken)
    assert time.monotonic() - started < 30


def test_ctrl_c_stops_a_fit_at_its_next_epoch():
    x, _ = mixture(frames=20000, seed=15)
    sent = []

    def press_ctrl_c(phase, new_phase, done, total, message):
        # A real SIGINT, sent once the final training is under way.
        if phase == "training" and not sent:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        unmix.separate(x, 3, model="vae", epochs=10000, restarts=1, progress=press_ctrl_c)
    # Stopped within a few epochs of the signal, not after 10 000 of them.
    assert sent and time.monotonic() - sent[0] < 10


def test_wav_files_round_trip_and_bad_files_are_named(tmp_path):
    x, _ = mixture(frames=1000, seed=16)
    unmix.write_wav(tmp_path / "x.wav", x, 16000)
    y, rate = unmix.read(tmp_path / "x.wav")
    assert rate == 16000 and np.array_equal(x, y)
    np.savetxt(tmp_path / "x.csv", x[:10], delimiter=",", fmt="%.9g")
    z, rate = unmix.read(tmp_path / "x.csv", csv_rate=250)
    assert rate == 250 and np.array_equal(z, x[:10])
    with pytest.raises(OSError, match="missing.wav"):
        unmix.read(tmp_path / "missing.wav")
    (tmp_path / "cut.wav").write_bytes((tmp_path / "x.wav").read_bytes()[:30])
    with pytest.raises(ValueError, match="cut.wav"):
        unmix.read(tmp_path / "cut.wav")
    # Cut inside its samples: the data's fault, not the file system's.
    (tmp_path / "short.wav").write_bytes((tmp_path / "x.wav").read_bytes()[:1001])
    with pytest.raises(ValueError, match="short.wav"):
        unmix.read(tmp_path / "short.wav")
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(OSError, match="folder.wav"):
        unmix.read(tmp_path / "folder.wav")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ValueError, match="bad.csv"):
        unmix.read(tmp_path / "bad.csv")
    with pytest.raises(OSError, match="no-dir"):
        unmix.write_wav(tmp_path / "no-dir" / "y.wav", x, 16000)
    names = ["bad.csv", "cut.wav", "folder.wav", "short.wav", "x.csv", "x.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
