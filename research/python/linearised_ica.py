"""FastICA on the nonlinear benchmark after per-channel linearisations, to see how far a
front end that undoes the mixing's outer `tanh` gets linear ICA. Not part of the build:
it needs `pip install numpy scipy scikit-learn`.

    for s in 1 2 3 4 5; do unmix synth nonlinear --sources 3 --frames 10000 --seed $s -o nl$s; done
    python3 research/python/linearised_ica.py nl1 nl2 nl3 nl4 nl5

prints, per directory, the mean / worst |corr| (optimal one-to-one matching, as `unmix
score`) of sklearn's FastICA on
- `raw`: the mixture as it is;
- `gauss`: each channel Gaussianised, Φ⁻¹(rank), the classic post-nonlinear remedy;
- `atanh`: the *exact* inverse of the outer layer, an oracle no blind method has;
- `twice`: Gaussianise, FastICA, Gaussianise its outputs, FastICA again (one step per
  tanh layer).
Figures measured with it are in `docs/limitations.md`.
"""
import sys

import numpy as np
import scipy.io.wavfile as wavfile
import scipy.stats as stats
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import FastICA


def score(truth, estimate):
    n = truth.shape[1]
    c = np.abs(np.corrcoef(truth.T, estimate.T)[:n, n:])
    rows, cols = linear_sum_assignment(-c)
    return c[rows, cols].mean(), c[rows, cols].min()


def gaussianise(x):
    t = x.shape[0]
    return np.column_stack([stats.norm.ppf((stats.rankdata(c) - 0.5) / t) for c in x.T])


def ica(x, n):
    return FastICA(n, whiten="unit-variance", random_state=0, max_iter=2000, tol=1e-5).fit_transform(x)


def main():
    for directory in sys.argv[1:]:
        _, x = wavfile.read(f"{directory}/mixture.wav")
        _, s = wavfile.read(f"{directory}/truth.wav")
        x, s = x.astype(np.float64), s.astype(np.float64)
        n = s.shape[1]
        fronts = {
            "raw": x,
            "gauss": gaussianise(x),
            "atanh": np.arctanh(np.clip(x, -1 + 1e-7, 1 - 1e-7)),
        }
        line = [directory]
        for name, front in fronts.items():
            line.append("%s %.3f / %.3f" % ((name,) + score(s, ica(front, n))))
        twice = ica(gaussianise(ica(gaussianise(x), n)), n)
        line.append("twice %.3f / %.3f" % score(s, twice))
        print("  ".join(line))


if __name__ == "__main__":
    main()
