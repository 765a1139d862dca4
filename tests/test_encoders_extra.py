"""ResNet-50 and Inception-v3 encoders: weights only from a user's state_dict file, loaded strictly.

Random-initialised torchvision weights stand in for the ImageNet files (photocap
never downloads). Inception at 299 px costs ~6 GFLOPs: one forward only.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models import inception_v3, resnet50

from helpers import EXAMPLES
from photocap.model.checkpoint import load_model, save_model
from photocap.decoding.config import ModelConfig
from photocap.model.encoder import ImageEncoder, pretrained_weights_path
from photocap.model.encoders_tv import EncoderWeightsError, MissingEncoderWeights
from photocap.model.network import CaptionModel
from photocap.model.preprocess import load_image
from photocap.decoding.vocab import Vocabulary


@pytest.fixture(scope="module")
def resnet_state():
    torch.manual_seed(0)
    return resnet50(weights=None).state_dict()  # like the official file: includes fc.*


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory, resnet_state):
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(resnet_state, path)
    return path


@pytest.fixture(scope="module")
def inception_state():
    torch.manual_seed(0)
    # The official file was saved from a model with the auxiliary classifier: AuxLogits.* and fc.* included.
    return inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory, inception_state):
    path = tmp_path_factory.mktemp("weights") / "inception_v3.pth"
    torch.save(inception_state, path)
    return path


def test_resnet50_loads_strictly_and_gives_a_7x7_grid(resnet_file, resnet_state):
    encoder = ImageEncoder("resnet50", pretrained=True, weights_path=resnet_file).eval()
    own = encoder.backbone.state_dict()
    assert set(own) == {k for k in resnet_state if not k.startswith("fc.")}  # torchvision's names
    assert torch.equal(own["layer4.2.conv3.weight"], resnet_state["layer4.2.conv3.weight"])
    assert encoder.out_channels == 2048
    with torch.no_grad():
        grid = encoder(torch.zeros(1, 3, 224, 224))
    assert grid.shape == (1, 49, 2048)
    assert not any(p.requires_grad for p in encoder.parameters())  # frozen by default


def test_inception_v3_loads_strictly_and_gives_an_8x8_grid(inception_file, inception_state):
    encoder = ImageEncoder("inception-v3", pretrained=True, weights_path=inception_file).eval()
    own = encoder.backbone.state_dict()
    assert set(own) == {k for k in inception_state if not k.startswith(("fc.", "AuxLogits."))}
    assert torch.equal(own["Mixed_7c.branch_pool.conv.weight"], inception_state["Mixed_7c.branch_pool.conv.weight"])
    with torch.no_grad():
        grid = encoder(load_image(EXAMPLES / "chelsea.jpg", 299).unsqueeze(0))
    assert grid.shape == (1, 64, 2048)
    assert torch.isfinite(grid).all()


def _torchvision_grid(net, x):
    """torchvision's own forward up to the last feature map (pooling, dropout and classifier removed)."""
    net.avgpool, net.fc = torch.nn.Identity(), torch.nn.Identity()
    if hasattr(net, "dropout"):
        net.dropout = torch.nn.Identity()
    with torch.no_grad():
        return net.eval()(x)  # (B, C*h*w), channel-major


def _imagenet_normalised(x):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


def test_input_normalisation_follows_torchvision_conventions(resnet_state, inception_state):
    """Our [-1, 1] input, normalised inside the encoder, equals torchvision's usage of its
    official weights: ImageNet mean/std for ResNet; for Inception, ImageNet mean/std then
    transform_input=True (the setting torchvision uses with its Inception weights).
    Small inputs keep this cheap."""
    x = torch.rand(1, 3, 96, 96) * 2 - 1
    ours = ImageEncoder("resnet50").eval()
    ours.backbone.load_state_dict({k: v for k, v in resnet_state.items() if not k.startswith("fc.")})
    tv = resnet50(weights=None)
    tv.load_state_dict(resnet_state)
    with torch.no_grad():
        mine = ours.backbone.features(x).flatten(1)
    assert torch.allclose(mine, _torchvision_grid(tv, _imagenet_normalised(x)), atol=1e-4, rtol=1e-4)

    ours = ImageEncoder("inception-v3").eval()
    ours.backbone.load_state_dict({k: v for k, v in inception_state.items() if not k.startswith(("fc.", "Aux"))})
    tv = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    tv.load_state_dict(inception_state)
    tv.AuxLogits = None
    with torch.no_grad():
        mine = ours.backbone.features(x).flatten(1)
    assert torch.allclose(mine, _torchvision_grid(tv, _imagenet_normalised(x)), atol=1e-4, rtol=1e-4)


def test_a_resnet_file_given_to_inception_is_refused_naming_the_key(resnet_file):
    with pytest.raises(EncoderWeightsError) as err:
        ImageEncoder("inception-v3", pretrained=True, weights_path=resnet_file)
    message = str(err.value)
    assert str(resnet_file) in message and "inception-v3" in message
    assert "missing tensors (first: Conv2d_1a_3x3.conv.weight)" in message
    assert "unexpected tensors (first: conv1.weight)" in message


