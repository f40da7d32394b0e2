"""The frequency domain from Python: a convolutive mixture separated with `domain="stft"`,
its room's model applied as `unmix apply` applies it."""

import subprocess

import numpy as np
import pytest

import unmix
from conftest import read_csv, write_csv

RATE = 8000


def room(seconds=6.0, seed=3):
    """Two independent speech-like sources (Laplace noise through slowly varying
    resonances, switched on and off) each reaching 3 microphones through its own decaying
    random filter: the mixture (frames × 3) and each source's image at microphone 1."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * RATE)
    sources = []
    for k in range(2):
        excitation = rng.laplace(size=frames)
        envelope = (np.sin(2 * np.pi * (0.7 + 0.4 * k) * np.arange(frames) / RATE + k) > -0.2).astype(float)
        pole = 0.9 * np.exp(1j * 2 * np.pi * (300 + 500 * k) / RATE)
        y = np.zeros(frames)
        for t in range(2, frames):
            y[t] = excitation[t] + 2 * pole.real * y[t - 1] - abs(pole) ** 2 * y[t - 2]
        sources.append(y * envelope)
    taps = 64
    decay = np.exp(-np.arange(taps) / 12.0)
    filters = [[rng.normal(size=taps) * decay for _ in range(3)] for _ in range(2)]
    for k in range(2):
        for c in range(3):
            filters[k][c][0] += 2.0  # a direct path
    images = np.zeros((2, 3, frames))
    for k in range(2):
        for c in range(3):
            images[k, c] = np.convolve(sources[k], filters[k][c])[:frames]
    mixture = images.sum(axis=0).T
    scale = np.abs(mixture).max()
    return (mixture / scale).astype(np.float32), images[:, 0, :].T / scale


def si_sdr(reference, estimate):
    alpha = np.dot(estimate, reference) / np.dot(reference, reference)
    target = alpha * reference
    return 10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2))


def best_si_sdr(images, estimates):
    """Mean SI-SDR of each image against its best-matching estimate (2 sources)."""
    pairs = [(0, 1), (1, 0)]
    return max(np.mean([si_sdr(images[:, i], estimates[:, j]) for i, j in enumerate(p)]) for p in pairs)


OPTIONS = dict(domain="stft", stft_frame=512, stft_hop=128, stft_iterations=30, stft_spatial_iterations=0)


def test_a_room_is_separated_in_the_frequency_domain():
    x, images = room()
    result = unmix.separate(x, 2, sample_rate=RATE, **OPTIONS)
    assert result.sources.shape == (x.shape[0], 2)
    assert result.model.domain == "stft" and result.model.n_channels == 3
    assert result.report["domain"] == "stft" and result.report["iterations"] == 30
    unprocessed = best_si_sdr(images, np.stack([x[:, 0], x[:, 0]], axis=1))
    separated = best_si_sdr(images, result.sources)
    assert separated > unprocessed + 5, (unprocessed, separated)
    # The room's filters, frame by frame, separate as well as the fit did.
    applied = result.model.apply(x)
    assert applied.shape == result.sources.shape
    assert best_si_sdr(images, applied) > unprocessed + 5
    with pytest.raises(ValueError, match="has no learned priors"):
        result.model.priors
    assert result.model.affine is None


def test_a_rooms_fit_shows_its_progress():
    x, _ = room(seconds=3.0, seed=5)
    steps = []
    options = dict(OPTIONS, stft_spatial_iterations=5, stft_starts=2)
    unmix.separate(x, 2, sample_rate=RATE, progress=lambda *step: steps.append(step), **options)
    # One phase, counted forward over both starts' demixing and spatial-model iterations.
    assert {phase for phase, *_ in steps} == {"room"}
    assert steps[0][1] and not any(new for _, new, *_ in steps[1:])
    done = [d for _, _, d, _, _ in steps]
    assert done == sorted(done) and done[-1] == steps[-1][3] == 2 * (30 + 5)
    assert any("start 2/2: spatial model" in message for *_, message in steps)


def test_a_rooms_model_applies_as_on_the_command_line(unmix_cli, tmp_path):
    x, _ = room(seconds=3.0, seed=4)
    model = unmix.separate(x, 2, sample_rate=RATE, **OPTIONS).model
    model.save(tmp_path / "room.unmix")
    again = unmix.Model.load(tmp_path / "room.unmix")
    assert again.domain == "stft" and again.sample_rate == RATE
    write_csv(tmp_path / "mix.csv", x)
    done = subprocess.run(
        [unmix_cli, "apply", tmp_path / "room.unmix", tmp_path / "mix.csv", "--csv-rate", str(RATE), "-o",
         tmp_path / "s.csv", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(again.apply(x), read_csv(tmp_path / "s.csv"), rtol=1e-5, atol=1e-6)
