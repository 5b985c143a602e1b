"""TrimapNet: output shapes and dtypes, losses, instance_logits, save/load round trip."""

from dataclasses import replace

import pytest
import torch

from vidmatte.models.errors import WeightsError
from vidmatte.models.instances import Instances
from vidmatte.models.trimapnet import PostprocessConfig, TrimapNet, TrimapNetConfig, build_trimapnet
from vidmatte.training.release.model_folder import write_model_folder

# A small head so the tests stay fast; the architecture is the same as the default one.
SMALL = dict(
    fpn_channels=32, ins_channels=32, num_instance_convs=2, mask_channels=32, num_masks=32,
    num_grids=(12, 10, 8, 6, 4),
)  # fmt: skip
# Keep everything: untrained weights score about the focal prior (0.01).
KEEP_ALL = PostprocessConfig(score_thr=0.0, mask_thr=0.0, update_thr=0.0, max_per_img=5)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine this is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(mode="trimap", backbone="mobilenet_v2", **kw):
    torch.manual_seed(0)
    cfg = TrimapNetConfig(backbone=backbone, mode=mode, postprocess=KEEP_ALL, **SMALL, **kw)
    return build_trimapnet(cfg, pretrained_backbone=False).eval()


def _targets(h, w, mode="trimap"):
    masks = torch.zeros(2, h, w, dtype=torch.uint8)
    masks[0, 10:60, 20:70] = 1
    masks[1, 30 : h - 5, 80 : w - 10] = 1
    t = {"labels": torch.tensor([0, 0]), "masks": masks}
    if mode == "trimap":
        tri = masks.long() * 2
        tri[:, 29, :] = 1
        tri[0, 0, 0] = 255
        t["trimaps"] = tri
    return t


@pytest.mark.parametrize("mode", ["trimap", "binary"])
def test_eval_outputs_shapes_and_dtypes(mode):
    model = _model(mode)
    images = torch.rand(2, 3, 100, 150)  # not multiples of 32: padding happens inside
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for inst in out:
        assert isinstance(inst, Instances)
        n = len(inst)
        assert 0 < n <= 5
        assert inst.masks.shape == (n, 100, 150) and inst.masks.dtype == torch.float32
        assert inst.scores.shape == (n,) and inst.labels.dtype == torch.long
        assert inst.boxes.shape == (n, 4) and inst.centres.shape == (n, 2)
        assert bool((inst.scores[:-1] >= inst.scores[1:]).all())
        assert float(inst.masks.min()) >= 0 and float(inst.masks.max()) <= 1
        if mode == "trimap":
            assert inst.trimaps.shape == (n, 3, 100, 150)
            assert torch.allclose(inst.trimaps.sum(1), torch.ones(n, 100, 150), atol=1e-5)
            assert torch.allclose(inst.masks, 1 - inst.trimaps[:, 0], atol=1e-6)
            assert bool((inst.labels == 0).all())
        else:
            assert inst.trimaps is None
            assert int(inst.labels.max()) < 80


def test_detect_returns_original_resolution():
    model = _model()
    out = model.detect(torch.rand(1, 3, 90, 160), short_side=64)
    assert out[0].masks.shape[-2:] == (90, 160)
    assert out[0].trimaps.shape[-3:] == (3, 90, 160)


def test_default_thresholds_drop_untrained_scores():
    model = _model()
    model.config.postprocess = PostprocessConfig()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert len(out[0]) == 0 and out[0].masks.shape == (0, 64, 64)


