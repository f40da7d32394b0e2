"""Probe for the nonlinear benchmark: exact maximum likelihood in the inverse's own function
class, with the domain edge that stopped `research/cascade_mi.rs` taken out of the way.
Not part of the build: it needs `pip install torch numpy scipy`.

The demixer is `s = W1 atanh(v)`, `v_i = u_i / rho_i`, `u = W2 atanh(x)` (the generator
`x = tanh(A2 tanh(A1 s))` inverted layer by layer). `cascade_mi` found the truth to have a
lower contrast than anything descent reached, but sitting on the edge of atanh's domain:
at the true `W2` the inner values reach 1 - 1e-7, and a small step outside leaves frames
with no preimage. Here `rho_i = max_t |u_ti| (1 + softplus(g_i))`, so every `W2` is
feasible (the largest `|v|` is just below 1) and the truth is an interior point again.
Each output has its own K-component GMM density (the PDGMM prior), learnt jointly, and the
loss is the exact negative log-likelihood per frame, the zero-noise limit of a VAE whose
decoder is `tanh(B2 tanh(B1 z))` and whose encoder is that decoder's inverse:

    NLL = -E[ sum_j log p_j(s_j) + sum_i log(1 / (1 - v_i^2)) - sum_i log rho_i
              + sum_i log(1 / (1 - v0_i^2)) - sum_i log rho0_i ] - log|det W1| - log|det W2|

with `v0 = x` (`--outer known`, the default: the mixture's full scale, +-1, is the outer
layer's, as for a sensor that saturates at full scale) or `v0_i = (x_i - c0_i) / rho0_i`
on standardised channels with `rho0_i = max_t |x_ti - c0_i| (1 + softplus(g0_i))` learnt
like the inner scale (`--outer learnt`).

Blind: the first start has W2 = I and W1 the whitening of atanh(v); the others turn W1 by
a random rotation, and with `--random-w2 1` W2 too (after whitening atanh(x)); `--starts R` runs
R of them and keeps the lowest NLL (no truth used). It prints, per data seed, the NLL and
mean/worst |corr| of every start, of the chosen one, and of the truth (W1 = A1^-1,
W2 = A2^-1, the densities and scales fitted with the matrices held there).

    for s in 1 2 3 4 5; do unmix synth nonlinear --sources 3 --frames 10000 --seed $s -o nl$s; done
    python3 research/python/cascade_ml.py nl1 nl2 nl3 nl4 nl5 --starts 8 --steps 1500 --random-w2 1

Figures measured with it are in `docs/limitations.md`.
"""
import argparse
import json
import math

import numpy as np
import scipy.io.wavfile as wavfile
import torch
from scipy.optimize import linear_sum_assignment

torch.set_default_dtype(torch.float64)
LOG_2PI = math.log(2 * math.pi)


def score(z, s):
    n = z.shape[1]
    c = np.abs(np.corrcoef(z.T, s.T)[:n, n:])
    rows, cols = linear_sum_assignment(-np.nan_to_num(c))
    v = c[rows, cols]
    return v.mean(), v.min()


class Cascade(torch.nn.Module):
    def __init__(self, w2, w1, k, rng, outer_learnt=False):
        super().__init__()
        self.outer_learnt = outer_learnt
        n = w1.shape[0]
        self.w2 = torch.nn.Parameter(torch.tensor(w2))
        self.w1 = torch.nn.Parameter(torch.tensor(w1))
        self.g = torch.nn.Parameter(torch.full((n,), math.log(math.expm1(1e-3))))
        # The outer layer's scale: x_i / rho0_i, rho0_i = max |x_i| (1 + softplus(g0_i)).
        self.g0 = torch.nn.Parameter(torch.full((n,), math.log(math.expm1(1e-3))))
        self.c0 = torch.nn.Parameter(torch.zeros(n))
        self.logits = torch.nn.Parameter(torch.zeros(n, k))
        self.means = torch.nn.Parameter(torch.tensor(rng.normal(size=(n, k))))
        self.log_vars = torch.nn.Parameter(torch.zeros(n, k))

    def forward(self, x):
        if self.outer_learnt:
            xc = x - self.c0
            rho0 = xc.abs().max(0).values * (1 + torch.nn.functional.softplus(self.g0))
        else:
            # The sensors' full scale is known: the raw mixture saturates at +-1.
            xc, rho0 = x, torch.ones(x.shape[1])
        v0 = xc / rho0
        y = torch.atanh(v0)
        u = y @ self.w2.T
        rho = u.abs().max(0).values * (1 + torch.nn.functional.softplus(self.g))
        v = u / rho
        s = torch.atanh(v) @ self.w1.T
        lv = self.log_vars.clamp(-9, 4)
        lw = torch.log_softmax(self.logits, 1)
        d = s.unsqueeze(2) - self.means
        log_p = torch.logsumexp(lw - 0.5 * (d * d * torch.exp(-lv) + lv + LOG_2PI), 2)
        log_vol = -torch.log1p(-v * v).sum(1) - torch.log(rho).sum() - torch.log1p(-v0 * v0).sum(1) - torch.log(rho0).sum()
        dets = torch.linalg.slogdet(self.w1).logabsdet + torch.linalg.slogdet(self.w2).logabsdet
        nll = -(log_p.sum(1) + log_vol).mean() - dets
        return nll, s


