"""PyTorch peer metrics for speed comparisons: LPIPS-style and DISTS-style networks.

Written from the published architectures, with RANDOM weights (speed only; the scores mean
nothing): the backbones have the layer layout of torchvision's ``alexnet().features`` and
``vgg16().features``, so they cost the same as the pretrained networks.

- LPIPS (Zhang et al. 2018): input scaling, backbone taps (AlexNet relu1-relu5 or VGG-16
  relu1_2 ... relu5_3), each tap unit-normalised over channels, squared difference, a 1x1
  linear head to one channel, spatial mean, sum over taps.
- DISTS (Ding et al. 2020): VGG-16 whose max pools are L2 pools (3x3 Hann window, stride 2),
  stages = the image and relu1_2 ... relu5_3; per stage and channel the texture term from
  spatial means and the structure term from variances and covariance, weighted by alpha and
  beta (normalised to sum 1 together); distance = 1 - the weighted sum.

Each network scores ``forward(ref, dist) -> [B]`` with ref, dist: [B, 3, H, W] float in [0, 1],
and runs the backbone once on the two images concatenated along the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's layouts: (out_channels, kernel, stride, padding) for convs, "M" for 3x3/2 (AlexNet)
# or 2x2/2 (VGG) max pools.
ALEXNET = [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M"]
VGG16 = [(64, 3, 1, 1), (64, 3, 1, 1), "M", (128, 3, 1, 1), (128, 3, 1, 1), "M",
         (256, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M", (512, 3, 1, 1), (512, 3, 1, 1), (512, 3, 1, 1), "M",
         (512, 3, 1, 1), (512, 3, 1, 1), (512, 3, 1, 1), "M"]
ALEXNET_TAPS = (1, 4, 7, 9, 11)       # indices (in the Sequential) of relu1..relu5
VGG16_TAPS = (3, 8, 15, 22, 29)       # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class L2Pool(nn.Module):
    """sqrt(Hann-weighted 3x3 mean of x^2), stride 2, per channel (DISTS' replacement of max pooling)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5])
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).expand(channels, 1, 3, 3).contiguous())
        self.channels = channels

    def forward(self, x):
        out = F.conv2d(x * x, self.filter.to(x.dtype), stride=2, padding=1, groups=self.channels)
        return torch.sqrt(out + 1e-12)


def make_features(layout: list, pool: str) -> nn.Sequential:
    """Backbone ``nn.Sequential`` of conv+ReLU blocks and pools as listed in ``layout``.

    ``pool``: ``"alexnet"`` (3x3 stride-2 max pools), ``"vgg"`` (2x2 stride-2 max pools) or
    ``"l2"`` (``L2Pool``). Module indices match torchvision's ``features``.
    """
    if pool not in ("alexnet", "vgg", "l2"):
        raise ValueError(f"pool must be 'alexnet', 'vgg' or 'l2', got {pool!r}")
    layers, channels = [], 3
    for item in layout:
        if item == "M" and pool == "l2":
            layers.append(L2Pool(channels))
        elif item == "M":
            layers.append(nn.MaxPool2d(3, 2) if pool == "alexnet" else nn.MaxPool2d(2, 2))
        else:
            out, k, s, p = item
            layers += [nn.Conv2d(channels, out, k, s, p), nn.ReLU(inplace=True)]
            channels = out
    return nn.Sequential(*layers)


def tap_features(features: nn.Sequential, taps: tuple[int, ...], x):
    """Outputs of ``features`` after the modules at indices ``taps`` (runs only as far as needed)."""
    outs = []
    for i, layer in enumerate(features):
        x = layer(x)
        if i in taps:
            outs.append(x)
            if len(outs) == len(taps):
                break
    return outs


def _tap_channels(features: nn.Sequential, taps: tuple[int, ...]) -> list[int]:
    channels, out = 3, []
    for i, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        if i in taps:
            out.append(channels)
    return out


class LPIPSLike(nn.Module):
    """LPIPS with an AlexNet (``"alex"``) or VGG-16 (``"vgg"``) backbone; random weights."""

    def __init__(self, backbone: str):
        super().__init__()
        if backbone not in ("alex", "vgg"):
            raise ValueError(f"backbone must be 'alex' or 'vgg', got {backbone!r}")
        alex = backbone == "alex"
        layout, pool, self.taps = (ALEXNET, "alexnet", ALEXNET_TAPS) if alex else (VGG16, "vgg", VGG16_TAPS)
        self.features = make_features(layout, pool)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        # LPIPS heads are non-negative 1x1 convolutions without bias.
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _tap_channels(self.features, self.taps))
        for h in self.heads:
            nn.init.uniform_(h.weight, 0.0, 2.0 / h.in_channels)

    def forward(self, ref, dist):
        b = ref.shape[0]
        x = (torch.cat([ref, dist]) * 2 - 1 - self.shift) / self.scale
        total = 0.0
        for f, head in zip(tap_features(self.features, self.taps, x), self.heads):
            f = f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + 1e-10)
            total = total + head((f[:b] - f[b:]) ** 2).mean(dim=(1, 2, 3))
        return total


class DISTSLike(nn.Module):
    """DISTS on a VGG-16 with L2 pooling; random weights and random positive alpha/beta."""

    def __init__(self):
        super().__init__()
        self.features = make_features(VGG16, "l2")
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        channels = [3, *_tap_channels(self.features, VGG16_TAPS)]
        self.alpha = nn.Parameter(torch.rand(sum(channels)))
        self.beta = nn.Parameter(torch.rand(sum(channels)))
        self.splits = channels

    def forward(self, ref, dist):
        b = ref.shape[0]
        x = (torch.cat([ref, dist]) - self.mean) / self.std
        stages = [x, *tap_features(self.features, VGG16_TAPS, x)]
        w = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w, self.splits)
        betas = torch.split(self.beta / w, self.splits)
        c1 = c2 = 1e-6
        total = 0.0
        for f, a, bt in zip(stages, alphas, betas):
            f = f.float()  # the statistics are summed in float32 also under autocast
            x, y = f[:b], f[b:]
            mx, my = x.mean(dim=(2, 3)), y.mean(dim=(2, 3))
            vx = ((x - mx[..., None, None]) ** 2).mean(dim=(2, 3))
            vy = ((y - my[..., None, None]) ** 2).mean(dim=(2, 3))
            cxy = (x * y).mean(dim=(2, 3)) - mx * my
            texture = (2 * mx * my + c1) / (mx * mx + my * my + c1)
            structure = (2 * cxy + c2) / (vx + vy + c2)
            total = total + (texture * a).sum(1) + (structure * bt).sum(1)
        return 1 - total
