"""Probe for the nonlinear benchmark: a VAE whose decoder has the mixing's own shape, and
how its bound compares with the truth's exact likelihood. Not part of the build: it needs
`pip install torch numpy scipy`.

The model differs from the paper's where the paper's choices could be what keeps it from
the truth: the decoder is `c * tanh(B2 tanh(B1 z + b1) + b2) + d` (the family contains
the standardised mixing exactly), the encoder (MLP 64x64, tanh) gives every frame its own
posterior log-variance, and the loss is the full ELBO with a Gaussian observation noise
whose variance is fixed (`--noise V`) or learnt (`--noise 0`), a K-component GMM prior per
source. `--init truth` starts at the true decoder with the priors and the encoder first
fitted to the true sources (`--pre` epochs, supervised); `--freeze-dec 1` keeps the
decoder there; `--free 1` replaces the encoder by free per-frame posterior parameters
(no amortisation). It prints the negative ELBO per frame, its two parts and the mean and
worst |corr| every `--every` epochs, and first the *exact* negative log-likelihood of the
data under the true mixing (noiseless, `m = n`):

    NLL = E log |det dx/ds| + sum_j H(s_j)   (nats per frame, standardised x;
                                              Vasicek estimates of the entropies)

which the negative ELBO of the true model approaches as the noise variance goes to zero.

    unmix synth nonlinear --sources 3 --frames 10000 --seed 1 -o nl1
    python3 research/python/shaped_vae.py nl1 --noise 1e-3 --epochs 300
    python3 research/python/shaped_vae.py nl1 --init truth --freeze-dec 1 --free 1 \\
        --noise 1e-3 --batch 10000 --epochs 2000 --every 250

Figures measured with it are in `docs/limitations.md`.
"""
import argparse
import json
import math
import time

import numpy as np
import scipy.io.wavfile as wavfile
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def score(z, s):
    n = z.shape[1]
    c = np.abs(np.corrcoef(z.T, s.T)[:n, n:])
    rows, cols = linear_sum_assignment(-np.nan_to_num(c))
    v = c[rows, cols]
    return v.mean(), v.min()


def vasicek_entropy(v):
    v = np.sort(v)
    t = len(v)
    m = int(round(math.sqrt(t)))
    hi = v[np.minimum(np.arange(t) + m, t - 1)]
    lo = v[np.maximum(np.arange(t) - m, 0)]
    return np.mean(np.log(np.maximum(t / (2 * m) * (hi - lo), 1e-300)))


