"""drawloop/vision/mixed.py: a 50/50 mixed source keeps its ratio exactly, in every batch of every epoch."""

import json

import pytest
import torch

from drawloop.vision.backbone import BackboneConfig
from drawloop.vision.mixed import (
    epoch_order,
    epoch_steps,
    is_mixed,
    load_mixed,
    parse_mix,
)
from drawloop.vision.procedural import generate
from drawloop.vision.contrastive import MoCo
from drawloop.vision.ssl import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py


def test_every_batch_is_exactly_half_and_half_and_no_image_repeats_in_an_epoch():
    groups = torch.tensor([0] * 20 + [1] * 20)
    gen = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(3):
        order = epoch_order(40, 8, gen, groups)
        assert sorted(order.tolist()) == list(range(40))          # a permutation of all images
        used = order[: epoch_steps(40, 8, groups) * 8].view(-1, 8)
        assert used.shape == (5, 8)                                # as many steps as 40 // 8, unmixed
        parts = groups[used]
        assert (parts.sum(dim=1) == 4).all()                       # 4 of each source in every batch
        assert (parts[:, 0::2] == 0).all() and (parts[:, 1::2] == 1).all()   # interleaved: every even slice too
        orders.append(order)
    assert not torch.equal(orders[0], orders[1])                   # a fresh order every epoch
    again = torch.Generator().manual_seed(0)
    assert torch.equal(epoch_order(40, 8, again, groups), orders[0])  # and the same for the same seed


def test_unequal_parts_and_no_groups():
    groups = torch.tensor([0] * 20 + [1] * 30)
    assert epoch_steps(50, 8, groups) == 5                        # the smaller part's 20 fill 5 batches of 4
    order = epoch_order(50, 8, torch.Generator().manual_seed(1), groups)
    assert (groups[order[:40].view(5, 8)].sum(dim=1) == 4).all()
    # without groups: the plain permutation ssl.train always drew (old runs resume unchanged)
    assert torch.equal(epoch_order(50, 8, torch.Generator().manual_seed(3)),
                       torch.randperm(50, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="multiple of 2"):
        epoch_steps(50, 7, groups)


def test_load_mixed_takes_equal_parts_the_same_images_each_part_starts_with():
    mix = load_mixed("procedural:shapes+procedural:spectral", size=16, images=10, seed=0)
    assert mix.images.shape == (10, 3, 16, 16) and mix.groups.tolist() == [0] * 5 + [1] * 5
    assert torch.equal(mix.images[:5], generate("shapes", 5, 16, 0))
    assert torch.equal(mix.images[5:], generate("spectral", 5, 16, 0))
    assert is_mixed("a.jsonl+procedural:shapes") and not is_mixed("procedural:shapes")
    with pytest.raises(ValueError, match="SOURCE\\+SOURCE"):
        parse_mix("procedural:shapes+")


def test_training_on_a_mix_keeps_the_ratio_in_every_step(tmp_path, monkeypatch):
    mix = load_mixed("procedural:shapes+procedural:deadleaves", size=16, images=48, seed=0)
    seen = []
    forward = MoCo.forward

    def spy(self, view_q, view_k, gen, ids=None):
        seen.append(ids.clone())
        return forward(self, view_q, view_k, gen, ids)

    monkeypatch.setattr(MoCo, "forward", spy)
    config = TrainConfig(epochs=2, batch_size=16, queue_size=32, backbone=BackboneConfig("resnet10", 4))
    result = train(mix.images, config, tmp_path, progress=False, groups=mix.groups)
    assert len(seen) == 2 * 3 == len(result.step_losses)
    for ids in seen:
        assert (mix.groups[ids] == 0).sum() == 8 == (mix.groups[ids] == 1).sum()
    for epoch in (seen[:3], seen[3:]):
        assert len(torch.cat(epoch).unique()) == 48              # each image once an epoch
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["mix"] == {"parts": 2, "per_batch": 8, "steps_per_epoch": 3}
    with pytest.raises(ValueError, match="other images"):          # a checkpoint knows it was a mix
        train(mix.images, config, tmp_path, progress=False)
