"""ResNets in plain torch (no torchvision): a small CPU-friendly width up to a full ResNet-50.

    from drawloop.vision.backbone import BackboneConfig, build_backbone
    net = build_backbone(BackboneConfig(arch="resnet18", width=16))   # 128-d features
    feats = net(images)                      # images: float (B, 3, H, W) in [0, 1] -> (B, net.feature_dim)
    build_backbone(BackboneConfig(arch="resnet50", width=64, small_input=False))  # the paper's ResNet-50

`width` is the channel count of the first stage (64 in the paper's ResNets); stages double it.
`small_input` swaps the ImageNet stem (7x7 stride 2 + max-pool) for a 3x3 stride-1 conv, the
CIFAR-style stem that keeps 32-64 px images from being reduced to a few pixels before stage 1.
The network normalises its own input, so callers always pass plain [0, 1] images.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass

import torch
from torch import nn

# (block type, blocks per stage) for each depth, as in He et al. 2016.
ARCHS = {
    "resnet10": ("basic", (1, 1, 1, 1)),
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}

# Fixed input normalisation: the same for training and probing, so no statistics to carry around.
INPUT_MEAN, INPUT_STD = 0.5, 0.25


@dataclass
class BackboneConfig:
    arch: str = "resnet18"
    width: int = 16
    small_input: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.width < 1:
            raise ValueError(f"width must be positive, got {self.width}")

    def to_dict(self) -> dict:
        return asdict(self)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.shortcut = _shortcut(in_ch, ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int):
        super().__init__()
        out_ch = ch * self.expansion
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False)  # stride on the 3x3, as in "ResNet v1.5"
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.shortcut(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    """A ResNet trunk ending in global average pooling: images in, one feature vector per image out."""

    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config
        kind, blocks = ARCHS[config.arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        w = config.width
        if config.small_input:
            self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
            )
        stages, in_ch = [], w
        for i, n in enumerate(blocks):
            ch = w * 2**i
            for j in range(n):
                stages.append(block(in_ch, ch, stride=2 if (i > 0 and j == 0) else 1))
                in_ch = ch * block.expansion
        self.stages = nn.Sequential(*stages)
        self.feature_dim = in_ch
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - INPUT_MEAN) / INPUT_STD
        x = self.stages(self.stem(x))
        return x.mean(dim=(2, 3))


def build_backbone(config: BackboneConfig | None = None) -> ResNet:
    return ResNet(config or BackboneConfig())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_backbone(path, backbone: ResNet, meta: dict | None = None) -> None:
    """Write the trained trunk alone (what probes and embedders need), with its config and training notes."""
    torch.save({"backbone_config": backbone.config.to_dict(), "state_dict": backbone.state_dict(),
                "meta": meta or {}}, path)


def load_backbone(path, map_location: str = "cpu") -> tuple[ResNet, dict]:
    """A backbone from `model.pt` (save_backbone) or from a training `checkpoint.pt`, in eval mode."""
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if "state_dict" in blob:  # model.pt
        config, state, meta = blob["backbone_config"], blob["state_dict"], blob.get("meta", {})
    elif "model" in blob and "config" in blob:  # checkpoint.pt: keep the query encoder's trunk
        prefix = "encoder.backbone."
        config = blob["config"]["backbone"]
        state = {k[len(prefix):]: v for k, v in blob["model"].items() if k.startswith(prefix)}
        meta = {"epoch": blob.get("epoch"), "from_checkpoint": True}
    else:
        raise ValueError(f"{path} is neither a drawloop model.pt nor a training checkpoint.pt")
    net = build_backbone(BackboneConfig(**config))
    net.load_state_dict(state)
    return net.eval(), meta
