"""scikit-learn's FastICA and python-picard on the speech benchmark's mixtures.

Reads each `seed*/mixture.wav` and `truth.wav` that `cargo run --release --example speech
-- --out DIR` wrote, separates the mixture with FastICA (scikit-learn's defaults, whiten
to the number of talkers, `max_iter=1000`) and Picard (its defaults), and prints each
talker's SI-SDR and the wall time, as the example prints unmix's. Needs numpy, scipy,
scikit-learn and python-picard (`pip install numpy scipy scikit-learn python-picard`).

Run: python3 benches/speech/compare.py DIR
"""

import pathlib
import sys
import time

import numpy as np
from scipy.io import wavfile
from scipy.optimize import linear_sum_assignment


def si_sdr(reference, estimate):
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    noise = estimate - target
    return 10 * np.log10((target @ target) / (noise @ noise))


def scores(truth, estimates):
    n = truth.shape[1]
    cost = np.array([[-si_sdr(truth[:, i], estimates[:, j]) for j in range(n)] for i in range(n)])
    rows, cols = linear_sum_assignment(cost)
    return [-cost[i, j] for i, j in zip(rows, cols)]


def main(root):
    from sklearn.decomposition import FastICA

    try:
        from picard import picard
    except ImportError:
        picard = None
    for case in sorted(pathlib.Path(root).glob("seed*")):
        _, x = wavfile.read(case / "mixture.wav")
        _, s = wavfile.read(case / "truth.wav")
        x, s = x.astype(np.float64), s.astype(np.float64)
        n = s.shape[1]
        start = time.perf_counter()
        est = FastICA(n_components=n, whiten="unit-variance", max_iter=1000, random_state=0).fit_transform(x)
        took = time.perf_counter() - start
        db = scores(s, est)
        line = f"{case.name} | FastICA {' / '.join(f'{v:.1f}' for v in db)} | {np.mean(db):.1f} | {took:.2f} s"
        if picard is not None:
            start = time.perf_counter()
            _, _, y = picard(x.T, n_components=n, random_state=0)
            took = time.perf_counter() - start
            db = scores(s, y.T)
            line += f" || Picard {' / '.join(f'{v:.1f}' for v in db)} | {np.mean(db):.1f} | {took:.2f} s"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
