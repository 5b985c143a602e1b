"""Import of official AdelaiDet SOLOv2 checkpoints, built from the official key names/shapes.

The state dict below is written from AdelaiDet's adet/modeling/solov2/solov2.py
(SOLOv2InsHead, SOLOv2MaskHead) and detectron2's ResNet/FPN naming, independently of our
modules, so a renamed or reshaped parameter on our side fails here.
"""

import numpy as np
import pytest
import torch

from vidmatte.models.errors import WeightsError
from vidmatte.models.trimapnet import TrimapNet, TrimapNetConfig
from vidmatte.models.trimapnet.official import (
    load_adelaidet_solov2,
    map_adelaidet_keys,
    trimap_from_binary,
)
from vidmatte.models.weights.checkpoints import load_third_party_checkpoint


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _bn(d, prefix, c, g):
    d[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
    d[f"{prefix}.bias"] = 0.1 * torch.randn(c, generator=g)
    d[f"{prefix}.running_mean"] = 0.1 * torch.randn(c, generator=g)
    d[f"{prefix}.running_var"] = 1 + torch.rand(c, generator=g)


def official_solov2_r50_state(seed=0) -> dict[str, torch.Tensor]:
    """Keys and shapes of AdelaiDet's SOLOv2_R50_3x (detectron2 R-50-FPN, FrozenBN)."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return torch.randn(*shape, generator=g) / fan_in**0.5

    d = {}
    bb = "backbone.bottom_up"
    d[f"{bb}.stem.conv1.weight"] = w(64, 3, 7, 7)
    _bn(d, f"{bb}.stem.conv1.norm", 64, g)
    cin = 64
    for stage, (n, mid) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True), 2):
        out = mid * 4
        for i in range(n):
            p = f"{bb}.res{stage}.{i}"
            if i == 0:
                d[f"{p}.shortcut.weight"] = w(out, cin, 1, 1)
                _bn(d, f"{p}.shortcut.norm", out, g)
            d[f"{p}.conv1.weight"] = w(mid, cin if i == 0 else out, 1, 1)
            _bn(d, f"{p}.conv1.norm", mid, g)
            d[f"{p}.conv2.weight"] = w(mid, mid, 3, 3)
            _bn(d, f"{p}.conv2.norm", mid, g)
            d[f"{p}.conv3.weight"] = w(out, mid, 1, 1)
            _bn(d, f"{p}.conv3.norm", out, g)
        cin = out
    for lvl, c in zip((2, 3, 4, 5), (256, 512, 1024, 2048), strict=True):
        d[f"backbone.fpn_lateral{lvl}.weight"] = w(256, c, 1, 1)
        d[f"backbone.fpn_lateral{lvl}.bias"] = 0.01 * torch.randn(256, generator=g)
        d[f"backbone.fpn_output{lvl}.weight"] = w(256, 256, 3, 3)
        d[f"backbone.fpn_output{lvl}.bias"] = 0.01 * torch.randn(256, generator=g)
    for tower, first_in in (("cate_tower", 256), ("kernel_tower", 258)):
        for i in range(4):
            d[f"ins_head.{tower}.{3 * i}.weight"] = w(512, first_in if i == 0 else 512, 3, 3)
            d[f"ins_head.{tower}.{3 * i + 1}.weight"] = 1 + 0.1 * torch.randn(512, generator=g)
            d[f"ins_head.{tower}.{3 * i + 1}.bias"] = 0.1 * torch.randn(512, generator=g)
    d["ins_head.cate_pred.weight"] = w(80, 512, 3, 3)
    d["ins_head.cate_pred.bias"] = torch.full((80,), -2.0)
    d["ins_head.kernel_pred.weight"] = w(256, 512, 3, 3)
    d["ins_head.kernel_pred.bias"] = 0.01 * torch.randn(256, generator=g)
    for lvl in range(4):
        for j in range(max(1, lvl)):
            cin = (258 if lvl == 3 else 256) if j == 0 else 128
            p = f"mask_head.convs_all_levels.{lvl}.conv{j}"
            d[f"{p}.0.weight"] = w(128, cin, 3, 3)
            d[f"{p}.1.weight"] = 1 + 0.1 * torch.randn(128, generator=g)
            d[f"{p}.1.bias"] = 0.1 * torch.randn(128, generator=g)
    d["mask_head.conv_pred.0.weight"] = w(256, 128, 1, 1)
    d["mask_head.conv_pred.1.weight"] = torch.ones(256)
    d["mask_head.conv_pred.1.bias"] = torch.zeros(256)
    return d


def test_key_mapping_places_every_tensor():
    state = official_solov2_r50_state()
    mapped = map_adelaidet_keys(state)
    assert len(mapped) == len(state)
    assert torch.equal(
        mapped["backbone.body.conv1.weight"], state["backbone.bottom_up.stem.conv1.weight"]
    )
    assert torch.equal(
        mapped["backbone.body.layer3.0.downsample.1.running_var"],
        state["backbone.bottom_up.res4.0.shortcut.norm.running_var"],
    )
    assert torch.equal(
        mapped["backbone.body.layer4.2.bn3.bias"],
        state["backbone.bottom_up.res5.2.conv3.norm.bias"],
    )
    assert torch.equal(mapped["fpn.output.3.weight"], state["backbone.fpn_output5.weight"])
    with pytest.raises(WeightsError, match="unexpected key"):
        map_adelaidet_keys({"roi_heads.box_predictor.weight": torch.zeros(1)})


def test_official_state_loads_into_binary_r50_and_runs(tmp_path):
    state = official_solov2_r50_state()
    path = tmp_path / "SOLOv2_R50_3x.pth"
    torch.save({"model": state, "__author__": "d2", "iteration": 1}, path)
    model = load_adelaidet_solov2(path)
    cfg = model.config
    assert (cfg.backbone, cfg.mode, cfg.num_classes, cfg.colour_order) == (
        "resnet50",
        "binary",
        80,
        "BGR",
    )
    assert cfg.pixel_std == (1.0, 1.0, 1.0) and cfg.stride_in_1x1
    assert model.backbone.body.layer2[0].conv1.stride == (2, 2)
    assert model.backbone.body.layer2[0].conv2.stride == (1, 1)
    sd = model.state_dict()
    for k, v in map_adelaidet_keys(state).items():
        assert torch.equal(sd[k], v), k
    # BGR on the 0..255 scale with detectron2's mean, std 1
    x = torch.rand(1, 3, 64, 64)
    pre = model.preprocess(x)
    assert torch.allclose(pre[0, 0], x[0, 2] * 255 - 103.53, atol=1e-4)
    with torch.no_grad():  # the instance head costs ~70 GMAC at any input size: not run here
        p = model.fpn(model.backbone(pre))
        feats = model.mask_head(p[:4])
    assert [tuple(f.shape[-2:]) for f in p] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert feats.shape == (1, 256, 16, 16)


def test_trimap_from_binary_keeps_person_scores_and_mask_odds():
    torch.manual_seed(0)
    cfg = TrimapNetConfig(
        mode="binary", fpn_channels=32, ins_channels=32, num_instance_convs=2,
        mask_channels=32, num_masks=32, num_grids=(12, 10, 8, 6, 4),
    )  # fmt: skip
    binary = TrimapNet(cfg).eval()
    with torch.no_grad():
        binary.ins_head.kernel_pred.weight.mul_(30)  # logits of a trained model's magnitude
        binary.mask_logit_bias.fill_(0.3)
    tri = trimap_from_binary(binary)
    assert tri.config.mode == "trimap" and tri.config.num_classes == 1
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        cb, kb, fb = binary.features(x)
        ct, kt, ft = tri.features(x)
    assert torch.allclose(ct[0], cb[0][:, :1], atol=1e-5)  # person row
    z = torch.einsum("e,ehw->hw", kb[2][0, :, 3, 4], fb[0]) + binary.mask_logit_bias
    lt = torch.einsum("ce,ehw->chw", kt[2][0, :, 3, 4].view(3, -1), ft[0])
    lt = lt + tri.mask_logit_bias.view(3, 1, 1)
    p = lt.softmax(0)
    assert torch.allclose(p[2] / p[0], z.exp(), rtol=1e-3)  # P(fg)/P(bg) = binary odds
    assert float(p[1].max().detach()) < 1 / 3 + 1e-3  # "unknown" starts low


def test_numpy_checkpoints_are_read(tmp_path):
    # detectron2 .pth files may hold {"model": numpy arrays}; weights_only must read them.
    state = {"ins_head.cate_pred.bias": np.full(80, -2.0, np.float32), "n": np.arange(3)}
    path = tmp_path / "np.pth"
    torch.save({"model": state, "__author__": "d2"}, path)
    out = load_third_party_checkpoint(path)
    assert out["ins_head.cate_pred.bias"].dtype == torch.float32
    assert torch.equal(out["n"], torch.arange(3))


def test_refuses_what_weights_only_refuses(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": Payload()}}, path)
    with pytest.raises(WeightsError, match="cannot be loaded safely") as e:
        load_adelaidet_solov2(path)
    assert "\n" not in str(e.value)
    assert "payload ran" not in capsys.readouterr().out
    obj = tmp_path / "objects.pth"
    torch.save({"model": {"x": np.array([object()], dtype=object)}}, obj)
    with pytest.raises(WeightsError):
        load_third_party_checkpoint(obj)
    with pytest.raises(WeightsError, match="not found"):
        load_third_party_checkpoint(tmp_path / "nope.pth")
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(WeightsError):
        load_adelaidet_solov2(bad)
