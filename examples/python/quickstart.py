"""unmix from Python, as in a notebook: separate the demo mixture, plot the sources and the
learned priors, and compare with scikit-learn's FastICA on the same array.

    pip install ./bindings/python matplotlib scikit-learn
    python examples/python/quickstart.py          # writes quickstart.png

Each block below is a notebook cell.
"""

from pathlib import Path

import numpy as np

import unmix

# %% The demo mixture: 3 sources mixed linearly into 3 channels (made by `unmix synth`).
root = Path(__file__).resolve().parents[2]
x, rate = unmix.read(root / "data" / "demo" / "mixture.wav")
truth, _ = unmix.read(root / "data" / "demo" / "truth.wav")
print(f"mixture: {x.shape[0]} frames × {x.shape[1]} channels at {rate} Hz")

# %% Separate it: the same options and defaults as `unmix separate` (verbose: a tqdm bar).
result = unmix.separate(x, 3, sample_rate=rate, seed=0, verbose=True)
print("model:", result.report["model"]["chosen"], "—", result.report["model"]["reason"])


# %% Score both against the truth: each true source's best |corr| with an estimate.
def abs_corr(estimate):
    n = truth.shape[1]
    c = np.abs(np.corrcoef(truth.T, estimate.T)[:n, n:])
    return c.max(axis=1)


from sklearn.decomposition import FastICA  # noqa: E402

ica = FastICA(3, whiten="unit-variance", random_state=0).fit_transform(x)
print("unmix   |corr| per source:", np.round(abs_corr(result.sources), 4))
print("FastICA |corr| per source:", np.round(abs_corr(ica), 4))

# %% Plot the first second of the sources and each source's learned prior.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

priors = result.model.priors
fig, axes = plt.subplots(3, 2, figsize=(10, 7))
shown = slice(0, rate)
for j in range(3):
    axes[j, 0].plot(result.sources[shown, j], lw=0.8)
    axes[j, 0].set_ylabel(f"source {j + 1}")
    # The prior is learned on the posterior means, before the output gain.
    gain = priors["output_gains"][j]
    grid = np.linspace(-4, 4, 400)
    density = sum(
        w * np.exp(-((grid - m) ** 2) / (2 * v)) / np.sqrt(2 * np.pi * v)
        for w, m, v in zip(priors["weights"][j], priors["means"][j], priors["variances"][j])
    )
    axes[j, 1].hist(result.sources[:, j] / gain, bins=100, density=True, alpha=0.4)
    axes[j, 1].plot(grid, density)
axes[0, 0].set_title("separated sources (first second)")
axes[0, 1].set_title("histogram and learned prior")
fig.tight_layout()
fig.savefig("quickstart.png", dpi=100)
print("wrote quickstart.png")
