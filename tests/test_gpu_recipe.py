"""The GPU recipe, tested where it can be on a CPU: device choice, the AMP guard (autocast on the same code
path, disabled off CUDA), the DataLoader path feeding the same batches, and one ResNet-50 training step."""

import json

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from drawloop.vision.backbone import BackboneConfig, build_backbone, load_backbone
from drawloop.vision.data import list_images, load_images
from drawloop.vision.loader import FileImages, LoaderConfig
from drawloop.vision.procedural import generate
from drawloop.vision.ssl import TrainConfig, pick_device, train, use_amp

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
TINY = BackboneConfig(arch="resnet10", width=4)


@no_cuda
def test_device_auto_is_the_cpu_here_and_cuda_without_cuda_is_a_clear_error():
    assert pick_device("auto") == torch.device("cpu") and pick_device("cpu") == torch.device("cpu")
    for asked in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match="CUDA was asked for but torch sees no GPU.*--device auto or cpu"):
            pick_device(asked)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_amp_only_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")   # a device object needs no GPU
    assert use_amp("auto", cpu) is False and use_amp("fp32", cpu) is False
    assert use_amp("auto", cuda) is True and use_amp("amp", cuda) is True and use_amp("fp32", cuda) is False
    with pytest.raises(ValueError, match="needs CUDA"):
        use_amp("amp", cpu)
    with pytest.raises(ValueError, match="unknown precision"):
        use_amp("fp8", cuda)


@no_cuda
def test_on_the_cpu_every_step_runs_under_a_disabled_autocast(tmp_path, monkeypatch):
    images = generate("shapes", 32, 16, seed=0)
    config = TrainConfig(epochs=1, batch_size=8, queue_size=16, backbone=TINY)
    reference = train(images, config, tmp_path / "fp32", progress=False, precision="fp32")
    entered = []
    real = torch.autocast

    def spy(device_type, *args, **kwargs):
        entered.append((device_type, kwargs.get("dtype"), kwargs.get("enabled")))
        return real(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    result = train(images, config, tmp_path / "auto", progress=False)
    assert entered == [("cpu", torch.float16, False)] * 4            # one per step, disabled
    assert result.step_losses == reference.step_losses               # so exactly float32's numbers
    report = json.loads((tmp_path / "auto" / "train.json").read_text())
    assert report["amp"] is False and report["precision"] == "float32" and report["device"] == "cpu"


def test_streamed_files_through_dataloader_workers_train_exactly_as_in_memory(tmp_path):
    gen = torch.Generator().manual_seed(0)
    for i in range(12):
        pixels = (torch.rand(20, 24, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(tmp_path / f"{i:02d}.png")
    paths = list_images(tmp_path)
    config = TrainConfig(epochs=2, batch_size=4, queue_size=8, backbone=TINY)
    in_memory = train(load_images(paths, 16), config, tmp_path / "memory", progress=False)
    files = FileImages(paths, 16)
    assert torch.equal(files[3], load_images(paths[3:4], 16)[0]) and files.shape == (12, 3, 16, 16)
    streamed = train(files, config, tmp_path / "stream", progress=False, loader=LoaderConfig(workers=1, prefetch=2))
    assert streamed.step_losses == in_memory.step_losses


def test_one_resnet50_step_runs_and_changes_the_weights(tmp_path):
    """The study's backbone (ResNet-50, width 64, ImageNet stem) at 32 px, batch 2: one MoCo-v2 step."""
    arch = BackboneConfig(arch="resnet50", width=64, small_input=False)
    config = TrainConfig(epochs=1, batch_size=2, lr=0.03, weight_decay=1e-4, temperature=0.2, key_momentum=0.999,
                         queue_size=65536, bn_splits=1, backbone=arch)
    result = train(generate("deadleaves", 2, 32, seed=0), config, tmp_path, progress=False)
    assert len(result.step_losses) == 1 and result.step_losses[0] == result.step_losses[0]  # ran, not NaN
    trained, meta = load_backbone(result.model_path)
    torch.manual_seed(config.seed)                                  # the same init train() started from
    initial = build_backbone(arch)
    assert trained.feature_dim == 2048 and meta["settings"]["backbone"]["arch"] == "resnet50"
    changed = [name for name, p in initial.named_parameters()
               if not torch.equal(p, dict(trained.named_parameters())[name])]
    assert len(changed) > 100   # nearly every tensor moved in the one SGD step


@no_cuda
def test_cli_device_and_precision_errors_are_one_clear_line(tmp_path):
    from drawloop.commands.train import register

    app = typer.Typer()
    register(app)
    tiny = ["--size", "16", "--arch", "resnet10", "--width", "4", "--batch-size", "8", "--threads", "1",
            "--data", "procedural:shapes", "--images", "16", "--epochs", "1", "--out", str(tmp_path / "x")]
    for extra, message in ((["--device", "cuda"], "CUDA was asked for"), (["--precision", "amp"], "needs CUDA")):
        result = CliRunner().invoke(app, ["train", *tiny, *extra])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["train", *tiny[:-8], "--data", "procedural:shapes+procedural:spectral",
                                      "--images", "16", "--epochs", "1", "--out", str(tmp_path / "mix")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "mix" / "train.json").read_text())["mix"]["per_batch"] == 4
