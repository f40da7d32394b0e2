"""The Python package's overhead over the command line: `Model.apply` on a long array
against `unmix apply` on the same samples in a WAV file.

    pip install ./bindings/python && cargo build --release
    python bindings/python/bench/apply_overhead.py [--minutes 10] [--channels 8] [--rate 48000]

Prints the wall time of each, best of --repeats runs. `unmix apply` reads the WAV, runs the
encoder and writes the sources' WAV on threads of a pipeline; `Model.apply` runs the encoder
on the array in memory, so the like-for-like figure is read + apply + write from Python.
"""

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import unmix

ROOT = Path(__file__).resolve().parents[3]


def best_of(repeats, run):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="vae", help="which model to time (vae: the 32-unit MLP encoder)")
    parser.add_argument("--unmix", default=str(ROOT / "target" / "release" / "unmix"))
    args = parser.parse_args()

    frames = int(args.minutes * 60 * args.rate)
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(args.sources, args.channels)).astype(np.float32)
    x = np.empty((frames, args.channels), dtype=np.float32)
    block = 1 << 20
    for start in range(0, frames, block):
        n = min(block, frames - start)
        x[start : start + n] = rng.laplace(size=(n, args.sources)).astype(np.float32) @ mixing * 0.05
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fitted = unmix.separate(x[:20000], args.sources, args.rate, model=args.model, epochs=5, restarts=1)
        fitted.model.save(tmp / "m.unmix")
        unmix.write_wav(tmp / "x.wav", x, args.rate)
        model = unmix.Model.load(tmp / "m.unmix")
        cli = [args.unmix, "apply", str(tmp / "m.unmix"), str(tmp / "x.wav"), "-o", str(tmp / "cli.wav"), "--quiet", "--force"]
        cli_s = best_of(args.repeats, lambda: subprocess.run(cli, check=True, stdout=subprocess.DEVNULL))
        apply_s = best_of(args.repeats, lambda: model.apply(x))

        def from_files():
            y, rate = unmix.read(tmp / "x.wav")
            unmix.write_wav(tmp / "py.wav", model.apply(y), rate)

        files_s = best_of(args.repeats, from_files)
        same = np.array_equal(unmix.read(tmp / "cli.wav")[0], unmix.read(tmp / "py.wav")[0])
    print(f"{args.minutes:g} min × {args.channels} channels at {args.rate} Hz ({frames} frames), "
          f"{args.sources} sources, model {fitted.report['model']['chosen']}, cores {os.cpu_count()}")
    print(f"unmix apply (WAV → WAV):                 {cli_s:7.2f} s")
    print(f"Python read + Model.apply + write_wav:   {files_s:7.2f} s  ({files_s / cli_s - 1:+.1%})")
    print(f"Python Model.apply on the array alone:   {apply_s:7.2f} s  ({apply_s / cli_s - 1:+.1%})")
    print(f"same sources from both: {same}")


if __name__ == "__main__":
    main()
