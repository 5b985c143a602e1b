"""IndexNet matting (Lu, Dai, Shen, Xu: "Indices Matter", ICCV 2019), composed from
`blocks.py`.

4-channel MobileNetV2 encoder (RGB normalised with ImageNet mean/std + the trimap in
{0, 0.5, 1}); every downsampling is an indexed pooling whose index maps come from
depthwise M2O index blocks; ASPP at stride 32; a decoder that unpools with the matching
decoder index maps and a 5x5 conv per stage. All encoder convs run at stride 1, so the
input side is padded to a multiple of 32 inside `forward` and cropped back.

Output: in eval mode alpha clamped to [0, 1]; in train mode the raw regression output
(as the official training did) so that the losses keep a gradient outside [0, 1].
Encoder BatchNorm stays in eval mode while training (`freeze_encoder_bn`): the ImageNet
initialisation has BN folded into biases, with no batch statistics to fine-tune from.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidmatte.models.indexnet.blocks import (
    ASPP,
    Head,
    IndexBlock,
    IndexedUpsample,
    InvertedResidual,
    conv_bn_relu,
)

ARCHITECTURE = "indexnet"
BACKBONE_NPZ = "imagenet_backbone/mobilenet_v2_imagenet_qnnpack_dequant.npz"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDE = 32

# (in, out, expand, blocks) per MobileNetV2 stage, all at stride 1.
STAGES = [
    (32, 16, 1, 1),
    (16, 24, 6, 2),
    (24, 32, 6, 3),
    (32, 64, 6, 4),
    (64, 96, 6, 3),
    (96, 160, 6, 3),
    (160, 320, 6, 1),
]
# Encoder levels followed by an indexed pooling, and their channels.
INDEXED = {"l0": 32, "l2": 24, "l3": 32, "l4": 64, "l6": 160}
# Decoder stages: name -> (in, out), from coarse to fine.
DECODER = {
    "d6": (320, 96),
    "d5": (192, 64),
    "d4": (128, 32),
    "d3": (64, 24),
    "d2": (48, 16),
    "d1": (32, 32),
    "d0": (64, 32),
}


class IndexNetMatting(nn.Module):
    def __init__(self, freeze_encoder_bn: bool = True) -> None:
        super().__init__()
        self.freeze_encoder_bn = freeze_encoder_bn
        self.stem = conv_bn_relu(4, 32, 3)
        self.stages = nn.ModuleList(
            nn.Sequential(*(InvertedResidual(i if j == 0 else o, o, t) for j in range(n)))
            for i, o, t, n in STAGES
        )
        self.index = nn.ModuleDict({k: IndexBlock(c) for k, c in INDEXED.items()})
        self.aspp = ASPP(320, 160)
        self.decoder = nn.ModuleDict({k: IndexedUpsample(i, o) for k, (i, o) in DECODER.items()})
        self.head = Head(32)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> IndexNetMatting:
        super().train(mode)
        if mode and self.freeze_encoder_bn:
            for part in (self.stem, self.stages):
                for m in part.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.eval()
        return self

    def forward(self, image: Tensor, trimap: Tensor) -> Tensor:
        """image B×3×H×W in [0,1] RGB, trimap B×1×H×W in {0, 0.5, 1} -> B×1×H×W alpha."""
        h, w = image.shape[2:]
        x = torch.cat(((image - self.mean.to(image.dtype)) / self.std.to(image.dtype), trimap), 1)
        ph, pw = (-h) % STRIDE, (-w) % STRIDE
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        out = self._forward(x)[:, :, :h, :w]
        return out if self.training else out.clamp(0.0, 1.0)

    def _forward(self, x: Tensor) -> Tensor:
        s, ix = self.stages, self.index
        # Indexed pooling: the encoder index map re-weights each level (the weighted map
        # is also the decoder's skip), then 4·avgpool sums each 2x2 cell.
        l0 = self.stem(x)
        en0, de0 = ix["l0"](l0)
        l0 = en0 * l0
        l1 = s[0](4 * F.avg_pool2d(l0, 2, 2))
        l2 = s[1](l1)
        en2, de2 = ix["l2"](l2)
        l2 = en2 * l2
        l3 = s[2](4 * F.avg_pool2d(l2, 2, 2))
        en3, de3 = ix["l3"](l3)
        l3 = en3 * l3
        l4 = s[3](4 * F.avg_pool2d(l3, 2, 2))
        en4, de4 = ix["l4"](l4)
        l4 = en4 * l4
        l5 = s[4](4 * F.avg_pool2d(l4, 2, 2))
        l6 = s[5](l5)
        en6, de6 = ix["l6"](l6)
        l6 = en6 * l6
        l7 = s[6](4 * F.avg_pool2d(l6, 2, 2))
        d = self.decoder
        y = self.aspp(l7)
        y = d["d6"](y, l6, de6)
        y = d["d5"](y, l5)
        y = d["d4"](y, l4, de4)
        y = d["d3"](y, l3, de3)
        y = d["d2"](y, l2, de2)
        y = d["d1"](y, l1)
        y = d["d0"](y, l0, de0)
        return self.head(y)

    # --- weights -------------------------------------------------------------------
    def folder_config(self) -> dict:
        return {
            "architecture": ARCHITECTURE,
            "arch": {"freeze_encoder_bn": self.freeze_encoder_bn},
            "input": {
                "colour": "RGB",
                "scale": "0..1",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "trimap": "0, 0.5, 1 as a 4th channel",
                "stride": STRIDE,
            },
        }

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "cpu") -> IndexNetMatting:
        """Load a model folder (training/release/model_folder.py wrote it); WeightsError on any
        mismatch."""
        from vidmatte.models.errors import WeightsError
        from vidmatte.models.weights.folder import load_model_folder
        from vidmatte.models.weights.state_dict import load_state_strict

        cfg, state = load_model_folder(folder)
        if cfg.get("architecture") != ARCHITECTURE:
            raise WeightsError(
                f"{folder} holds a {cfg.get('architecture')!r} model, not an IndexNet matter"
            )
        model = cls(
            **{k: v for k, v in (cfg.get("arch") or {}).items() if k == "freeze_encoder_bn"}
        )
        load_state_strict(model, state, folder)
        return model.to(device).eval()


def _backbone_key_map() -> dict[str, tuple[str, str]]:
    """torchvision MobileNetV2 conv name -> (our conv name, our BN name)."""
    out = {"features.0.0": ("stem.0", "stem.1")}
    f = 1
    for si, (_, _, t, n) in enumerate(STAGES):
        for j in range(n):
            p = f"stages.{si}.{j}.conv"
            if t == 1:
                pairs = [("conv.0.0", 0, 1), ("conv.1", 3, 4)]
            else:
                pairs = [("conv.0.0", 0, 1), ("conv.1.0", 3, 4), ("conv.2", 6, 7)]
            for tv, c, b in pairs:
                out[f"features.{f}.{tv}"] = (f"{p}.{c}", f"{p}.{b}")
            f += 1
    return out


def load_imagenet_backbone(
    model: IndexNetMatting, npz_path: str | Path, trimap_init: str = "zero"
) -> int:
    """Initialise the encoder from the dequantised torchvision MobileNetV2 ImageNet npz.

    BN after each conv becomes identity-plus-folded-bias (weight 1, mean 0, var 1-eps).
    The 4th (trimap) input channel of the stem starts at zero (as the official code) or
    at the mean of the RGB filters (`trimap_init="mean"`). Returns tensors loaded.
    """
    from vidmatte.models.errors import WeightsError
    from vidmatte.models.weights.checkpoints import read_mobilenet_v2_npz
    from vidmatte.models.weights.state_dict import load_state_strict

    tv_state = read_mobilenet_v2_npz(npz_path)
    mapped: dict[str, torch.Tensor] = {}
    n = 0
    for tv, (conv, bn) in _backbone_key_map().items():
        if tv + ".weight" not in tv_state:
            raise WeightsError(f"{npz_path} lacks {tv}.weight (not the MobileNetV2 npz)")
        w = tv_state[tv + ".weight"]
        if conv == "stem.0":
            extra = torch.zeros_like(w[:, :1]) if trimap_init == "zero" else w.mean(1, True)
            w = torch.cat((w, extra), 1)
        head, last = tv.rsplit(".", 1)
        tv_bn = f"{head}.{int(last) + 1}"
        mapped[conv + ".weight"] = w
        for part in ("weight", "bias", "running_mean", "running_var"):
            mapped[f"{bn}.{part}"] = tv_state[f"{tv_bn}.{part}"]
        n += 1
    load_state_strict(model, {**model.state_dict(), **mapped}, npz_path)
    return n


def build_indexnet(pretrained_backbone: bool | Path = True) -> IndexNetMatting:
    """IndexNet with the encoder from ImageNet (True: the shared npz; a Path: that npz).

    With True and no ../shared weights present, raises WeightsError (say False to get a
    randomly initialised network).
    """
    from vidmatte.models.errors import WeightsError

    model = IndexNetMatting()
    if pretrained_backbone is False:
        return model
    if pretrained_backbone is True:
        from vidmatte.models.shared import shared_weights

        root = shared_weights()
        if root is None or not (root / BACKBONE_NPZ).is_file():
            raise WeightsError(
                "ImageNet MobileNetV2 backbone not found (../shared/weights/" + BACKBONE_NPZ + ")"
            )
        path = root / BACKBONE_NPZ
    else:
        path = Path(pretrained_backbone)
    load_imagenet_backbone(model, path)
    return model
