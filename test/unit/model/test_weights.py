"""ImageNet MiT import: equivalence with transformers' independent SegFormer encoder, and each
published key layout round-tripping through a file."""

import pytest
import torch
from mit_layouts import OFFICIAL_FROM_OURS, rename
from safetensors.torch import save_file

from fer_ros.errors import CheckpointError
from fer_ros.model.mit import build_model
from fer_ros.model.weights import load_mit_weights, read_state_dict

# transformers >= 5 renames the published Hugging Face names on load (its conversion_mapping.py);
# undoing that gives the names inside nvidia/mit-b0's files.
HF_PUBLISHED_FROM_V5 = [
    (r"^stages\.(\d)\.patch_embeddings\.", r"segformer.encoder.patch_embeddings.\1."),
    (r"^stages\.(\d)\.blocks\.", r"segformer.encoder.block.\1."),
    (r"^stages\.(\d)\.layer_norm", r"segformer.encoder.layer_norm.\1"),
    (r"attention\.q_proj", "attention.self.query"),
    (r"attention\.k_proj", "attention.self.key"),
    (r"attention\.v_proj", "attention.self.value"),
    (r"attention\.sequence_reduction\.sequence_reduction", "attention.self.sr"),
    (r"attention\.sequence_reduction\.layer_norm", "attention.self.layer_norm"),
    (r"attention\.o_proj", "attention.output.dense"),
    (r"mlp\.fc1", "mlp.dense1"),
    (r"mlp\.fc2", "mlp.dense2"),
    (r"layernorm_before", "layer_norm_1"),
    (r"layernorm_after", "layer_norm_2"),
]


@pytest.fixture(scope="module")
def hf_encoder():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.SegformerModel(
        transformers.SegformerConfig()
    ).eval()  # MiT-b0, random weights
    # Random but not trivial norms and biases, so a mis-mapped LayerNorm or bias cannot hide.
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "layer_norm" in name or "layernorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return hf


def test_encoder_matches_transformers_segformer(hf_encoder):
    """Four feature maps equal transformers' SegformerModel to 1e-5 after an import of its weights.
    Its LayerNorms use eps 1e-5 everywhere; the official release (our default) uses 1e-6 in
    blocks."""
    ours = build_model("mit_b0", norm_eps=1e-5).eval()
    report = load_mit_weights(ours, hf_encoder.state_dict(), strict=True)
    assert report.variant == "mit_b0" and not report.missing and not report.unexpected
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        theirs = hf_encoder(pixel_values=x, output_hidden_states=True).hidden_states
        mine = ours.forward_features(x)
    assert len(theirs) == len(mine) == 4
    for a, b in zip(mine, theirs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_published_hf_layout_from_bin_and_safetensors(hf_encoder, tmp_path):
    state = rename(hf_encoder.state_dict(), HF_PUBLISHED_FROM_V5)
    state["classifier.weight"] = torch.zeros(1000, 256)
    assert "segformer.encoder.block.0.0.attention.self.key.weight" in state
    torch.save(state, tmp_path / "pytorch_model.bin")
    save_file(state, str(tmp_path / "model.safetensors"))
    reference = build_model(norm_eps=1e-5)
    load_mit_weights(reference, hf_encoder.state_dict(), strict=True)
    for name in ("pytorch_model.bin", "model.safetensors"):
        model = build_model(norm_eps=1e-5)
        report = load_mit_weights(model, tmp_path / name, strict=True)
        assert report.layout == "huggingface" and report.ignored == ["classifier.weight"]
        assert list(model.encoder.state_dict()) == list(reference.encoder.state_dict())
        for (k, a), b in zip(
            model.encoder.state_dict().items(), reference.encoder.state_dict().values()
        ):
            assert torch.equal(a, b), k


def test_official_segformer_layout(tmp_path):
    source = build_model("mit_b0")
    state = rename(source.encoder.state_dict(), OFFICIAL_FROM_OURS)
    assert "block1.0.attn.kv.weight" in state and "norm4.weight" in state
    state["head.weight"], state["head.bias"] = torch.zeros(1000, 256), torch.zeros(1000)
    torch.save(state, tmp_path / "mit_b0.pth")
    model = build_model("mit_b0")
    report = load_mit_weights(model, tmp_path / "mit_b0.pth", strict=True)
    assert (report.layout, report.variant, report.loaded) == (
        "segformer",
        "mit_b0",
        len(state) - 2,
    )
    assert list(model.encoder.state_dict()) == list(source.encoder.state_dict())
    for (k, a), b in zip(model.encoder.state_dict().items(), source.encoder.state_dict().values()):
        assert torch.equal(a, b), k


def test_missing_and_unexpected_keys_are_reported():
    state = rename(build_model().encoder.state_dict(), OFFICIAL_FROM_OURS)
    del state["norm4.weight"]
    state["block1.0.attn.extra"] = torch.zeros(1)
    report = load_mit_weights(build_model(), state)
    assert report.missing == ["stages.3.norm.weight"]
    assert report.unexpected == ["block1.0.attn.extra"]
    with pytest.raises(ValueError, match="incomplete"):
        load_mit_weights(build_model(), state, strict=True)


def test_wrong_variant_and_not_mit_are_value_errors(tmp_path):
    b1 = rename(build_model("mit_b1").encoder.state_dict(), OFFICIAL_FROM_OURS)
    with pytest.raises(ValueError, match="wrong variant.*mit_b1.*mit_b0"):
        load_mit_weights(build_model("mit_b0"), b1)
    with torch.device("meta"):  # b2 has b1's widths but deeper stages
        b2 = rename(build_model("mit_b2").encoder.state_dict(), OFFICIAL_FROM_OURS)
    with pytest.raises(ValueError, match="wrong variant.*mit_b2.*mit_b1"):
        load_mit_weights(build_model("mit_b1"), b2)
    torch.save(
        {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)},
        tmp_path / "r.pth",
    )
    with pytest.raises(ValueError, match="not MiT weights"):
        load_mit_weights(build_model(), tmp_path / "r.pth")


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle executed')",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only"):
        read_state_dict(tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")
