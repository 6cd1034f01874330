"""The training recipe: soft-label expression training (or valence/arousal regression, see
:mod:`openfer.train.objectives`) with batch augmentation, EMA weights, cosine schedule, per-epoch
atomic checkpoints and exact resume.

Everything random is drawn from generators seeded by ``(seed, epoch)``, so a run killed and resumed
from its last checkpoint continues exactly as an uninterrupted run would (same backend and threads).
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io.tables import atomic_open, atomic_path, write_json
from .config import TrainConfig
from .objectives import Objective, objective_for, soft_cross_entropy

__all__ = ["augment", "degrade", "mix", "predict_logits", "soft_cross_entropy", "train"]

log = logging.getLogger("openfer.train")


def _normalize(x_u8: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    return (x_u8.float().div_(255.0) - cfg.mean) / cfg.std


def degrade(x_u8: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Photographic degradations on a ``(N, 1, H, W)`` uint8 batch: with probability ``degrade_p``
    an image gets one of Gaussian blur (sigma 0.5-1.5), Gaussian noise (sigma 3-15 grey levels),
    JPEG compression (quality 20-60) or a round trip through 16-32 px (the failure modes measured
    by ``scripts/robustness.py``)."""
    n = x_u8.shape[0]
    if cfg.degrade_p <= 0 or n == 0:
        return x_u8
    do = torch.rand(n, generator=gen) < cfg.degrade_p
    kind = torch.randint(0, 4, (n,), generator=gen)
    amount = torch.rand(n, generator=gen)
    noise = torch.randn(x_u8.shape, generator=gen)
    idx = torch.nonzero(do).flatten().tolist()
    if not idx:
        return x_u8
    import cv2  # core dependency; used only for the per-image ops below

    x = x_u8.clone()
    h, w = x.shape[-2:]
    for i in idx:
        img = x[i, 0].numpy()
        k, a = int(kind[i]), float(amount[i])
        if k == 0:
            img = cv2.GaussianBlur(img, (0, 0), 0.5 + a)
        elif k == 1:
            img = np.clip(img + noise[i, 0].numpy() * (3 + 12 * a), 0, 255).astype(np.uint8)
        elif k == 2:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(20 + 40 * a)])
            img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else img
        else:
            side = int(16 + 16 * a)
            small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        x[i, 0] = torch.from_numpy(np.ascontiguousarray(img))
    return x


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random affine (rotation, scale, translation, flip) and random erasing on a normalised batch.
    The random draws come from ``gen`` (a CPU generator) whatever ``x``'s device, so a batch gets the
    same augmentation on a GPU as on the CPU."""
    n, dev = x.shape[0], x.device
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(cfg.rotate_deg)
    lo, hi = cfg.scale
    s = lo + torch.rand(n, generator=gen) * (hi - lo)
    flip = torch.where(torch.rand(n, generator=gen) < cfg.hflip, -1.0, 1.0)
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * cfg.translate * 2  # grid units span 2
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, t[:, 0]], 1), torch.stack([sin * flip, cos, t[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(dev, x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.erase_p > 0:
        h, w = x.shape[-2:]
        do = torch.rand(n, generator=gen) < cfg.erase_p
        area = 0.02 + torch.rand(n, generator=gen) * 0.23
        aspect = torch.exp((torch.rand(n, generator=gen) * 2 - 1) * math.log(3))
        eh = (torch.sqrt(area * aspect) * h).clamp(1, h).long()
        ew = (torch.sqrt(area / aspect) * w).clamp(1, w).long()
        y0 = (torch.rand(n, generator=gen) * (h - eh + 1)).long()
        x0 = (torch.rand(n, generator=gen) * (w - ew + 1)).long()
        yy = torch.arange(h).view(1, h, 1)
        xx = torch.arange(w).view(1, 1, w)
        m = (
            (yy >= y0.view(n, 1, 1))
            & (yy < (y0 + eh).view(n, 1, 1))
            & (xx >= x0.view(n, 1, 1))
            & (xx < (x0 + ew).view(n, 1, 1))
            & do.view(n, 1, 1)
        )
        noise = torch.randn(x.shape, generator=gen)
        x = torch.where(m.unsqueeze(1).to(dev), noise.to(dev, x.dtype), x)
    return x


def mix(
    x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix on a batch with soft targets ``y`` (applied with probability ``mix_p``)."""
    if cfg.mix_p <= 0 or float(torch.rand(1, generator=gen)) >= cfg.mix_p:
        return x, y
    lam = float(
        np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen))).beta(
            cfg.mix_alpha, cfg.mix_alpha
        )
    )
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    if float(torch.rand(1, generator=gen)) < 0.5:
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
    h, w = x.shape[-2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(0, h, (1,), generator=gen)), int(torch.randint(0, w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * y + (1 - lam) * y[perm]


@torch.no_grad()
def predict_logits(
    model: nn.Module, x_u8: np.ndarray, cfg: TrainConfig, batch: int = 512, flip_tta: bool = True
) -> np.ndarray:
    """Outputs (logits, or the regression head's values) for ``(N, H, W)`` uint8 images; averages
    with the mirrored image when ``flip_tta``."""
    model.eval()
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, len(x_u8), batch):
        xb = _normalize(torch.from_numpy(x_u8[i : i + batch]).unsqueeze(1).to(dev), cfg)
        if cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            lo = model(xb).float()
            if flip_tta:
                lo = (lo + model(torch.flip(xb, dims=[3])).float()) / 2
        outs.append(lo.cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, len(cfg.classes)), np.float32)


