"""YOLOX-Nano student: the ONNX initializers map onto the PyTorch trunk by name (parity with
onnxruntime on a real frame), and the variant trains, saves and detects like the others."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidmatte.models.errors import WeightsError
from vidmatte.models.trimapnet import PostprocessConfig, TrimapNet, TrimapNetConfig, build_trimapnet
from vidmatte.models.trimapnet.backbones import YOLOX_NANO_ONNX, freeze_stages
from vidmatte.models.trimapnet.onnx_init import (
    load_onnx_initializers,
    onnx_parameters,
    scope_to_module,
)
from vidmatte.models.trimapnet.yolox import YOLOXNanoBackbone
from vidmatte.training.release.model_folder import write_model_folder

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

#: ONNX tensors of the four features the student uses (dark2, then the PAFPN outputs).
TAPS = (
    "/backbone/backbone/dark2/dark2.1/conv3/act/Mul_output_0",
    "/backbone/C3_p3/conv3/act/Mul_output_0",
    "/backbone/C3_n3/conv3/act/Mul_output_0",
    "/backbone/C3_n4/conv3/act/Mul_output_0",
)
KEEP_ALL = PostprocessConfig(score_thr=0.0, mask_thr=0.0, update_thr=0.0, max_per_img=5)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def onnx_path(shared_weights):
    p = shared_weights / YOLOX_NANO_ONNX
    if not p.is_file():
        pytest.skip(f"{YOLOX_NANO_ONNX} is missing from ../shared/weights")
    return p


@pytest.fixture(scope="module")
def letterboxed_frame(shared_data) -> np.ndarray:
    """A real frame (three dancers), letterboxed to 416² as YOLOX expects: BGR 0..255."""
    import cv2

    from vidmatte.matting.io.video import open_video

    with open_video(shared_data / "videos" / "maggie_three_dancers.mp4") as reader:
        rgb = next(iter(reader)).rgb
    h, w = rgb.shape[:2]
    r = min(416 / h, 416 / w)
    img = cv2.resize(rgb[..., ::-1], (round(w * r), round(h * r)), interpolation=cv2.INTER_LINEAR)
    out = np.full((416, 416, 3), 114, np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    return out.transpose(2, 0, 1)[None].astype(np.float32)


def _onnx_taps(path, x: np.ndarray) -> list[np.ndarray]:
    """The graph's intermediate tensors, exposed by adding them as graph outputs."""
    model = onnx.load(str(path))
    for name in TAPS:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    so = ort.SessionOptions()
    # no fusions: ORT's fused conv+activation kernels round differently from the graph
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(list(TAPS), {"images": x})


def test_scope_to_module_names():
    assert scope_to_module("/backbone/backbone/dark2/dark2.0/dconv/conv/Conv") == (
        "backbone.backbone.dark2.0.dconv.conv"
    )
    assert scope_to_module("/head/cls_convs.0/cls_convs.0.1/pconv/conv/Conv") == (
        "head.cls_convs.0.1.pconv.conv"
    )
    assert scope_to_module("/head/cls_preds.0/Conv") == "head.cls_preds.0"


def test_every_trunk_tensor_comes_from_the_onnx_file(onnx_path):
    params = onnx_parameters(onnx_path)
    trunk = {k[len("backbone.") :]: v for k, v in params.items() if k.startswith("backbone.")}
    own = YOLOXNanoBackbone().state_dict()
    assert set(trunk) == set(own)  # nothing left random, nothing left over
    assert all(tuple(trunk[k].shape) == tuple(own[k].shape) for k in own)
    assert sum(v.size for v in trunk.values()) > 700_000


