"""A plain PyTorch PDGMM-VAE (MODEL.md, the paper's Algorithm 1), to compare with unmix
on the same data. Not part of the build: it needs `pip install torch numpy scipy`.

It is the paper's model written the obvious way: MLP encoder to the posterior means, one
learnable posterior log-variance per source (`--per-sample 1` instead lets the encoder
output one per frame, as a standard VAE does), MLP decoder, a K-component GMM prior per
source initialised differently per source, the loss L_rec + β (log q − log p) / (T m),
Adam, every channel standardised. Nothing of unmix's own training (warm start, restarts,
λ, whitening, stopping rule) is in it. `--warp gauss|atanh` transforms each channel
first (a rank Gaussianisation, or the exact inverse of the outer tanh as an oracle).

    unmix synth nonlinear --sources 3 --frames 10000 --seed 1 -o nl1
    python3 research/python/pdgmm_vae.py nl1 --beta 0.01 --epochs 200

prints the mean and worst |corr| (optimal one-to-one matching, as `unmix score`) every
`--every` epochs. Figures measured with it are in `docs/limitations.md`.
"""
import argparse
import math
import time

import numpy as np
import scipy.io.wavfile as wavfile
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", help="a directory written by `unmix synth` (mixture.wav, truth.wav)")
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--hidden", default="64,64", help="encoder hidden widths, comma-separated")
    p.add_argument("--dec", default="64,64", help="decoder hidden widths ('' = linear)")
    p.add_argument("--act", default="tanh", choices=["tanh", "relu", "leaky", "silu"])
    p.add_argument("--K", type=int, default=3, help="components per source prior")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-sample", type=int, default=0, help="1: the encoder gives each frame's log-variance")
    p.add_argument(
        "--warp",
        default="none",
        choices=["none", "gauss", "atanh"],
        help="per-channel transform before standardising: Gaussianise by rank, or the exact atanh (an oracle undoing the outer tanh)",
    )
    p.add_argument("--every", type=int, default=50, help="print the scores every this many epochs")
    a = p.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    _, x = wavfile.read(f"{a.dir}/mixture.wav")
    _, s = wavfile.read(f"{a.dir}/truth.wav")
    x = x.astype(np.float64)
    s = s.astype(np.float64)
    if a.warp == "atanh":
        x = np.arctanh(np.clip(x, -1 + 1e-7, 1 - 1e-7))
    elif a.warp == "gauss":
        from scipy.stats import norm, rankdata

        x = norm.ppf(np.apply_along_axis(rankdata, 0, x) / (len(x) + 1))
    x = (x - x.mean(0)) / x.std(0)
    data = torch.tensor(x, dtype=torch.float32)
    frames, m = data.shape
    n = s.shape[1]

    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky": nn.LeakyReLU, "silu": nn.SiLU}[a.act]

    def mlp(inputs, hidden, outputs):
        layers, width = [], inputs
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, outputs))
        return nn.Sequential(*layers)

    widths = lambda text: [int(h) for h in text.split(",") if h]
    encoder = mlp(m, widths(a.hidden), 2 * n if a.per_sample else n)
    decoder = mlp(n, widths(a.dec), m)
    omega = nn.Parameter(torch.zeros(n))
    k = a.K
    # Different per source: shifted, jittered means and jittered variances.
    logits = nn.Parameter(torch.zeros(n, k))
    means = nn.Parameter(torch.stack([torch.linspace(-1.5, 1.5, k) + 0.3 * j for j in range(n)]) + 0.1 * torch.randn(n, k))
    log_vars = nn.Parameter(torch.log(torch.full((n, k), 0.5)) + 0.2 * torch.randn(n, k))
    params = [*encoder.parameters(), *decoder.parameters(), omega, logits, means, log_vars]
    optimiser = torch.optim.Adam(params, lr=a.lr)

    def log_prior(z):
        lw = torch.log_softmax(logits, 1)
        lv = log_vars.clamp(-10, 10)
        lp = lw[None] - 0.5 * (LOG_2PI + lv[None] + (z[:, :, None] - means[None]) ** 2 / torch.exp(lv)[None])
        return torch.logsumexp(lp, 2)

    def scores(estimate):
        c = np.abs(np.corrcoef(s.T, estimate.T)[:n, n:])
        rows, cols = linear_sum_assignment(-c)
        return c[rows, cols]

    started = time.time()
    for epoch in range(1, a.epochs + 1):
        order = torch.randperm(frames)
        for start in range(0, frames, a.batch):
            y = data[order[start : start + a.batch]]
            b = y.shape[0]
            h = encoder(y)
            if a.per_sample:
                mu, log_var = h[:, :n], h[:, n:].clamp(-12, 6)
            else:
                mu, log_var = h, omega.clamp(-12, 6)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            rec = ((decoder(z) - y) ** 2).sum() / (b * m)
            log_q = (-0.5 * (LOG_2PI + log_var + (z - mu) ** 2 / torch.exp(log_var))).sum()
            loss = rec + a.beta * (log_q - log_prior(z).sum()) / (b * m)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if epoch % a.every == 0 or epoch == a.epochs:
            with torch.no_grad():
                c = scores(encoder(data)[:, :n].numpy())
            print(
                f"epoch {epoch}: loss {loss.item():.4f} rec {rec.item():.4f} "
                f"|corr| mean {c.mean():.4f} min {c.min():.4f} {np.round(c, 3)} ({time.time() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