def test_truncated_or_reshaped_files_are_refused_naming_the_key(resnet_state, tmp_path):
    truncated = {k: v for k, v in resnet_state.items() if k != "layer4.2.conv3.weight"}
    torch.save(truncated, tmp_path / "cut.pth")
    with pytest.raises(EncoderWeightsError, match=r"1 missing tensors \(first: layer4\.2\.conv3\.weight\)"):
        ImageEncoder("resnet50", pretrained=True, weights_path=tmp_path / "cut.pth")

    reshaped = dict(resnet_state, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)})
    torch.save(reshaped, tmp_path / "shape.pth")
    with pytest.raises(EncoderWeightsError, match=r"shape mismatch for layer1\.0\.conv1\.weight: "
                                                  r"file \(64, 64, 3, 3\), resnet50 expects \(64, 64, 1, 1\)"):
        ImageEncoder("resnet50", pretrained=True, weights_path=tmp_path / "shape.pth")


def test_missing_weights_say_where_to_get_them(tmp_path):
    for path in (None, tmp_path / "nope.pth"):
        with pytest.raises(MissingEncoderWeights) as err:
            ImageEncoder("inception-v3", pretrained=True, weights_path=path)
        message = str(err.value)
        assert "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth" in message
        assert "--encoder-weights" in message and "never downloads" in message
        assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
    with pytest.raises(MissingEncoderWeights, match="resnet50-11ad3fa6.pth"):
        ImageEncoder("resnet50", pretrained=True)


def test_a_pickled_module_is_not_unpickled(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # a whole module: needs code to unpickle
    with pytest.raises(EncoderWeightsError, match="not a PyTorch state_dict"):
        ImageEncoder("resnet50", pretrained=True, weights_path=path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(EncoderWeightsError, match="not a state_dict"):
        ImageEncoder("resnet50", pretrained=True, weights_path=path)


def test_efficientnet_weights_can_come_from_a_file_too(resnet_file):
    lite = pretrained_weights_path("efficientnet-lite0")
    encoder = ImageEncoder("efficientnet-lite0", pretrained=True, weights_path=lite)
    assert encoder.out_channels == 1280
    with pytest.raises(EncoderWeightsError, match="efficientnet-lite0"):
        ImageEncoder("efficientnet-lite0", pretrained=True, weights_path=resnet_file)


def test_config_rules_for_the_new_encoders():
    with pytest.raises(ValueError, match="needs image_size 299"):
        ModelConfig(encoder="inception-v3")
    ModelConfig(encoder="inception-v3", image_size=299)
    with pytest.raises(ValueError, match="unknown encoder"):
        ImageEncoder("vgg16")


def test_resnet50_model_round_trips_without_the_weights_file(resnet_file, tmp_path):
    from photocap.training.features import encoder_fingerprint

    torch.manual_seed(0)
    cfg = ModelConfig(encoder="resnet50", arch="show-attend-tell", embed_dim=16, hidden_dim=16,
                      attention_dim=16, max_len=5)
    model = CaptionModel(cfg, Vocabulary(["a", "cat", "dog"]), pretrained_encoder=True,
                         encoder_weights=resnet_file).eval()
    assert model.cfg.feature_dim == 2048  # set from the encoder
    saved = save_model(model, tmp_path / "resnet.safetensors", half=False)
    again, _ = load_model(saved)  # no weights file: the model file carries the encoder
    assert again.cfg == model.cfg and "encoder_weights" not in again.cfg.to_dict()
    assert torch.equal(again.state_dict()["encoder.backbone.layer4.2.conv3.weight"],
                       model.state_dict()["encoder.backbone.layer4.2.conv3.weight"])
    with torch.no_grad():
        feats = model.encoder(load_image(EXAMPLES / "coffee.jpg", cfg.image_size).unsqueeze(0))
    assert model.decode_features(feats, beam_size=2) == again.decode_features(feats, beam_size=2)
    # The features cache is keyed by encoder name, input size and weights.
    assert encoder_fingerprint(model.encoder, "resnet50", 224).startswith("resnet50-224-")


def test_cli_trains_evaluates_and_captions_with_resnet50(sample_folder_dataset, resnet_file, tmp_path):
    import json

    from click.testing import CliRunner

    from photocap.cli import cli

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({
        "model": {"arch": "show-attend-tell", "embed_dim": 16, "hidden_dim": 16, "attention_dim": 16, "max_len": 12},
        "train": {"batch_size": 4, "min_freq": 1, "warmup_steps": 1, "val_beam": 1, "scst_epochs": 0},
    }))
    runner = CliRunner()
    base = ["train", "--data", "folder", str(sample_folder_dataset), "--config", str(config), "--epochs", "1",
            "--cache-dir", str(tmp_path / "cache"), "--json", "--device", "cpu"]
    # No weights file: a clear message (no traceback) saying where to get one.
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "none"), "--encoder", "resnet50"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "resnet50-11ad3fa6.pth" in result.output and "--encoder-weights" in result.output
    # Hard attention with another decoder is refused before any work.
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "bad"), "--arch", "transformer", "--attention", "hard"])
    assert result.exit_code == 1 and "show-attend-tell" in result.output

    out = tmp_path / "run"
    result = runner.invoke(cli, [*base, "--out", str(out), "--encoder", "resnet50", "--encoder-weights",
                                 str(resnet_file)])
    assert result.exit_code == 0, result.output
    model_file = out / "best.safetensors"
    assert json.loads(result.stdout.strip().splitlines()[-1])["best_model"] == str(model_file)
    assert [p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()] == ["resnet50"]  # cache keyed by encoder

    result = runner.invoke(cli, ["evaluate", "--data", "folder", str(sample_folder_dataset), "--split", "dev",
                                 "--model", str(model_file), "--beam", "1", "--cache-dir", str(tmp_path / "cache"),
                                 "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["caption", str(sample_folder_dataset / "coffee.jpg"), "--model", str(model_file),
                                 "--beam", "1", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "coffee.jpg" in result.stdout
