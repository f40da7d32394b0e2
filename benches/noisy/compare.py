"""Noisy over-determined mixtures: unmix beside FastICA and the best linear demixer.

For each directory made by `benches/noisy/run.sh`, prints the mean and worst |corr| and
the mean SI-SDR of: scikit-learn's FastICA, the best linear demixer (each source
regressed on the mixture by least squares: an oracle no blind linear method can beat),
and unmix's outputs — `out/` (the defaults: each source's posterior mean given the
sensor noise), `plain/` (`--no-denoise`: the linear model's outputs), `vae/`
(`--model vae`) — with each run's wall time. Needs numpy, scipy and scikit-learn.

Run: python3 benches/noisy/compare.py DIR...
"""

import pathlib
import sys

import numpy as np
from scipy.io import wavfile
from scipy.optimize import linear_sum_assignment


def scores(truth, estimates):
    """Matched |corr| and SI-SDR (dB) per source."""
    n = truth.shape[1]
    c = np.abs(np.corrcoef(truth.T, estimates.T)[:n, n:])
    rows, cols = linear_sum_assignment(-c)
    sdr = []
    for j, k in zip(rows, cols):
        s, e = truth[:, j] - truth[:, j].mean(), estimates[:, k] - estimates[:, k].mean()
        target = (e @ s) / (s @ s) * s
        sdr.append(10 * np.log10((target @ target) / ((e - target) @ (e - target))))
    return c[rows, cols], np.array(sdr)


def cell(truth, estimates):
    corr, sdr = scores(truth, estimates)
    return f"{corr.mean():.4f} / {corr.min():.4f} / {sdr.mean():.1f} dB"


def main(dirs):
    from sklearn.decomposition import FastICA

    print("case | FastICA | best linear (oracle) | unmix | --no-denoise | --model vae  "
          "(|corr| mean / worst / SI-SDR mean; wall s)")
    for d in map(pathlib.Path, dirs):
        _, x = wavfile.read(d / "mixture.wav")
        _, s = wavfile.read(d / "truth.wav")
        x, s = x.astype(np.float64), s.astype(np.float64)
        n = s.shape[1]
        ica = FastICA(n_components=n, whiten="unit-variance", max_iter=1000, random_state=0).fit_transform(x)
        design = np.column_stack([x, np.ones(len(x))])
        oracle = design @ np.linalg.lstsq(design, s, rcond=None)[0]
        line = f"{d.name} | {cell(s, ica)} | {cell(s, oracle)}"
        for run in ["out", "plain", "vae"]:
            sources = d / run / "sources.wav"
            if sources.exists():
                _, y = wavfile.read(sources)
                wall = (d / run / "wall_s").read_text().strip()
                line += f" | {cell(s, y.astype(np.float64))}; {float(wall):.2f}"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
