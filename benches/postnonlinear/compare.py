"""Post-nonlinear mixtures: how far a linear demixer gets, beside unmix.

For each directory given (made by `unmix synth postnonlinear -o DIR`, separated by
`unmix separate DIR/mixture.wav -n N -o DIR/out`), prints the mean and worst |corr| of:
the unprocessed mixture (each source's best channel), scikit-learn's FastICA, the best
linear demixer (each source regressed on the mixture by least squares: an oracle no blind
linear method can beat), and unmix's `out/sources.wav` when it is there. Needs numpy,
scipy and scikit-learn.

Run: python3 benches/postnonlinear/compare.py DIR...
"""

import pathlib
import sys

import numpy as np
from scipy.io import wavfile
from scipy.optimize import linear_sum_assignment


def matched_abs_corr(truth, estimates):
    n = truth.shape[1]
    c = np.abs(np.corrcoef(truth.T, estimates.T)[:n, n:])
    rows, cols = linear_sum_assignment(-c)
    return c[rows, cols]


def main(dirs):
    from sklearn.decomposition import FastICA

    print("case | mixture mean/worst | FastICA | best linear (oracle) | unmix")
    for d in map(pathlib.Path, dirs):
        _, x = wavfile.read(d / "mixture.wav")
        _, s = wavfile.read(d / "truth.wav")
        x, s = x.astype(np.float64), s.astype(np.float64)
        n = s.shape[1]
        mixture = np.abs(np.corrcoef(s.T, x.T)[:n, n:]).max(axis=1)
        ica = matched_abs_corr(s, FastICA(n_components=n, whiten="unit-variance", max_iter=1000,
                                          random_state=0).fit_transform(x))
        design = np.column_stack([x, np.ones(len(x))])
        oracle = np.array([np.corrcoef(s[:, j], design @ np.linalg.lstsq(design, s[:, j], rcond=None)[0])[0, 1]
                           for j in range(n)])
        line = f"{d.name} | {mixture.mean():.3f}/{mixture.min():.3f} | {ica.mean():.3f}/{ica.min():.3f} | " \
               f"{oracle.mean():.3f}/{oracle.min():.3f}"
        sources = d / "out" / "sources.wav"
        if sources.exists():
            _, y = wavfile.read(sources)
            ours = matched_abs_corr(s, y.astype(np.float64))
            line += f" | {ours.mean():.3f}/{ours.min():.3f}"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
