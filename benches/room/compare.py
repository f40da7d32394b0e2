"""pyroomacoustics' AuxIVA, ILRMA and FastMNMF2 on the room benchmark's files.

Usage: python3 benches/room/compare.py DIR [--frame 2048 --hop 512 --iterations 50]

DIR holds seedN/mixture.wav and seedN/truth.wav as `cargo run --release --example room
-- --out DIR` writes them. Each method runs with the same STFT frame and hop as unmix
(pyroomacoustics' STFT with a Hann analysis window and its matched synthesis window),
projection back to the first microphone, and is scored like unmix: SI-SDR per talker
against its image at the reference microphone, after the best matching.
Needs numpy, scipy and pyroomacoustics (`pip install pyroomacoustics`); not part of the
test suite.
"""

import argparse
import itertools
import pathlib
import time

import numpy as np
import pyroomacoustics as pra
from scipy.io import wavfile


def si_sdr(reference, estimate):
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    alpha = np.dot(estimate, reference) / np.dot(reference, reference)
    target = alpha * reference
    return 10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2))


def best_matching(truth, estimates):
    n = truth.shape[1]
    best = None
    for perm in itertools.permutations(range(estimates.shape[1]), n):
        scores = [si_sdr(truth[:, j], estimates[:, perm[j]]) for j in range(n)]
        if best is None or np.mean(scores) > np.mean(best):
            best = scores
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--frame", type=int, default=2048)
    parser.add_argument("--hop", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    window = pra.hann(args.frame, flag="asymmetric", length="full")
    synthesis = pra.transform.stft.compute_synthesis_window(window, args.hop)
    for seed_dir in sorted(pathlib.Path(args.dir).glob("seed*")):
        _, mix = wavfile.read(seed_dir / "mixture.wav")
        _, truth = wavfile.read(seed_dir / "truth.wav")
        mix, truth = mix.astype(np.float64), truth.astype(np.float64)
        n = truth.shape[1]
        X = pra.transform.stft.analysis(mix, args.frame, args.hop, win=window)
        unprocessed = [si_sdr(truth[:, j], mix[:, 0]) for j in range(n)]
        row = [seed_dir.name, " / ".join(f"{v:.1f}" for v in unprocessed)]
        methods = {
            "AuxIVA": lambda: pra.bss.auxiva(X, n_src=n, n_iter=args.iterations, proj_back=True),
            "ILRMA": lambda: pra.bss.ilrma(X, n_src=n, n_iter=args.iterations, proj_back=True),
            "FastMNMF2": lambda: pra.bss.fastmnmf2(X, n_src=n, n_iter=args.iterations),
        }
        for name, method in methods.items():
            start = time.time()
            try:
                Y = method()
            except AssertionError as refused:  # ILRMA: as many microphones as sources
                row.append(f"{name} — ({refused})")
                continue
            wall = time.time() - start
            y = pra.transform.stft.synthesis(Y, args.frame, args.hop, win=synthesis)
            # pyroomacoustics' synthesis lags by frame − hop samples.
            y = y[args.frame - args.hop :][: mix.shape[0]]
            if y.shape[0] < mix.shape[0]:
                y = np.pad(y, ((0, mix.shape[0] - y.shape[0]), (0, 0)))
            scores = best_matching(truth, y)
            gain = np.mean(np.array(scores) - np.array(unprocessed))
            row.append(f"{name} " + " / ".join(f"{v:.1f}" for v in scores) + f" (+{gain:.1f}, {wall:.1f} s)")
        print(" | ".join(row))


if __name__ == "__main__":
    main()