def _atomic_torch_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class _Progress:
    def __init__(self, total: int, prefix: str) -> None:
        self.total, self.prefix, self.t0 = total, prefix, time.time()
        self.tty = sys.stderr.isatty()

    def update(self, i: int, extra: str = "") -> None:
        if not self.tty and i != self.total:
            return
        el = time.time() - self.t0
        eta = el / max(i, 1) * (self.total - i)
        sys.stderr.write(f"\r{self.prefix} {i}/{self.total} {el:5.0f}s eta {eta:5.0f}s {extra}   ")
        if i == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def train(
    cfg: TrainConfig,
    train_x: np.ndarray,
    train_y: np.ndarray,
    valid_x: np.ndarray,
    valid_labels: np.ndarray,
    out_dir: str | Path,
    objective: Objective | None = None,
) -> dict:
    """Train with targets ``train_y`` and select the EMA weights with the best validation score.
    Resumes from ``out_dir/last.pt`` when present.

    ``objective`` (default: the one for ``cfg.task``) sets the head, the loss and the score. For
    ``expression``: soft targets ``train_y`` ((N, C) rows summing to 1), ``valid_labels`` (N,) class
    indices, selection on accuracy (``valid_acc``). For ``valence_arousal``: ``train_y`` and
    ``valid_labels`` are (N, 2) values in [-1, 1], selection on the mean CCC (``valid_ccc``).

    Writes ``last.pt`` (full state, every epoch), ``best.pt`` (EMA weights), ``log.csv`` and
    ``config.json`` into ``out_dir``; returns a summary dict with ``best_<metric>`` (e.g.
    ``best_valid_acc``), ``epochs`` and ``history``.
    """
    obj = objective if objective is not None else objective_for(cfg.task, cfg, train_y)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = torch.device(cfg.device)
    model = obj.build(cfg, cfg.dropout)
    if cfg.init_from:
        _load_init(model, cfg.init_from, _normalize(torch.from_numpy(train_x[:1024]).unsqueeze(1), cfg))
    frozen = freeze_modules(model, cfg.freeze)
    model = model.to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teachers, teacher_shift = _load_teachers(cfg, train_y, dev)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    # the EMA follows the trained weights (frozen ones stay exactly as loaded)
    pairs = [(pe, pm) for pe, pm in zip(ema.parameters(), model.parameters(), strict=True) if pm.requires_grad]
    ema_p, live_p = [pe for pe, _ in pairs], [pm.detach() for _, pm in pairs]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
    )
    steps_per_epoch = len(train_x) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

    # best_acc: the best selection score so far (accuracy or CCC; the name is kept so old runs resume)
    start_epoch, best_acc, history = 0, -1.0, []
    last = out / "last.pt"
    if last.exists():
        st = torch.load(last, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        start_epoch, best_acc, history = st["epoch"] + 1, st["best_acc"], st["history"]
        if cfg.time_budget and "epochs" in st:  # the count fixed after epoch 1 of this run
            cfg.epochs = int(st["epochs"])
            total = steps_per_epoch * cfg.epochs
        log.info("resumed from %s at epoch %d", last, start_epoch)
    write_json(asdict(cfg), out / "config.json")
    xt = torch.from_numpy(train_x).unsqueeze(1)
    if dev.type == "cpu" or cfg.degrade_p > 0:  # degrade() runs OpenCV on CPU images
        xt_dev = None
    else:
        xt_dev = xt.to(dev)
    yt = torch.from_numpy(train_y.astype(np.float32)).to(dev)
    t_start = time.time()
    epoch = start_epoch
    while epoch < cfg.epochs:
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        torch.manual_seed(cfg.seed * 100003 + epoch)  # dropout draws from the global generator
        model.train()
        for m in frozen:  # fixed layers keep their BatchNorm statistics
            m.eval()
        perm = torch.randperm(len(xt), generator=gen)
        t0, loss_sum = time.time(), 0.0
        bar = _Progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}")
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            idx_dev = idx.to(dev)
            if xt_dev is not None:
                xb = _normalize(xt_dev[idx_dev], cfg)
            else:
                xb = _normalize(degrade(xt[idx], cfg, gen).to(dev), cfg)
            xb = augment(xb, cfg, gen)
            xb, yb = mix(xb, yt[idx_dev], cfg, gen)
            if cfg.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            if teachers:
                yb = _teach(teachers, teacher_shift, xb, yb, cfg)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(xb)
            loss = obj.loss(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():  # one fused call per list: on a GPU, hundreds of launches fewer
                d = min(cfg.ema_decay, (1 + step) / (10 + step))
                torch._foreach_mul_(ema_p, d)
                torch._foreach_add_(ema_p, live_p, alpha=1 - d)
                for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                    be.copy_(bm)
            loss_sum += loss.item()
            if i % 10 == 0 or i == steps_per_epoch - 1:
                bar.update(i + 1, f"loss {loss_sum / (i + 1):.4f}")
        val_logits = predict_logits(ema, valid_x, cfg)
        val_acc, extra = obj.score(val_logits, valid_labels)
        row = {
            "epoch": epoch + 1,
            "lr": lr_at((epoch + 1) * steps_per_epoch - 1),
            "train_loss": loss_sum / steps_per_epoch,
            obj.metric: val_acc,
            **extra,
            "seconds": time.time() - t0,
        }
        history.append(row)
        if cfg.time_budget and epoch == 0:  # fix the epoch count to what the budget holds
            left = cfg.time_budget - (time.time() - t_start)
            fits = max(int(left // row["seconds"]) + 1, 2)
            if fits < cfg.epochs:
                log.info("time budget %.0fs: %d epochs of %.1fs fit, not %d", cfg.time_budget, fits,
                         row["seconds"], cfg.epochs)
                cfg.epochs = fits
                total = steps_per_epoch * cfg.epochs
                write_json(asdict(cfg), out / "config.json")
        log.info(
            "epoch %d: loss %.4f valid %.4f (%.0fs)", epoch + 1, row["train_loss"], val_acc, row["seconds"]
        )
        if val_acc > best_acc:
            best_acc = val_acc
            _atomic_torch_save(
                {"model": ema.state_dict(), "epoch": epoch, obj.metric: val_acc}, out / "best.pt"
            )
        _atomic_torch_save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "epoch": epoch,
                "best_acc": best_acc,
                "history": history,
                "epochs": cfg.epochs,
            },
            last,
        )
        _write_log(history, out / "log.csv")
        epoch += 1
    return {f"best_{obj.metric}": best_acc, "epochs": len(history), "history": history}


def _load_teachers(cfg: TrainConfig, train_y: np.ndarray, dev: torch.device) -> tuple[list[nn.Module], list[torch.Tensor]]:
    """The online teachers of ``cfg.teacher_runs`` (each a run folder's ``best.pt`` EMA weights and
    ``config.json``), in eval mode on ``dev``, with the logit shift that turns each one's outputs into
    the ordinary posterior: ``tau * log prior`` of ``train_y`` for a teacher trained with the
    logit-adjusted loss (its own logits are the balanced ones), zero otherwise."""
    import json

    from .nets import build
    from .objectives import log_prior

    models, shifts = [], []
    for run in cfg.teacher_runs:
        folder = Path(run)
        tcfg = json.loads((folder / "config.json").read_text())
        if tuple(tcfg["classes"]) != tuple(cfg.classes):
            raise ValueError(f"teacher {run}: classes {tcfg['classes']} differ from {list(cfg.classes)}")
        net = build(tcfg["arch"], len(cfg.classes), 0.0)
        net.load_state_dict(torch.load(folder / "best.pt", map_location="cpu", weights_only=False)["model"])
        net = net.to(dev).eval()
        if cfg.channels_last:
            net = net.to(memory_format=torch.channels_last)
        for p in net.parameters():
            p.requires_grad_(False)
        tau = float(tcfg.get("logit_adjust", 0.0))
        shifts.append(torch.as_tensor(tau * log_prior(train_y), dtype=torch.float32, device=dev))
        models.append(net)
    return models, shifts


@torch.no_grad()
def _teach(
    teachers: list[nn.Module], shifts: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """``(1 - w) * yb + w * p``: ``p`` the teachers' mean posterior on the batch the student sees
    (augmented and mixed; each teacher averages it with its mirror image)."""
    p = torch.zeros_like(yb)
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        for net, shift in zip(teachers, shifts, strict=True):
            lo = (net(xb).float() + net(torch.flip(xb, dims=[3])).float()) / 2 + shift
            p += torch.softmax(lo, dim=1)
    w = cfg.teacher_weight
    return (1 - w) * yb + w * p / len(teachers)


def freeze_modules(model: nn.Module, prefixes: str) -> list[nn.Module]:
    """Fix the submodules named by comma-separated ``prefixes`` (no gradients); returns them, so that
    training keeps them in eval mode (BatchNorm statistics frozen too)."""
    names = [p.strip() for p in prefixes.split(",") if p.strip()]
    mods = dict(model.named_modules())
    unknown = [n for n in names if n not in mods]
    if unknown:
        raise ValueError(f"freeze: no module {unknown[0]!r}; top-level modules: {[n for n, _ in model.named_children()]}")
    frozen = [mods[n] for n in names]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return frozen


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (oneDNN's check): where not, autocast is far slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _write_log(history: list[dict], path: Path) -> None:
    with atomic_open(path, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def _load_init(model: nn.Module, path: str, calib: torch.Tensor | None = None) -> None:
    """Initialise from a checkpoint (``.pt``) or an exported openfer model (an ``.onnx`` path or a
    shipped model name: BatchNorm unfolded on ``calib``, see :func:`~openfer.train.export.weights_from_onnx`)."""
    from ..runtime.onnx import registry

    if path.endswith(".onnx") or path in registry():
        from ..runtime.onnx import model_path
        from .export import weights_from_onnx

        sd = weights_from_onnx(path if path.endswith(".onnx") else model_path(path), calib)[0].state_dict()
    else:
        st = torch.load(path, map_location="cpu", weights_only=False)
        sd = st.get("model", st)
    own = model.state_dict()
    keep = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(keep, strict=False)
    log.info("initialised %d/%d tensors from %s", len(keep), len(own), path)
