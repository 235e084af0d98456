"""The machinery shared by the SSAH and DCMH trainers: batches, staged passes with the published code's early
stopping, step-exact positions for Ctrl-C/resume, and NaN detection before any update is applied."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from .progress import stage_bar

__all__ = ["StageTrainer", "StopAtStep", "LossNotFinite", "Schedule", "sign_pm1", "frozen"]


class StopAtStep(Exception):
    """Raised between steps when Ctrl-C was requested; carries the position to resume from."""

    def __init__(self, position: dict):
        super().__init__("stop requested")
        self.position = position


class LossNotFinite(Exception):
    def __init__(self, term: str, value: float, where: dict):
        super().__init__(term)
        self.term, self.value, self.where = term, value, where


@dataclass
class Schedule:
    """One stage of an epoch: sub-stages of (learning rate, max passes), and the published code's early stop:
    after pass k (k > min_pass) the stage ends if the monitored loss did not decrease; the monitor is evaluated
    after every ``monitor_every``-th pass."""

    subs: list[tuple[float, int]]
    early_stop: bool = False
    monitor_every: int = 1
    min_pass: int = 1
    monitor: object = None        # callable -> float, or None
    after_pass: object = None     # callable run after every pass (e.g. SSAH's B = sign(H) after LabNet passes)
    optimizers: list = field(default_factory=list)


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """±1 with ties to +1 (``torch.sign`` would give 0)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


@contextlib.contextmanager
def frozen(*modules):
    """Parameters of ``modules`` take no gradient inside the block (the discriminator during generator steps)."""
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class StageTrainer:
    stages: tuple[str, ...] = ()

    def __init__(self, model, data, cfg, rng: np.random.Generator, device, *, stop=None, progress: bool = False):
        self.model, self.data, self.cfg, self.rng, self.device = model, data, cfg, rng, device
        self.stop = stop if stop is not None else False
        self.progress = progress
        self.n = data.n_train
        self.batch = min(cfg.batch_size, self.n)
        self.steps_per_pass = max(1, self.n // self.batch)

    # ---------------------------------------------------------------- to implement
    def schedule(self, epoch: int, stage: str) -> Schedule:
        raise NotImplementedError

    def step(self, stage: str, rows: np.ndarray, where: dict) -> dict[str, torch.Tensor]:
        """One optimiser step on batch ``rows``; returns the named loss terms (weighted, detached)."""
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> None:
        pass

    # ---------------------------------------------------------------- shared
    # Subclasses keep their N-row memories in ``self.mem`` and one optimiser per stage in ``self.opt``: together
    # with the model weights and the RNG states (saved by the loop) they are everything a resume needs.
    def state_dict(self) -> dict:
        return {"memories": dict(self.mem), "optimizers": {k: o.state_dict() for k, o in self.opt.items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state["memories"].items():
            self.mem[k] = v.to(self.device)
        for k, o in self.opt.items():
            o.load_state_dict(state["optimizers"][k])

    def _descend(self, terms: dict[str, torch.Tensor], where: dict, optimizer: str) -> dict[str, torch.Tensor]:
        """Check every term is finite, take one step of ``self.opt[optimizer]`` on their sum; detached terms."""
        total = self._check(terms, where)
        opt = self.opt[optimizer]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        return {k: v.detach() for k, v in terms.items()}

    def _rows(self, perm, t: int) -> np.ndarray:
        if perm is None:  # the published code: a fresh random subset every step
            rows = self.rng.choice(self.n, size=self.batch, replace=False)
        else:
            rows = perm[t * self.batch:(t + 1) * self.batch]
        return np.sort(rows)

    def _check(self, terms: dict[str, torch.Tensor], where: dict) -> torch.Tensor:
        total = sum(terms.values())
        if not torch.isfinite(total):
            for name, v in terms.items():
                if not torch.isfinite(v):
                    raise LossNotFinite(name, float(v.detach()), where)
        return total

    def run_stage(self, epoch: int, stage: str, position: dict | None = None) -> dict:
        """Run one stage; returns mean loss terms. Raises StopAtStep (Ctrl-C) or LossNotFinite.

        ``position`` (from a StopAtStep) resumes at exactly that step: same sub-stage, pass, batch order and
        monitor history, so an interrupted and resumed run equals an uninterrupted one.
        """
        sched = self.schedule(epoch, stage)
        resumed = position is not None
        pos = position or {"sub": 0, "pass": 0, "step": 0, "monitor": [], "perm": None, "sums": {}, "steps": 0,
                           "passes": 0}
        start = (pos["sub"], pos["pass"])
        bar = stage_bar(f"epoch {epoch + 1} {stage}", sum(p for _, p in sched.subs) * self.steps_per_pass,
                        enabled=self.progress)
        bar.update(pos["steps"])

        def stop_here(s, k, t, perm):
            pos.update(sub=s, step=t, perm=None if perm is None else torch.from_numpy(perm))
            pos["pass"] = k
            raise StopAtStep(pos)

        try:
            for s in range(pos["sub"], len(sched.subs)):
                lr, passes = sched.subs[s]
                for opt in sched.optimizers:
                    for group in opt.param_groups:
                        group["lr"] = lr
                for k in range(pos["pass"] if s == start[0] else 0, passes):
                    here = resumed and (s, k) == start
                    t0 = pos["step"] if here else 0
                    if here and pos["perm"] is not None:
                        perm = np.asarray(pos["perm"], dtype=np.int64)
                    else:
                        if self.stop:  # before drawing the pass's batch order from the RNG
                            stop_here(s, k, 0, None)
                        perm = None if self.cfg.sampling == "random" else self.rng.permutation(self.n)
                    for t in range(t0, self.steps_per_pass):
                        if self.stop:
                            stop_here(s, k, t, perm)
                        rows = self._rows(perm, t)
                        where = {"epoch": epoch, "stage": stage, "sub": s, "pass": k, "step": t}
                        terms = self.step(stage, rows, where)
                        for name, v in terms.items():
                            pos["sums"][name] = pos["sums"].get(name, 0.0) + float(v)
                        pos["steps"] += 1
                        bar.update(1)
                        if pos["steps"] % 5 == 1 or t == self.steps_per_pass - 1:
                            bar.set_postfix_str(" ".join(f"{n}={float(v):.4g}" for n, v in terms.items()))
                    pos["passes"] += 1
                    if sched.after_pass is not None:
                        sched.after_pass()
                    if sched.monitor is not None and k % sched.monitor_every == 0:
                        pos["monitor"].append(float(sched.monitor()))
                    mon = pos["monitor"]
                    if sched.early_stop and k > sched.min_pass and len(mon) >= 2 and mon[-1] - mon[-2] >= 0:
                        break
                resumed = False
                pos["pass"], pos["step"], pos["perm"] = 0, 0, None
            steps = max(pos["steps"], 1)
            summary = {f"{stage}_{n}": v / steps for n, v in pos["sums"].items()}
            summary[f"{stage}_passes"] = pos["passes"]
            summary[f"{stage}_lr"] = sched.subs[0][0]
            if pos["monitor"]:
                summary[f"{stage}_monitor"] = pos["monitor"][-1]
            return summary
        finally:
            bar.close()

