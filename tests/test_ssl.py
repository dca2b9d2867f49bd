import json
import math

import pytest
import torch
import torch.nn.functional as F

from drawloop.vision.augment import AugmentConfig, augment
from drawloop.vision.backbone import BackboneConfig, load_backbone
from drawloop.vision.procedural import generate
from drawloop.vision.contrastive import MoCo, SimCLR, nt_xent, queue_size_for
from drawloop.vision.ssl import TrainConfig, cosine_lr, pick_device, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py

TINY = BackboneConfig(arch="resnet10", width=4)


def _config(**kw):
    base = dict(epochs=2, batch_size=16, queue_size=32, backbone=TINY, seed=0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def images():
    return generate("shapes", 48, 16, seed=0)


def test_queue_is_a_ring_buffer_that_wraps():
    moco = MoCo(_config(proj_dim=4), queue_size=5)
    first = torch.eye(4)[:3]
    moco.enqueue(first)
    assert torch.equal(moco.queue[:3], first) and moco.queue_ptr.item() == 3
    second = -torch.eye(4)[:4]
    moco.enqueue(second)
    assert torch.equal(moco.queue[3:5], second[:2])  # fills the end ...
    assert torch.equal(moco.queue[0:2], second[2:4])  # ... and overwrites the oldest
    assert torch.equal(moco.queue[2], first[2])
    assert moco.queue_ptr.item() == 2


def test_momentum_update_moves_keys_a_fraction_towards_queries():
    moco = MoCo(_config(key_momentum=0.9), queue_size=16)
    with torch.no_grad():
        for p in moco.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in moco.key_encoder.parameters()]
    moco.momentum_update()
    for k_old, k_new, q in zip(before, moco.key_encoder.parameters(), moco.encoder.parameters()):
        assert torch.allclose(k_new, 0.9 * k_old + 0.1 * q, atol=1e-6)
    assert all(not p.requires_grad for p in moco.key_encoder.parameters())


def test_moco_forward_enqueues_its_keys_and_only_queries_get_gradients(images):
    moco = MoCo(_config(), queue_size=32)
    x = images[:8].float() / 255
    gen = torch.Generator().manual_seed(0)
    loss, acc = moco(augment(x, AugmentConfig(), gen), augment(x, AugmentConfig(), gen), gen)
    loss.backward()
    assert moco.queue_ptr.item() == 8
    assert torch.allclose(moco.queue[:8].norm(dim=1), torch.ones(8), atol=1e-5)
    assert all(p.grad is not None for p in moco.encoder.parameters())
    assert all(p.grad is None for p in moco.key_encoder.parameters())
    assert 0.0 <= acc.item() <= 1.0


def test_older_keys_of_the_same_images_are_not_negatives(images):
    moco = MoCo(_config(), queue_size=8)
    x = images[:8].float() / 255
    same = torch.zeros(8, dtype=torch.long)  # pretend all eight are one image, seen before
    moco.enqueue(F.normalize(torch.randn(8, 128), dim=1), ids=same)
    gen = torch.Generator().manual_seed(0)
    loss, acc = moco(x, x, gen, ids=same)  # every queued key is an older key of that image: no negatives
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and acc.item() == 1.0
    assert torch.equal(moco.queue_ids, same)
    loss, _ = moco(x, x, gen, ids=torch.arange(8, 16))  # other images: real negatives again
    assert loss.item() > 0.1


def test_nt_xent_matches_its_closed_form_for_perfect_views():
    # Two identical views of n orthogonal images: logit 1/t for the positive, 0 for the 2n - 2 negatives.
    n, t = 4, 0.5
    z = torch.cat([torch.eye(8)[:n], torch.eye(8)[:n]])
    loss, acc = nt_xent(z, t)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * n - 2))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert acc.item() == 1.0


@pytest.mark.parametrize("method", ["moco", "simclr"])
def test_a_few_steps_reduce_the_loss_on_fixed_views(images, method):
    torch.manual_seed(0)
    config = _config(method=method)
    model = MoCo(config, queue_size=32) if method == "moco" else SimCLR(config)
    gen = torch.Generator().manual_seed(0)
    x = images[:16].float() / 255
    a, b = augment(x, config.augment, gen), augment(x, config.augment, gen)
    if method == "moco":
        # A fresh queue of random vectors makes the first losses artificially low; MoCo's loss only means
        # something against real keys, so fill the queue with keys of other images and hold it fixed.
        with torch.no_grad():
            model.queue.copy_(model.key_encoder(images[16:48].float() / 255))
        negatives = model.queue.clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    losses = []
    for _ in range(12):
        if method == "moco":
            model.queue.copy_(negatives)
        loss, _ = model(a, b, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_training_lowers_the_epoch_loss_and_writes_its_outputs(images, tmp_path):
    # SimCLR: its loss falls from the first step; MoCo's first rises while the queue fills with real keys.
    config = _config(method="simclr", epochs=6, lr=0.3)
    result = train(images, config, tmp_path, progress=False, info={"source": "test"})
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert len(result.step_losses) == 6 * (48 // 16)
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["source"] == "test" and report["images"] == 48 and report["epochs_done"] == 6
    assert report["epoch_losses"] == result.epoch_losses
    backbone, meta = load_backbone(tmp_path / "model.pt")
    assert backbone(torch.rand(2, 3, 16, 16)).shape == (2, 32)
    assert meta["settings"]["method"] == "simclr"


@pytest.mark.parametrize("method", ["moco", "simclr"])
def test_resume_continues_bit_identically(images, tmp_path, method):
    config = _config(method=method, epochs=3)
    straight = train(images, config, tmp_path / "straight", progress=False)
    train(images, config, tmp_path / "resumed", progress=False, stop_after_epoch=1)
    resumed = train(images, config, tmp_path / "resumed", progress=False)
    assert resumed.step_losses == straight.step_losses
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for key in a["model"]:  # includes the key encoder and the queue
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_resume_refuses_other_settings_or_other_data(images, tmp_path):
    train(images, _config(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train(images, _config(epochs=1, lr=0.5), tmp_path, progress=False)
    with pytest.raises(ValueError, match="other images"):
        train(images.flip(0), _config(epochs=1), tmp_path, progress=False)


def test_same_seed_same_model_other_seed_other_model(images, tmp_path):
    a = train(images, _config(epochs=1), tmp_path / "a", progress=False)
    b = train(images, _config(epochs=1), tmp_path / "b", progress=False)
    c = train(images, _config(epochs=1, seed=1), tmp_path / "c", progress=False)
    assert a.step_losses == b.step_losses != c.step_losses


def test_schedule_queue_cap_and_device():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0)
    assert queue_size_for(TrainConfig(queue_size=4096, batch_size=256), 3000) == 1500
    assert queue_size_for(TrainConfig(queue_size=4096, batch_size=256), 100_000) == 4096
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_settings_and_data_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="byol")
    with pytest.raises(ValueError, match="uint8"):
        train(torch.rand(4, 3, 8, 8), _config(), tmp_path, progress=False)