def true_nll(meta, x, s):
    """Exact NLL per frame of standardised x under x = tanh(A2 tanh(A1 s))."""
    a1, a2 = np.array(meta["mixing"]), np.array(meta["mixing2"])
    h1 = s @ a1.T
    h2 = np.tanh(h1) @ a2.T
    log_det = (
        -np.log(x.std(0)).sum()
        + np.log(abs(np.linalg.det(a1)))
        + np.log(abs(np.linalg.det(a2)))
        + np.log1p(-np.tanh(h1) ** 2).sum(1)
        + np.log1p(-np.tanh(h2) ** 2).sum(1)
    )
    return log_det.mean() + sum(vasicek_entropy(s[:, j]) for j in range(s.shape[1]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", help="a directory written by `unmix synth nonlinear` (mixture.wav, truth.wav, meta.json)")
    p.add_argument("--init", default="blind", choices=["blind", "truth"])
    p.add_argument("--pre", type=int, default=100, help="supervised epochs before a truth start")
    p.add_argument("--freeze-dec", type=int, default=0, help="1: keep the decoder where it starts")
    p.add_argument("--free", type=int, default=0, help="1: free per-frame posterior parameters, no encoder")
    p.add_argument("--noise", type=float, default=1e-3, help="observation noise variance (0: learnt)")
    p.add_argument("--K", type=int, default=4, help="components per source prior")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--free-lr", type=float, default=1e-2, help="step for the free posterior parameters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=50)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)

    _, x = wavfile.read(f"{a.dir}/mixture.wav")
    _, s = wavfile.read(f"{a.dir}/truth.wav")
    meta = json.load(open(f"{a.dir}/meta.json"))
    x, s = x.astype(np.float64), s.astype(np.float64)
    print(f"exact NLL of the data under the true mixing: {true_nll(meta, x, s):.3f} nats/frame")
    mu_x, sd_x = x.mean(0), x.std(0)
    data = torch.tensor((x - mu_x) / sd_x, dtype=torch.float32)
    truth = torch.tensor(s, dtype=torch.float32)
    frames, m = data.shape
    n = s.shape[1]

    encoder = nn.Sequential(nn.Linear(m, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2 * n))
    inner, outer = nn.Linear(n, n), nn.Linear(n, m)
    out_scale, out_offset = nn.Parameter(torch.ones(m)), nn.Parameter(torch.zeros(m))
    decoder_params = [*inner.parameters(), *outer.parameters(), out_scale, out_offset]
    log_noise = nn.Parameter(torch.full((m,), math.log(a.noise if a.noise > 0 else 1e-2)))
    free_mean = nn.Parameter(0.1 * torch.randn(frames, n))
    free_log_var = nn.Parameter(torch.full((frames, n), -6.0))
    k = a.K
    logits = nn.Parameter(torch.zeros(n, k))
    means = nn.Parameter(torch.stack([torch.linspace(-1.5, 1.5, k) + 0.3 * j for j in range(n)]) + 0.1 * torch.randn(n, k))
    log_vars = nn.Parameter(torch.log(torch.full((n, k), 0.5)) + 0.2 * torch.randn(n, k))
    all_frames = torch.arange(frames)

    def decode(z):
        return out_scale * torch.tanh(outer(torch.tanh(inner(z)))) + out_offset

    def log_prior(z):
        d = z.unsqueeze(-1) - means
        lc = torch.log_softmax(logits, 1) - 0.5 * (LOG_2PI + log_vars + d * d / log_vars.exp())
        return torch.logsumexp(lc, -1).sum(-1)

    def encode(xb, idx):
        if a.free:
            return free_mean[idx], free_log_var[idx]
        o = encoder(xb)
        return o[:, :n], o[:, n:] - 4.0

    def neg_elbo(xb, idx, samples=1):
        mean, log_var = encode(xb, idx)
        rec = kl = 0
        for _ in range(samples):
            z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
            r = xb - decode(z)
            rec = rec + (0.5 * (r * r / log_noise.exp() + log_noise + LOG_2PI)).sum(-1)
            log_q = (-0.5 * (LOG_2PI + log_var + (z - mean) ** 2 / log_var.exp())).sum(-1)
            kl = kl + log_q - log_prior(z)
        return rec / samples, kl / samples

    if a.init == "truth":
        with torch.no_grad():
            inner.weight.copy_(torch.tensor(meta["mixing"]))
            inner.bias.zero_()
            outer.weight.copy_(torch.tensor(meta["mixing2"]))
            outer.bias.zero_()
            out_scale.copy_(torch.tensor(1 / sd_x))
            out_offset.copy_(torch.tensor(-mu_x / sd_x))
            free_mean.copy_(truth)
        start = torch.optim.Adam([*encoder.parameters(), logits, means, log_vars], lr=2e-3)
        for _ in range(a.pre):
            perm = torch.randperm(frames)
            for i in range(0, frames, 256):
                b = perm[i : i + 256]
                mean, _ = encode(data[b], b)
                loss = 100 * ((mean - truth[b]) ** 2).mean() - log_prior(truth[b]).mean()
                start.zero_grad()
                loss.backward()
                start.step()

    params = [*encoder.parameters(), logits, means, log_vars]
    if not a.freeze_dec:
        params += decoder_params
    if a.noise <= 0:
        params.append(log_noise)
    optimiser = torch.optim.Adam([{"params": params}, {"params": [free_mean, free_log_var], "lr": a.free_lr}], lr=a.lr)
    t0 = time.time()
    for epoch in range(a.epochs + 1):
        if epoch % a.every == 0:
            with torch.no_grad():
                rec, kl = neg_elbo(data, all_frames, 8)
                mean, _ = encode(data, all_frames)
                c_mean, c_min = score(mean.numpy(), s)
            print(
                f"epoch {epoch}: -ELBO {float((rec + kl).mean()):.3f} (rec {float(rec.mean()):.3f}, "
                f"KL {float(kl.mean()):.3f}) noise {log_noise.exp().mean().item():.1e} "
                f"|corr| mean {c_mean:.4f} min {c_min:.4f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
        if epoch == a.epochs:
            break
        perm = torch.randperm(frames)
        for i in range(0, frames, a.batch):
            b = perm[i : i + a.batch]
            rec, kl = neg_elbo(data[b], b)
            optimiser.zero_grad()
            (rec + kl).mean().backward()
            optimiser.step()


if __name__ == "__main__":
    main()
