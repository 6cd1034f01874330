"""Expression network architectures, named ``arch`` in model specs.

Small residual CNNs for 48x48 grayscale face crops, sized for CPU inference: every conv is 3x3 (or
1x1 projection), BatchNorm folds into the convs at ONNX export, and the head is global average pooling.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.c1 = _conv_bn(cin, cout)
        self.c2 = _conv_bn(cout, cout)
        self.short = nn.Identity() if cin == cout else _conv_bn(cin, cout, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.c1(x))
        return self.act(self.c2(y) + self.short(x))


class FerNet(nn.Module):
    """Stem at full resolution, then ``len(widths)`` stages each halving the resolution.

    ``tanh=True`` bounds the outputs to (-1, 1) (the valence/arousal head); otherwise they are logits.
    """

    def __init__(
        self,
        num_classes: int = 8,
        stem: int = 32,
        widths: tuple[int, ...] = (64, 128, 256),
        depths: tuple[int, ...] = (1, 2, 2),
        dropout: float = 0.3,
        in_chans: int = 1,
        tanh: bool = False,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv_bn(in_chans, stem), nn.ReLU(inplace=True), _conv_bn(stem, stem), nn.ReLU(inplace=True)
        )
        stages: list[nn.Module] = []
        cin = stem
        for w, d in zip(widths, depths, strict=True):
            blocks: list[nn.Module] = [nn.MaxPool2d(2)]
            for _ in range(d):
                blocks.append(BasicBlock(cin, w))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin
        self.tanh = tanh
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each residual branch: blocks start as identity (Goyal et al. 2017).
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.c2[1].weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(self.drop(self.features(x)))
        return torch.tanh(y) if self.tanh else y


class _Average(nn.Module):
    """The ensemble's classifier: each member's ``fc`` on its slice of the features, averaged."""

    def __init__(self, heads: list[nn.Module], dims: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.dims = list(dims)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        parts = torch.split(f, self.dims, dim=1)
        return torch.stack([h(p) for h, p in zip(self.heads, parts, strict=True)]).mean(0)


class Ensemble(nn.Module):
    """Several trained networks as one: the features are concatenated (for the open-set head), the
    logits averaged. Has ``features`` and ``fc`` like :class:`FerNet`, so it exports the same way."""

    def __init__(self, members: list[FerNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.fc = _Average([m.fc for m in members], [m.num_features for m in members])
        self.num_features = sum(m.num_features for m in members)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.features(x) for m in self.members], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


ARCHS: dict[str, dict] = {
    # 2.69M params, 206M MACs at 48x48 (counted: convolutions and the classifier)
    "fernet_s": dict(stem=32, widths=(64, 128, 256), depths=(1, 2, 2)),
    # 6.06M params, 463M MACs at 48x48
    "fernet_m": dict(stem=48, widths=(96, 192, 384), depths=(1, 2, 2)),
    # 0.68M params, 52M MACs at 48x48
    "fernet_xs": dict(stem=16, widths=(32, 64, 128), depths=(1, 2, 2)),
}


def build(arch: str, num_classes: int = 8, dropout: float = 0.3, tanh: bool = False) -> FerNet:
    """Network ``arch`` with ``num_classes`` outputs (logits; ``tanh``: bounded to (-1, 1))."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {sorted(ARCHS)}")
    return FerNet(num_classes=num_classes, dropout=dropout, tanh=tanh, **ARCHS[arch])