def test_pytorch_trunk_reproduces_onnx_intermediates(onnx_path, letterboxed_frame):
    """dark2 and the three PAFPN outputs within 1e-4 of onnxruntime on a real frame.

    PyTorch runs in float64 so that the comparison measures the mapping, not float32
    rounding (fp32 PyTorch differs from fp32 onnxruntime by up to ~5e-4 on these 0..255
    inputs, while each is within 1e-4 of the fp64 result)."""
    ref = _onnx_taps(onnx_path, letterboxed_frame)
    m = YOLOXNanoBackbone().eval()
    assert load_onnx_initializers(m, onnx_path, prefix="backbone.") == len(m.state_dict())
    with torch.no_grad():
        ours = m.double()(torch.from_numpy(letterboxed_frame).double())
    shapes = [(1, 32, 104, 104), (1, 64, 52, 52), (1, 128, 26, 26), (1, 256, 13, 13)]
    for a, b, shape in zip(ref, ours, shapes, strict=True):
        assert a.shape == shape and tuple(b.shape) == shape
        assert np.abs(a).max() > 1.0  # real activations, not a dead network
        assert np.abs(a - b.numpy()).max() < 1e-4
    # and the test can fail: one swapped pair of same-shaped weights is far off
    sd = m.state_dict()
    a, b = "C3_p3.conv1.conv.weight", "C3_p3.conv2.conv.weight"
    sd[a], sd[b] = sd[b].clone(), sd[a].clone()
    m.load_state_dict(sd)
    with torch.no_grad():
        bad = m(torch.from_numpy(letterboxed_frame).double())[1].numpy()
    assert np.abs(ref[1] - bad).max() > 0.1


def test_wrong_module_is_refused(onnx_path):
    from vidmatte.models.trimapnet.yolox import CSPDarknet

    with pytest.raises(WeightsError, match="does not fit"):
        load_onnx_initializers(torch.nn.Conv2d(3, 7, 3), onnx_path, prefix="backbone.")
    # the right prefix for the inner CSPDarknet loads it exactly
    inner = CSPDarknet()
    assert load_onnx_initializers(inner, onnx_path, prefix="backbone.backbone.") == len(
        inner.state_dict()
    )


def test_yolox_student_builds_from_coco_trains_and_round_trips(onnx_path, tmp_path):
    torch.manual_seed(0)
    cfg = TrimapNetConfig(backbone="yolox_nano", num_grids=(12, 10, 8, 6, 4), postprocess=KEEP_ALL)
    assert (cfg.colour_order, cfg.pixel_mean, cfg.pixel_std, cfg.neck) == (
        "BGR",
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        "lite",
    )
    model = build_trimapnet(cfg, pretrained_backbone=True)
    ref = onnx_parameters(onnx_path)["backbone.backbone.stem.conv.conv.weight"]
    assert np.array_equal(model.backbone.backbone.stem.conv.conv.weight.detach().numpy(), ref)
    # stem + dark2 frozen: no gradient there, gradients everywhere after
    assert freeze_stages(model.backbone, 2) > 0
    h, w = 96, 128
    masks = torch.zeros(1, h, w, dtype=torch.uint8)
    masks[0, 20:80, 30:90] = 1
    tri = masks.long() * 2
    tri[0, 19:21, 30:90] = 1
    losses = model.train()(
        torch.rand(1, 3, h, w), [{"labels": torch.zeros(1).long(), "masks": masks, "trimaps": tri}]
    )
    sum(losses.values()).backward()
    assert model.backbone.backbone.stem.conv.conv.weight.grad is None
    assert model.backbone.backbone.dark2[0].dconv.conv.weight.grad is None
    assert model.backbone.backbone.dark3[0].dconv.conv.weight.grad.abs().sum() > 0
    assert model.fpn.lateral[0].weight.grad.abs().sum() > 0  # the stride-4 feature is used
    model.eval()
    x = torch.rand(1, 3, 100, 150)
    with torch.no_grad():
        before = model(x)[0]
    folder = write_model_folder(model, tmp_path / "m")
    loaded = TrimapNet.from_folder(folder)
    assert loaded.config.backbone == "yolox_nano" and loaded.config.colour_order == "BGR"
    with torch.no_grad():
        after = loaded(x)[0]
    assert torch.equal(before.scores, after.scores)
    assert torch.equal(before.trimaps, after.trimaps)
