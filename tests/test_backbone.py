import pytest
import torch

from drawloop.vision.backbone import (
    BackboneConfig,
    build_backbone,
    count_parameters,
    load_backbone,
    save_backbone,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py


@pytest.mark.parametrize(
    "arch, width, dim", [("resnet10", 8, 64), ("resnet18", 16, 128), ("resnet34", 8, 64), ("resnet50", 8, 256)]
)
def test_feature_dim_follows_width_and_block(arch, width, dim):
    net = build_backbone(BackboneConfig(arch=arch, width=width))
    feats = net(torch.rand(2, 3, 16, 16))
    assert net.feature_dim == dim
    assert feats.shape == (2, dim)


def test_full_resnet50_has_the_standard_parameter_count():
    # torchvision's ResNet-50 trunk (without the 1000-way fc) has 23,508,032 parameters.
    net = build_backbone(BackboneConfig(arch="resnet50", width=64, small_input=False))
    assert count_parameters(net) == 23_508_032


def test_imagenet_stem_downsamples_more_than_small_stem():
    small = build_backbone(BackboneConfig(arch="resnet10", width=4, small_input=True))
    big = build_backbone(BackboneConfig(arch="resnet10", width=4, small_input=False))
    x = torch.rand(1, 3, 32, 32)
    assert small.stem(x).shape[-1] == 32
    assert big.stem(x).shape[-1] == 8


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown arch"):
        BackboneConfig(arch="vgg16")


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = build_backbone(BackboneConfig(arch="resnet10", width=4)).eval()
    save_backbone(tmp_path / "model.pt", net, {"note": "x"})
    loaded, meta = load_backbone(tmp_path / "model.pt")
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(net(x), loaded(x))
    assert meta == {"note": "x"}
    assert not loaded.training


def test_load_rejects_a_foreign_file(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither"):
        load_backbone(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_backbone(tmp_path / "junk.pt")
