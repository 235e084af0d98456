"""DCMH (Jiang & Li, CVPR 2017), the baseline SSAH is compared with, in the same framework.

min  sum_ij softplus(theta_ij) - S_ij theta_ij + gamma (||B - F||^2 + ||B - G||^2) + eta (||F 1||^2 + ||G 1||^2)
with theta_ij = 0.5 <F_i, G_j>, B in {-1, +1}. Per epoch (the order of the TF demo and the PyTorch ports): one
pass of SGD on the image network with G and B fixed, one on the text network with F and B fixed, then the closed
form B = sign(gamma (F + G)). F and G are N x K memories updated batch-wise; each step's loss is divided by N * n
as in the public code. The learning rate goes from lr_start to lr_end over the configured epochs (linspace as in
the TF/PyTorch code, or logspace(-1.5, -3) as in the official MATLAB code).

SGD with those rates was tuned for CNN-F fine-tuning. On pre-extracted features it is fragile in both directions:
non-negative fc7-like features (squared norm ~1e4, strongly correlated) make the image network's step unstable
at 10^-1.5, while at any rate low enough for the image side the sparse bag-of-words network barely moves (the
loss is divided by N * n), so codes collapse to theta ~ 0 (the mAP of random codes, as users of the public ports
report). ``optimizer="adam"`` removes that sensitivity; the demo preset uses it.
"""

from __future__ import annotations

import numpy as np
import torch

from .pairwise import pairwise_loss
from .stages import Schedule, StageTrainer, sign_pm1

__all__ = ["DCMHTrainer", "dcmh_learning_rates"]


def dcmh_learning_rates(cfg, epochs: int) -> np.ndarray:
    d = cfg.dcmh
    if d.lr_schedule == "logspace":
        return np.logspace(np.log10(d.lr_start), np.log10(d.lr_end), epochs)
    return np.linspace(d.lr_start, d.lr_end, epochs)


class DCMHTrainer(StageTrainer):
    stages = ("img", "txt", "codes")

    def __init__(self, model, data, cfg, rng, device, **kwargs):
        super().__init__(model, data, cfg, rng, device, **kwargs)
        N, K = self.n, model.bits
        self.mem = {"F": torch.randn(N, K, device=device), "G": torch.randn(N, K, device=device)}
        self._update_codes()
        d = cfg.dcmh

        def optimizer(params):
            if d.optimizer == "adam":
                return torch.optim.Adam(params, lr=d.lr_start, weight_decay=d.weight_decay)
            return torch.optim.SGD(params, lr=d.lr_start, momentum=d.momentum, weight_decay=d.weight_decay)

        self.opt = {stage: optimizer(net.parameters()) for stage, net in (("img", model.image_net),
                                                                           ("txt", model.text_net))}
        self.lrs = dcmh_learning_rates(cfg, cfg.num_epochs)

    def _update_codes(self) -> None:
        """The closed-form B step: B = sign(gamma (F + G))."""
        self.mem["B"] = sign_pm1(self.cfg.dcmh.gamma * (self.mem["F"] + self.mem["G"]))

    def schedule(self, epoch: int, stage: str) -> Schedule:
        # "img" and "txt" only: run_stage handles "codes" without a schedule
        return Schedule([(float(self.lrs[min(epoch, len(self.lrs) - 1)]), 1)], optimizers=[self.opt[stage]])

    def run_stage(self, epoch, stage, position=None):
        if stage == "codes":
            self._update_codes()
            return {}
        return super().run_stage(epoch, stage, position)

    def step(self, stage, rows, where):
        d, m, data = self.cfg.dcmh, self.mem, self.data
        ridx = torch.as_tensor(rows, device=m["F"].device)
        if stage == "img":
            out, own, other = self.model.image_net(data.image_batch(rows, self.device)), m["F"], m["G"]
        else:
            out, own, other = self.model.text_net(data.text_batch(rows)), m["G"], m["F"]
        own[ridx] = out.detach()
        rest = own.sum(0) - out.detach().sum(0)  # the other N - n rows of the bit-balance term
        scale = 1.0 / (self.n * len(rows))
        bits = data.label_bits
        terms = {"pairwise": scale * pairwise_loss(out, other, bits[rows], bits, published=False,
                                                   backend=self.cfg.pairwise_backend),
                 "quantization": scale * d.gamma * (m["B"][ridx] - out).pow(2).sum(),
                 "balance": scale * d.eta * (out.sum(0) + rest).pow(2).sum()}
        return self._descend(terms, where, stage)
