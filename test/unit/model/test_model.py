"""timm-style model tests: shapes, finite outputs, gradients reaching every parameter, exact
size."""

import pytest
import torch

from fer_ros.model.mit import VARIANTS, MiTFusion, build_model, count_params


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    return build_model("mit_b0", num_classes=7)


def test_b0_has_the_papers_parameter_count(b0):
    assert count_params(b0) == 3_452_519
    assert count_params(build_model("mit_b0", num_classes=8)) == 3_452_519 + 257


@pytest.mark.parametrize("size", [64, 96, 224])
def test_output_shape_and_feature_maps(b0, size):
    b0.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        maps = b0.forward_features(x)
        logits = b0.forward_head(maps)
    assert [tuple(m.shape) for m in maps] == [
        (2, c, size // s, size // s) for c, s in zip((32, 64, 160, 256), (4, 8, 16, 32))
    ]
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    assert torch.equal(logits, b0(x))


def test_non_square_input(b0):
    b0.eval()
    with torch.no_grad():
        assert b0(torch.randn(1, 3, 64, 96)).shape == (1, 7)


def test_gradient_reaches_every_parameter(b0):
    b0.train()
    b0.zero_grad()
    b0(torch.randn(2, 3, 64, 64)).logsumexp(1).sum().backward()
    no_grad = [n for n, p in b0.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad


def test_train_mode_is_stochastic_eval_is_not(b0):
    x = torch.randn(2, 3, 64, 64)
    b0.train()
    assert not torch.equal(b0(x), b0(x))
    b0.eval()
    assert torch.equal(b0(x), b0(x))


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "mit_b0"])
def test_larger_variants_build_and_run(variant):
    # Only b1 is built for real and run; the deeper ones are built on the meta device (no memory,
    # no initialisation cost), which still checks their structure and size.
    if variant == "mit_b1":
        model = build_model(variant).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    else:
        with torch.device("meta"):
            model = build_model(variant)
    assert model.encoder.embed_dims == (64, 128, 320, 512)
    assert count_params(model) > count_params(build_model("mit_b0"))


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="unknown model variant"):
        build_model("mit_b9")
    with pytest.raises(ValueError, match="num_classes"):
        MiTFusion(num_classes=0)
    with pytest.raises(ValueError, match="one entry per stage"):
        MiTFusion(depths=(2, 2, 2))


def test_mac_count_states_what_it_counts(b0):
    from torch.utils.flop_counter import FlopCounterMode

    from fer_ros.model.macs import count_macs

    macs = count_macs(b0, 224)
    assert 0.41e9 < macs["conv_linear"] < 0.43e9  # the paper's "0.425 B"
    assert 0.45e9 < macs["total"] < 0.47e9  # + Q K^T and attn V
    # torch's own counter over convolutions and matrix products (2 FLOPs per MAC) agrees exactly.
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        b0.eval()(torch.zeros(1, 3, 224, 224))
    per_op = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    assert (
        sum(per_op.get(k, 0) for k in ("aten.convolution", "aten.addmm", "aten.mm"))
        == 2 * macs["conv_linear"]
    )


def _fixed_kernel_fusion(fusion, maps):
    """The paper's fusion block as first written: max-pool F1..F3 with kernel = stride 8, 4, 2."""
    *early, f4 = maps
    pooled = [torch.nn.functional.max_pool2d(f, k) for f, k in zip(early, (8, 4, 2))]
    return f4 + f4 * fusion.reduce(torch.cat(pooled + [f4], dim=1))


@pytest.mark.parametrize("size", [64, 96, 128, 224])
def test_fusion_equals_the_papers_fixed_kernels_at_multiples_of_32(b0, size):
    b0.eval()
    with torch.no_grad():
        maps = b0.forward_features(torch.randn(2, 3, size, size))
        assert torch.equal(b0.fusion(maps), _fixed_kernel_fusion(b0.fusion, maps))


@pytest.mark.parametrize("size", [40, 48, 72, 100, 112])
def test_any_input_size_pools_like_adaptive_max_pooling(b0, size):
    from fer_ros.model.mit import max_pool_to

    b0.eval()
    x = torch.randn(2, 3, size, size + 8)  # non-square too
    with torch.no_grad():
        maps = b0.forward_features(x)
        grid = tuple(maps[-1].shape[-2:])
        for f in maps[:-1]:
            assert torch.equal(
                max_pool_to(f, grid), torch.nn.functional.adaptive_max_pool2d(f, grid)
            )
        assert b0(x).shape == (2, 7)


def test_uneven_sizes_export_to_onnx_and_match(tmp_path):
    pytest.importorskip("onnxruntime")
    from fer_ros.model.export import export_onnx, parity

    torch.manual_seed(1)
    model = build_model("mit_b0", num_classes=7).eval()
    path = export_onnx(model, tmp_path / "m48.onnx", 48)
    assert parity(model, path, 48) < 1e-4
