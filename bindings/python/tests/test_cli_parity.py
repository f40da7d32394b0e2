"""The Python package and the command line are one engine: the same data, options and seed
give the same sources, and each reads the other's model files."""

import json
import subprocess

import numpy as np

import unmix
from conftest import mixture, read_csv, write_csv


def run(cli, *args):
    done = subprocess.run([cli, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_separate_equals_the_command_line(unmix_cli, tmp_path):
    x, _ = mixture()
    write_csv(tmp_path / "mix.csv", x)
    out = tmp_path / "cli"
    run(unmix_cli, "separate", tmp_path / "mix.csv", "-n", 3, "-o", out, "--model", "linear", "--seed", 4,
        "--no-plots", "--quiet")
    cli_sources = read_csv(out / "sources.csv")
    cli_report = json.loads((out / "report.json").read_text())

    ours = unmix.separate(x, 3, model="linear", seed=4)
    assert ours.sources.shape == cli_sources.shape == (4000, 3)
    # sources.csv holds every float32 to its shortest exact decimal: equal to rounding.
    np.testing.assert_allclose(ours.sources, cli_sources, rtol=1e-6, atol=1e-6)
    assert ours.report["model"] == cli_report["model"]
    assert ours.report["priors"] == cli_report["priors"]
    assert ours.report["training_frames"] == cli_report["training_frames"] == 4000


def test_a_model_from_the_command_line_applies_in_python(unmix_cli, tmp_path):
    x, _ = mixture(seed=2)
    write_csv(tmp_path / "mix.csv", x)
    run(unmix_cli, "separate", tmp_path / "mix.csv", "-n", 3, "-o", tmp_path / "fit", "--model", "linear",
        "--no-plots", "--quiet")
    model = unmix.Model.load(tmp_path / "fit" / "model.unmix")
    assert (model.n_channels, model.n_sources, model.sample_rate) == (3, 3, 1)
    run(unmix_cli, "apply", tmp_path / "fit" / "model.unmix", tmp_path / "mix.csv", "-o", tmp_path / "applied.csv",
        "--quiet")
    np.testing.assert_allclose(model.apply(x), read_csv(tmp_path / "applied.csv"), rtol=1e-6, atol=1e-6)


def test_a_model_from_python_applies_on_the_command_line(unmix_cli, tmp_path):
    x, _ = mixture(seed=3)
    fitted = unmix.separate(x, 3, sample_rate=100, model="linear")
    fitted.model.save(tmp_path / "py.unmix")
    write_csv(tmp_path / "mix.csv", x)
    run(unmix_cli, "apply", tmp_path / "py.unmix", tmp_path / "mix.csv", "-o", tmp_path / "applied.csv", "--quiet")
    np.testing.assert_allclose(fitted.sources, read_csv(tmp_path / "applied.csv"), rtol=1e-6, atol=1e-6)


def test_monitoring_scores_equal_the_command_lines(unmix_cli, tmp_path):
    x, _ = mixture(frames=5000, seed=5)
    fitted = unmix.separate(x, 3, sample_rate=100, model="linear")
    fitted.model.save(tmp_path / "m.unmix")
    write_csv(tmp_path / "mix.csv", x)
    run(unmix_cli, "apply", tmp_path / "m.unmix", tmp_path / "mix.csv", "-o", tmp_path / "s.csv", "--scores",
        tmp_path / "scores.csv", "--window-s", 7, "--hop-s", 3, "--quiet")
    ours = fitted.model.scores(x, window_s=7, hop_s=3)
    with open(tmp_path / "scores.csv") as f:
        columns = f.readline().strip().split(",")
    theirs = read_csv(tmp_path / "scores.csv")
    assert list(ours) == columns
    for c, name in enumerate(columns):
        np.testing.assert_allclose(ours[name], theirs[:, c], rtol=1e-5, atol=1e-6, err_msg=name)