def fit(model, y, steps, lr, params=None):
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nll, _ = model(y)
        nll.backward()
        opt.step()
    with torch.no_grad():
        nll, s = model(y)
    return nll.item(), s.numpy()


def whitening(z):
    c = np.cov(z.T)
    e, v = np.linalg.eigh(c)
    return v @ np.diag(e ** -0.5) @ v.T


def random_rotation(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--outer", choices=["known", "learnt"], default="known",
                    help="known: the mixture's full scale (+-1) is the outer layer's; learnt: standardise "
                    "the channels and learn the outer offset and scale too")
    ap.add_argument("--random-w2", type=int, default=0, help="1: starts after the first turn W2 at random too")
    ap.add_argument("--jitter", type=float, default=0.0,
                    help="start at the true matrices times (1 + J N(0,1)) entrywise instead of blind")
    a = ap.parse_args()
    for d in a.dirs:
        meta = json.load(open(f"{d}/meta.json"))
        x = wavfile.read(f"{d}/mixture.wav")[1].astype(np.float64)
        s_true = wavfile.read(f"{d}/truth.wav")[1].astype(np.float64)
        # `learnt`: standardised like everything unmix reads, the scales the model's to learn.
        learnt = a.outer == "learnt"
        mean, std = (x.mean(0), x.std(0)) if learnt else (np.zeros(x.shape[1]), np.ones(x.shape[1]))
        x = (x - mean) / std
        xt = torch.tensor(x)
        y = torch.tensor(np.arctanh(x / (np.abs(x).max(0) * (1 + 1e-3))))  # for the starts
        if not learnt:
            y = torch.tensor(np.arctanh(x))
        n = s_true.shape[1]
        rng = np.random.default_rng(a.seed)
        results = []
        for start in range(a.starts):
            v0 = y.numpy() / np.abs(y.numpy()).max(0)
            h0 = np.arctanh(v0 / (1 + 1e-3))
            w1 = random_rotation(rng, n) @ whitening(h0) if start else whitening(h0)
            w2 = np.eye(n)
            if a.random_w2 and start:
                # Any whitening of atanh(x) turned by a random rotation.
                w2 = random_rotation(rng, n) @ whitening(y.numpy())
                v0 = (y.numpy() @ w2.T) / np.abs(y.numpy() @ w2.T).max(0)
                w1 = random_rotation(rng, n) @ whitening(np.arctanh(v0 / (1 + 1e-3)))
            if a.jitter > 0:
                a1, a2 = np.array(meta["mixing"]), np.array(meta["mixing2"])
                w2 = np.linalg.inv(a2) * (1 + a.jitter * rng.normal(size=(n, n)))
                w1 = np.linalg.inv(a1) * (1 + a.jitter * rng.normal(size=(n, n)))
            torch.manual_seed(a.seed + start)
            model = Cascade(w2, w1, a.k, rng, learnt)
            nll, s = fit(model, xt, a.steps, a.lr)
            m, lo = score(s, s_true)
            results.append((nll, m, lo))
            print(f"{d} start {start}: NLL {nll:.4f}  mean {m:.4f}  min {lo:.4f}", flush=True)
        best = min(results)
        print(f"{d} chosen by NLL: NLL {best[0]:.4f}  mean {best[1]:.4f}  min {best[2]:.4f}")
        # The truth: the generator's own inverse, the densities fitted with it held fixed.
        a1, a2 = np.array(meta["mixing"]), np.array(meta["mixing2"])
        truth = Cascade(np.linalg.inv(a2), np.linalg.inv(a1), a.k, rng, learnt)
        with torch.no_grad():
            # (`learnt`) The standardisation undone: x = mean + std * x_std, so c0 = -mean/std and
            # rho0 = 1/std; the inner scale rho starts at 1 as well.
            truth.c0.copy_(torch.tensor(-mean / std))
            span = np.abs(x - (-mean / std)).max(0)
            truth.g0.copy_(torch.tensor(np.log(np.expm1(1 / std / span - 1))))
        dens = [truth.logits, truth.means, truth.log_vars, truth.g, truth.g0, truth.c0]
        nll, s = fit(truth, xt, a.steps, a.lr, dens)
        m, lo = score(s, s_true)
        print(f"{d} truth (densities fitted): NLL {nll:.4f}  mean {m:.4f}  min {lo:.4f}", flush=True)


if __name__ == "__main__":
    main()
