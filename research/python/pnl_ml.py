"""Probe for post-nonlinear mixtures: exact maximum likelihood with one learnt monotone
curve per channel in front of the linear model. Not part of the build: it needs
`pip install torch numpy scipy scikit-learn`.

`unmix synth postnonlinear` mixes linearly and passes each sensor through its own monotone
curve (soft limiter, arctan, logarithmic compression, cubic expansion, soft-knee clip).
The model here inverts that shape: each standardised channel goes through its own
monotone piecewise-linear curve `g_c` (knots at quantiles of the channel, one log-slope a
bin, the outer bins extended as the tails; the log-slopes of a channel centred so that
their mean is 0, which pins the scale that `W` would otherwise share with it), then
`s = W g(x)` with a K-component GMM density per source (the PDGMM prior). The loss is the
exact negative log-likelihood per frame,

    NLL = -E[ sum_j log p_j(s_j) + sum_c log g_c'(x_c) ] - log|det W|,

fitted by full-batch Adam from FastICA's unmixing with the curves at the identity. Every
fifth frame is held out: the held-out NLL of the curves-and-W model is printed beside the
same model with the curves frozen at the identity (the linear model), the criterion the
model choice would weigh them by. `--linear` fits only the linear one.

    for n in 3 4; do for s in 1 2 3 4 5; do
        unmix synth postnonlinear --sources $n --seed $s -o pnl/n$n-s$s; done; done
    python3 research/python/pnl_ml.py pnl/n*
"""
import argparse
import json
import math

import numpy as np
import scipy.io.wavfile as wavfile
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import FastICA

torch.set_default_dtype(torch.float64)
LOG_2PI = math.log(2 * math.pi)


def score(z, s):
    n = s.shape[1]
    c = np.abs(np.corrcoef(z.T, s.T)[:n, n:])
    rows, cols = linear_sum_assignment(-np.nan_to_num(c))
    v = c[rows, cols]
    return v.mean(), v.min()


class PostNonlinear(torch.nn.Module):
    def __init__(self, x, w, bins, k, rng, curves=True):
        super().__init__()
        m = x.shape[1]
        qs = np.linspace(0, 1, bins + 1)
        knots = np.quantile(x, qs, axis=0).T  # m x (bins + 1)
        self.knots = torch.tensor(knots)
        self.curves = curves
        self.phi = torch.nn.Parameter(torch.zeros(m, bins))
        self.w = torch.nn.Parameter(torch.tensor(w))
        n = w.shape[0]
        self.logits = torch.nn.Parameter(torch.zeros(n, k))
        self.means = torch.nn.Parameter(torch.tensor(rng.normal(size=(n, k))))
        self.log_vars = torch.nn.Parameter(torch.zeros(n, k))

    def curve(self, x):
        theta = self.phi - self.phi.mean(1, keepdim=True) if self.curves else torch.zeros_like(self.phi)
        slopes = torch.exp(theta)  # m x B
        lo, hi = self.knots[:, :-1], self.knots[:, 1:]
        widths = hi - lo
        xe = x.unsqueeze(2)
        inner = (slopes * torch.minimum(torch.clamp(xe - lo, min=0), widths)).sum(2)
        below = slopes[:, 0] * torch.clamp(x - self.knots[:, 0], max=0)
        above = slopes[:, -1] * torch.clamp(x - self.knots[:, -1], min=0)
        g = inner + below + above
        # The bin of every value (the tails take the outer bins' slopes).
        inside = (xe >= lo) & (xe < hi)
        bins = theta.shape[1]
        index = torch.where(inside.any(2), inside.float().argmax(2),
                            torch.where(x < self.knots[:, 0], torch.zeros_like(x, dtype=torch.long),
                                        torch.full_like(x, bins - 1, dtype=torch.long)))
        log_slope = torch.gather(theta.expand(x.shape[0], -1, -1), 2, index.unsqueeze(2)).squeeze(2)
        return g, log_slope

    def forward(self, x):
        g, log_slope = self.curve(x)
        s = g @ self.w.T
        lv = self.log_vars.clamp(-9, 4)
        lw = torch.log_softmax(self.logits, 1)
        d = s.unsqueeze(2) - self.means
        log_p = torch.logsumexp(lw - 0.5 * (d * d * torch.exp(-lv) + lv + LOG_2PI), 2)
        nll = -(log_p.sum(1) + log_slope.sum(1)).mean() - torch.linalg.slogdet(self.w).logabsdet
        return nll, s


def fit(model, train, held_out, steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nll, _ = model(train)
        nll.backward()
        opt.step()
    with torch.no_grad():
        return model(train)[0].item(), model(held_out)[0].item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--bins", type=int, default=16)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print("data | linear: held-out NLL, mean/worst |corr| | with curves: held-out NLL, mean/worst |corr|")
    for d in a.dirs:
        x = wavfile.read(f"{d}/mixture.wav")[1].astype(np.float64)
        s_true = wavfile.read(f"{d}/truth.wav")[1].astype(np.float64)
        x = (x - x.mean(0)) / x.std(0)
        held = np.arange(len(x)) % 5 == 4
        n = s_true.shape[1]
        ica = FastICA(n_components=n, whiten="unit-variance", random_state=a.seed, max_iter=1000).fit(x[~held])
        w = ica.components_  # n x m, sources = (x - mean) @ w.T
        line = d
        for curves in (False, True):
            rng = np.random.default_rng(a.seed)
            torch.manual_seed(a.seed)
            model = PostNonlinear(x[~held], w, a.bins, a.k, rng, curves)
            _, held_nll = fit(model, torch.tensor(x[~held]), torch.tensor(x[held]), a.steps, a.lr)
            with torch.no_grad():
                _, s = model(torch.tensor(x))
            m, lo = score(s.numpy(), s_true)
            line += f" | {held_nll:.3f}, {m:.4f}/{lo:.4f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
