"""Training configuration (no PyTorch import: the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    arch: str = "fernet_s"
    classes: tuple[str, ...] = ()
    size: int = 48
    epochs: int = 40
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 2.0
    dropout: float = 0.3
    ema_decay: float = 0.999
    # tau of the logit-adjusted loss (objectives.Classification): 0 = plain soft-label cross-entropy
    logit_adjust: float = 0.0
    # augmentation
    rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)  # zoom factor range (> 1: tighter crop)
    translate: float = 0.08  # fraction of the image side
    hflip: float = 0.5
    erase_p: float = 0.25
    mix_p: float = 0.3  # probability that a batch is mixed (mixup or cutmix, half each)
    mix_alpha: float = 0.4
    # image degradation: each image is, with probability degrade_p, blurred, noised,
    # JPEG-compressed or downscaled (one of the four, chosen uniformly)
    degrade_p: float = 0.0
    # numerics
    # bf16 autocast: 2.7x faster than fp32 on CPUs with native bf16 (AVX512-BF16/AMX), 14x slower on
    # CPUs without (emulated; measured on a 2-core AMD EPYC with AVX2 only): the CLI's --bf16 auto
    # enables it only where oneDNN reports native support
    bf16: bool = True
    channels_last: bool = True
    threads: int = 0  # 0: torch default
    # "cpu" or a torch device ("cuda", "cuda:1"): where the network, the batches and their
    # augmentation live (random draws stay on CPU generators, so the augmentations are the same)
    device: str = "cpu"
    # seconds for the whole run (0: none): after epoch 1 the epoch count is lowered to what fits
    # (warm-up is 2 epochs, so epoch 1 does not depend on it); config.json records the count used
    time_budget: float = 0.0
    # online distillation: run folders (best.pt + config.json, trained on the same training set)
    # whose networks see each augmented batch; target = (1 - w) * own target + w * their mean posterior
    teacher_runs: tuple[str, ...] = ()
    teacher_weight: float = 0.5
    seed: int = 0
    mean: float = 0.5
    std: float = 0.25
    init_from: str = ""  # checkpoint/weights to fine-tune from (head re-initialised if classes differ)
    # comma-separated module prefixes kept fixed (no gradient, BatchNorm statistics frozen), e.g.
    # "stem,stages.0,stages.1" to fine-tune only the last stage and the head
    freeze: str = ""
    # "expression" (classes) or "valence_arousal" (classes then names the two outputs); see objectives.py
    task: str = "expression"
    notes: dict = field(default_factory=dict)
