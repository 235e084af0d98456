"""SSAH's alternating training (Li et al., CVPR 2018), paper-faithful by default.

Every epoch runs four stages, as the published code does: LabNet; the two discriminators; ImgNet; TxtNet. LabNet
is the semantic hub: its N x 512 feature memory and N x K hash memory (updated batch-wise as batches are
forwarded) are what ImgNet and TxtNet are pulled towards by the pairwise terms. There is no direct image-text
pairwise term.

``variant="paper"`` (default):
  * pairwise terms are the negative log-likelihood (sum softplus(theta) - S theta), S in {0, 1};
  * the generator adversarial loss BCE(D(feature), "label") back-propagates into ImgNet/TxtNet with the
    discriminator frozen;
  * the shared code B (N x K) is used by every quantisation term: B = sign(H) after each LabNet pass and
    B = sign(H + F + G) at the end of each epoch (the code computes exactly this B but never feeds it);
  * quantisation ||H - B||^2 and label ||L_hat - L||^2 without the code's factor 1/2.

``variant="published-code"`` reproduces lelan-li/SSAH: squared pairwise residual 0.5 sum (S theta - softplus
theta)^2 with S in {0, 0.999}; quantisation against sign(current batch output); 0.5 * squared errors; and the
inert adversary: the generator's adversarial term is computed on detached memories (image: the whole N x 512
image-feature memory; text: the current batch), so it reaches no ImgNet/TxtNet weight and instead updates the
discriminator through the generator's optimiser, as the TF graph's placeholders make it do.

Known departures from the TF code in both variants: each network has its own Adam (TF shares one optimiser
object, hence its bias-correction step counters, between LabNet, ImgNet and TxtNet); softplus is computed stably
(the code's log(1 + exp) overflows); ``sign(0)`` is +1.

Ablations: SSAH-1 (no LabNet: each modality is pulled towards the other's memories and one discriminator tells
image from text features), SSAH-2 (TxtNet without the multi-scale block: a model option), SSAH-3 (no adversary).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .pairwise import pairwise_loss, pairwise_monitor
from .stages import Schedule, StageTrainer, frozen, sign_pm1

__all__ = ["SSAHTrainer"]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class SSAHTrainer(StageTrainer):
    def __init__(self, model, data, cfg, rng, device, **kwargs):
        super().__init__(model, data, cfg, rng, device, **kwargs)
        self.s = cfg.ssah
        self.published = cfg.variant == "published-code"
        self.has_labnet = model.lab_net is not None
        self.has_adversary = model.disc_image is not None
        self.stages = tuple(st for st, on in (("lab", self.has_labnet), ("dis", self.has_adversary),
                                              ("img", True), ("txt", True)) if on)
        N, K, E, c = self.n, model.bits, cfg.model.semantic_dim, data.num_labels
        # the published code initialises every memory with randn
        mem = {"F": (N, K), "G": (N, K), "featI": (N, E), "featT": (N, E), "labI": (N, c), "labT": (N, c)}
        if self.has_labnet:
            mem.update(H=(N, K), featL=(N, E), labL=(N, c))
        self.mem = {k: torch.randn(shape, device=device) for k, shape in mem.items()}
        self.mem["B"] = sign_pm1(self._code_sum())
        adam = torch.optim.Adam  # TF defaults: betas (0.9, 0.999), eps 1e-8
        self.opt = {"img": adam(self._gen_params(model.image_net, model.disc_image), lr=self.s.lr_img),
                    "txt": adam(self._gen_params(model.text_net, model.disc_text or model.disc_image),
                                lr=self.s.lr_txt)}
        if self.has_labnet:
            self.opt["lab"] = adam(model.lab_net.parameters(), lr=self.s.lr_lab)
        if self.has_adversary:
            discs = [d for d in (model.disc_image, model.disc_text) if d is not None]
            self.opt["dis"] = adam([p for d in discs for p in d.parameters()], lr=self.s.lr_dis)
        self.similarity = 0.999 if self.published else 1.0

    def _gen_params(self, net, disc):
        params = list(net.parameters())
        if self.published and disc is not None and self.s.delta > 0:
            params += list(disc.parameters())  # the code's loss_i/loss_t gradients reach only the discriminator
        return params

    def _code_sum(self) -> torch.Tensor:
        m = self.mem
        return m["F"] + m["G"] + (m["H"] if self.has_labnet else 0)

    # ------------------------------------------------------------------ schedule
    def schedule(self, epoch: int, stage: str) -> Schedule:
        s = self.s
        lr0, passes = {"lab": (s.lr_lab, s.lab_passes), "dis": (s.lr_dis, s.dis_passes),
                       "img": (s.lr_img, s.img_passes), "txt": (s.lr_txt, s.txt_passes)}[stage]
        subs = [(lr0 * s.lr_decay ** (epoch + i), p) for i, p in enumerate(passes)]
        if stage == "lab":
            return Schedule(subs, s.early_stop, 1, 1, self._monitor_lab, self._after_lab_pass, [self.opt["lab"]])
        if stage == "dis":
            return Schedule(subs, s.early_stop, 1, 1, None, None, [self.opt["dis"]])
        return Schedule(subs, s.early_stop, 2, 2, lambda: self._monitor_modality(stage), None, [self.opt[stage]])

    def _after_lab_pass(self) -> None:
        self.mem["B"] = sign_pm1(self.mem["H"])

    def end_epoch(self, epoch: int) -> None:
        self.mem["B"] = sign_pm1(self._code_sum())

    # ------------------------------------------------------------------ loss terms
    def _pair(self, a, b, rows):
        bits = self.data.label_bits
        return pairwise_loss(a, b, bits[rows], bits, published=self.published, backend=self.cfg.pairwise_backend)

    def _quant(self, h, rows):
        if self.published:
            return 0.5 * (sign_pm1(h.detach()) - h).pow(2).sum()
        return (self.mem["B"][rows] - h).pow(2).sum()

    def _label(self, p, labels):
        return (0.5 if self.published else 1.0) * (p - labels).pow(2).sum()

    def _hub(self, stage):
        """What a stage's network is pulled towards: LabNet's memories (LabNet's own too), or (SSAH-1, which has no
        "lab" stage) the other modality's."""
        m = self.mem
        if self.has_labnet:
            return m["featL"], m["H"]
        return (m["featT"], m["G"]) if stage == "img" else (m["featI"], m["F"])

    def _adversarial(self, stage, feature):
        model, s = self.model, self.s
        if not self.has_adversary or s.delta == 0:
            return None
        # target of the generator: "label" (1) with LabNet; without LabNet image -> text (1), text -> image (0)
        disc = model.disc_image if stage == "img" or not self.has_labnet else model.disc_text
        target = 1.0 if (stage == "img" or self.has_labnet) else 0.0
        if self.published:
            source = self.mem["featI"] if stage == "img" else feature.detach()
            return s.delta * _bce(disc(source), target)
        with frozen(disc):
            return s.delta * _bce(disc(feature), target)

    def step(self, stage: str, rows, where):
        if stage == "dis":
            return self._step_dis(rows, where)
        s, m, model, data = self.s, self.mem, self.model, self.data
        labels = data.label_batch(rows)
        ridx = torch.as_tensor(rows, device=labels.device)
        if stage == "lab":
            out = model.lab_net(labels)
            keys = ("H", "featL", "labL")
        elif stage == "img":
            out = model.image_net(data.image_batch(rows, self.device))
            keys = ("F", "featI", "labI")
        else:
            out = model.text_net(data.text_batch(rows))
            keys = ("G", "featT", "labT")
        # memories first (the code writes the batch rows before the step, so the batch meets itself)
        m[keys[0]][ridx] = out.hash.detach()
        m[keys[1]][ridx] = out.feature.detach()
        m[keys[2]][ridx] = out.label.detach()
        hub_feat, hub_hash = self._hub(stage)
        terms = {"pair_feature": s.alpha * self._pair(out.feature, hub_feat, rows),
                 "pair_hash": s.gamma * self._pair(out.hash, hub_hash, rows),
                 "quantization": s.beta * self._quant(out.hash, ridx),
                 "label": s.eta * self._label(out.label, labels)}
        if stage != "lab":
            adv = self._adversarial(stage, out.feature)
            if adv is not None:
                terms["adversarial"] = adv
        return self._descend(terms, where, stage)

    def _step_dis(self, rows, where):
        model, data = self.model, self.data
        labels = data.label_batch(rows)
        with torch.no_grad():
            f_img = model.image_net(data.image_batch(rows, self.device)).feature
            f_txt = model.text_net(data.text_batch(rows)).feature
        if self.has_labnet:
            with torch.no_grad():
                f_lab = model.lab_net(labels).feature
            loss = (_bce(model.disc_image(f_img), 0.0) + _bce(model.disc_text(f_txt), 0.0)
                    + _bce(model.disc_image(f_lab), 1.0) + _bce(model.disc_text(f_lab), 1.0)) / 4
        else:
            loss = (_bce(model.disc_image(f_img), 0.0) + _bce(model.disc_image(f_txt), 1.0)) / 2
        return self._descend({"discriminator": loss}, where, "dis")

    # ------------------------------------------------------------------ early-stopping monitors (published code)
    def _nll(self, a, b) -> float:
        bits = self.data.label_bits
        return pairwise_monitor(a, b, bits, bits, similarity=self.similarity, backend=self.cfg.pairwise_backend)

    def _monitor_lab(self) -> float:
        """``calc_labnet_loss``: alpha*label + gamma*NLL(H, H) + beta*NLL(featL, featL) (the code's mapping)."""
        s, m, L = self.s, self.mem, self.data.train_labels
        return (s.alpha * float((m["labL"] - L).pow(2).sum()) + s.gamma * self._nll(m["H"], m["H"])
                + s.beta * self._nll(m["featL"], m["featL"]))

    def _monitor_modality(self, stage) -> float:
        """``calc_loss(sign(F), F, H, H, ...)`` for ImgNet and ``calc_loss(sign(G), H, G, H, ...)`` for TxtNet."""
        s, m, L = self.s, self.mem, self.data.train_labels
        own, lab = (m["F"], m["labI"]) if stage == "img" else (m["G"], m["labT"])
        hub = self._hub(stage)[1]
        b = sign_pm1(own)
        x, y = (own, hub) if stage == "img" else (hub, own)
        return (s.alpha * self._nll(x, y) + s.beta * float((b - x).pow(2).sum() + (b - y).pow(2).sum())
                + s.gamma * float((hub - x).pow(2).sum() + (hub - y).pow(2).sum())
                + s.eta * float((lab - L).pow(2).sum()))