@pytest.mark.parametrize("mode", ["trimap", "binary"])
def test_training_losses_and_gradients(mode):
    model = _model(mode).train()
    images = torch.rand(2, 3, 96, 128)
    targets = [
        _targets(96, 128, mode),
        {
            "labels": torch.zeros(0, dtype=torch.long),
            "masks": torch.zeros(0, 96, 128, dtype=torch.uint8),
            "trimaps": torch.zeros(0, 96, 128, dtype=torch.long),
        },
    ]
    losses = model(images, targets)
    assert set(losses) == {"loss_cate", "loss_mask"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.ins_head.kernel_pred.weight.grad.abs().sum() > 0
    assert model.ins_head.cate_pred.weight.grad.abs().sum() > 0
    assert model.mask_head.conv_pred[0].weight.grad.abs().sum() > 0


def test_trimap_mode_requires_trimaps():
    model = _model().train()
    t = _targets(64, 96, "binary")
    with pytest.raises(ValueError, match="trimaps"):
        model(torch.rand(1, 3, 64, 96), [t])


def test_instance_logits_pick_levels_and_cells():
    model = _model().train()
    images = torch.rand(2, 3, 96, 130)
    pts = [torch.tensor([[10.0, 10.0], [120.0, 90.0]]), torch.tensor([[60.0, 40.0]])]
    sizes = [torch.tensor([20.0, 500.0]), torch.tensor([150.0])]
    out = model.instance_logits(images, pts, sizes)
    assert [tuple(o.shape) for o in out] == [(2, 3, 24, 33), (1, 3, 24, 33)]
    out[0].sum().backward()
    assert model.ins_head.kernel_pred.weight.grad.abs().sum() > 0
    assert model.select_levels(torch.tensor([10.0, 60.0, 150.0, 400.0, 2000.0])).tolist() == [
        0, 0, 2, 3, 4,
    ]  # fmt: skip
    # the same query through the dynamic kernel of its cell, computed by hand
    with torch.no_grad():
        cates, kernels, feats = model.features(images)
        k = kernels[0][1, :, int(40 / 96 * 12), int(60 / 160 * 12)]  # padded 96 x 160
        by_hand = torch.einsum("ce,ehw->chw", k.view(3, -1), feats[1, :, :24, :33])
        got = model.instance_logits(
            images, [pts[0], torch.tensor([[60.0, 40.0]])], [sizes[0], torch.tensor([20.0])]
        )[1][0]
    assert torch.allclose(got, by_hand, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError):
        TrimapNetConfig(mode="alpha")
    with pytest.raises(ValueError):
        TrimapNetConfig(backbone="resnet50", colour_order="RGBA")
    cfg = TrimapNetConfig(backbone="resnet50", mode="binary")
    assert cfg.num_classes == 80 and cfg.ins_channels == 512 and cfg.class_names[0] == "person"


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet18"])
def test_save_load_round_trip_is_exact(tmp_path, backbone):
    model = _model(backbone=backbone)
    with torch.no_grad():  # make every tensor differ from a fresh build
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    folder = write_model_folder(model, tmp_path / "m")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    loaded = TrimapNet.from_folder(folder)
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ra, rb = model(x)[0], loaded(x)[0]
    assert torch.equal(ra.scores, rb.scores) and torch.equal(ra.trimaps, rb.trimaps)


def test_fp16_folder_and_refusals(tmp_path):
    model = _model(mode="binary")
    folder = write_model_folder(model, tmp_path / "half", fp16=True)
    loaded = TrimapNet.from_folder(folder)
    assert loaded.config.mode == "binary"
    assert next(loaded.parameters()).dtype == torch.float32
    import json

    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "trimapnet" and cfg["input"]["colour_order"] == "RGB"
    assert len(cfg["classes"]) == 80
    cfg["arch"]["num_masks"] = 64  # a config that no longer matches the tensors
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="does not fit"):
        TrimapNet.from_folder(folder)
    cfg["architecture"] = "indexnet"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="not 'trimapnet'"):
        TrimapNet.from_folder(folder)
    with pytest.raises(WeightsError):
        TrimapNet.from_folder(tmp_path / "missing")


def test_change_of_settings_keeps_weights():
    model = _model()
    other = replace(model.config.postprocess, max_per_img=2)
    cates, kernels, feats = model.features(torch.rand(1, 3, 64, 64))
    out = model.postprocess(cates, kernels, feats, (64, 64), settings=other)
    assert len(out[0]) == 2


@pytest.mark.gpu
def test_cpu_gpu_parity():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    model = _model()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        cpu_feats = model.features(x)
        gpu_model = model.to("cuda")
        gpu_feats = gpu_model.features(x.cuda())
        for a, b in zip(
            cpu_feats[0] + cpu_feats[1] + [cpu_feats[2]],
            gpu_feats[0] + gpu_feats[1] + [gpu_feats[2]],
            strict=True,
        ):
            assert torch.allclose(a, b.cpu(), atol=1e-3, rtol=1e-3)
        cpu_out = model.to("cpu")(x)
        gpu_out = model.to("cuda")(x.cuda())
    for a, b in zip(cpu_out, gpu_out, strict=True):
        assert len(a) == len(b)
        assert a.masks.device.type == "cpu" and b.masks.device.type == "cuda"
        assert torch.allclose(a.scores, b.scores.cpu(), atol=1e-3)
        assert (a.masks - b.masks.cpu()).abs().mean() < 1e-3


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet18"])
def test_frozen_stages_get_no_gradient_and_odd_widths_build(backbone):
    """`[model] freeze = 2` (stem + stride-4 stage) for short CPU schedules; a 48-wide head
    (GroupNorm needs a divisor of the width) builds and trains."""
    from vidmatte.models.trimapnet.backbones import freeze_stages

    widths = dict(SMALL, fpn_channels=48, ins_channels=48, mask_channels=48, num_masks=48)
    torch.manual_seed(0)
    cfg = TrimapNetConfig(backbone=backbone, postprocess=KEEP_ALL, **widths)
    model = build_trimapnet(cfg, pretrained_backbone=False).train()
    assert freeze_stages(model.backbone, 2) > 0
    sum(model(torch.rand(1, 3, 64, 96), [_targets(64, 96)]).values()).backward()
    if backbone == "mobilenet_v2":
        frozen, trained = model.backbone.features[:4], model.backbone.features[4:]
    else:
        b = model.backbone.body
        frozen, trained = torch.nn.ModuleList([b.conv1, b.layer1]), b.layer2
    assert all(p.grad is None for p in frozen.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained.parameters())
