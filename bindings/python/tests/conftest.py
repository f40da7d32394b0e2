"""Shared fixtures: seeded mixtures made here, and the `unmix` command line to compare with."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]


def mixture(frames=4000, sources=3, channels=3, seed=1):
    """Independent non-Gaussian sources (Laplace, uniform, a sine with noise) mixed by a
    seeded random matrix: frames × channels float32, and the sources."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)
    kinds = [
        rng.laplace(size=frames),
        rng.uniform(-1.7, 1.7, size=frames),
        np.sin(2 * np.pi * t / 37.0) * 1.4 + 0.1 * rng.standard_normal(frames),
        rng.standard_t(5, size=frames),
    ]
    s = np.stack(kinds[:sources], axis=1)
    a = rng.normal(size=(sources, channels)) + np.eye(sources, channels)
    return (s @ a).astype(np.float32), s


@pytest.fixture(scope="session")
def unmix_cli():
    """The `unmix` binary: $UNMIX_BIN, or one built in this repository's target directory,
    or one on the PATH."""
    candidates = [os.environ.get("UNMIX_BIN")]
    candidates += [str(ROOT / "target" / profile / "unmix") for profile in ("release", "debug")]
    candidates.append(shutil.which("unmix"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CI"):
        pytest.fail("no unmix binary: set UNMIX_BIN")
    pytest.skip("no unmix binary (build it with `cargo build --release`, or set UNMIX_BIN)")


def write_csv(path, x):
    """Writes frames × channels as the command line reads a CSV: every float32 exactly."""
    np.savetxt(path, x, delimiter=",", fmt="%.9g", header=",".join(f"ch{c + 1}" for c in range(x.shape[1])), comments="")


def read_csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
