"""DDP on CPU: 2 gloo processes train as one process does on the same global batch.

Why the curves can be compared tightly: both runs draw the data order, every augmentation parameter and
MoCo's key shuffle from the same seeded generator (augment(part=...) gives a rank the views one process
makes for its rows), and with bn_splits = 4 on 2 ranks each rank's BN groups are the same images as the
single process's. What is left is float32 summation order (DDP averages two half-batch gradients instead
of taking one mean): measured at 5e-7 on losses near 3 over 6 steps. TOL is 2e-5, 40x that, while each
broken piece we tried moves the curve by 4e-3 or more: MoCo's BN groups not aligned (bn_splits = 1)
0.16 from the second step; SimCLR with only local negatives 0.73; SimCLR's gather keeping only the local
slice of the local gradient (no all-reduce) 3.8e-3 at the second step; SimCLR's per-rank BN 0.14.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from drawloop.vision import contrastive, distributed, ssl
from drawloop.vision.augment import augment
from drawloop.vision.backbone import BackboneConfig, build_backbone
from drawloop.vision.contrastive import MoCo
from drawloop.vision.distributed import launch, train_in_processes
from drawloop.vision.procedural import generate
from drawloop.vision.ssl import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # each spawn is ~5 s; on a loaded machine, minutes

TINY = BackboneConfig(arch="resnet10", width=4)
TOL = 2e-5


def _config(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 16, "queue_size": 32, "backbone": TINY, "seed": 0, **kw})


@pytest.fixture(scope="module")
def images():
    return generate("shapes", 48, 16, seed=0)


def _max_gap(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


def test_moco_on_two_processes_follows_one_process(images, tmp_path):
    config = _config(method="moco")  # the real backbone, batch norm and all (bn_splits 4: 2 groups a rank)
    one = train(images, config, tmp_path / "one", progress=False)
    two = train_in_processes(images, config, tmp_path / "two", nproc=2, threads=1, progress=False)
    assert len(two.step_losses) == len(one.step_losses) == 6
    assert _max_gap(one.step_losses, two.step_losses) < TOL, (one.step_losses, two.step_losses)
    other_seed = train(images, _config(method="moco", seed=1), tmp_path / "seed1", progress=False)
    assert _max_gap(one.step_losses, other_seed.step_losses) > 1000 * TOL  # the curve says something
    a = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    for key in ("encoder.head.2.weight", "key_encoder.head.2.weight", "queue", "queue_ids", "queue_ptr"):
        assert torch.allclose(a["model"][key].float(), b["model"][key].float(), atol=TOL), key
    assert json.loads((tmp_path / "two" / "train.json").read_text())["world_size"] == 2


def _unnormalised_backbone(config):
    """The backbone without its BatchNorm2d layers: nothing computed across the batch.

    (GroupNorm(1, C) would do as well in principle, but at seed 0 that run's own curve moves by 1.4e-4
    at step 6 when only the thread count changes, a float-sensitive point of that run, not of DDP.)
    """
    net = build_backbone(config)
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    return net


def _recording(fn, marker: Path):
    def wrapped(*args, **kwargs):
        marker.touch()
        return fn(*args, **kwargs)
    return wrapped


def _simclr_rank(images, config, out, markers):
    """One rank of the SimCLR run: no batch norm, and a note of which rank writes files."""
    contrastive.build_backbone = _unnormalised_backbone
    rank = distributed.world().rank
    for name in ("_save_checkpoint", "save_backbone"):
        setattr(ssl, name, _recording(getattr(ssl, name), Path(markers) / f"{name}-{rank}"))
    train(images, config, out, progress=False)


def test_simclr_negatives_span_both_processes_and_only_rank_0_writes(images, tmp_path, monkeypatch):
    # Per-rank batch norm makes SimCLR differ from one process by design on CPU (0.14 here), so this
    # comparison drops batch norm: what is left to match is the all-gather of negatives and its gradient.
    # With only local negatives the first loss would already differ; with a gather that dropped the
    # other rank's gradient, the later ones.
    config = _config(method="simclr")
    monkeypatch.setattr(contrastive, "build_backbone", _unnormalised_backbone)
    one = train(images, config, tmp_path / "one", progress=False)
    markers = tmp_path / "markers"
    markers.mkdir()
    launch(_simclr_rank, 2, (images, config, str(tmp_path / "two"), str(markers)), threads=1)
    two = json.loads((tmp_path / "two" / "train.json").read_text())
    assert _max_gap(one.step_losses, two["step_losses"]) < TOL, (one.step_losses, two["step_losses"])
    assert sorted(p.name for p in markers.iterdir()) == ["_save_checkpoint-0", "save_backbone-0"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoint.pt", "model.pt", "train.json"]


def _queue_rank(images, config, out):
    """One MoCo step on this rank's half of a batch of 16 (ids 100..115); save what the queue holds."""
    torch.manual_seed(config.seed)
    moco = MoCo(config, queue_size=32)
    rank = distributed.world().rank
    gen = torch.Generator().manual_seed(0)
    x = images[rank * 8 : (rank + 1) * 8].float() / 255
    a, b = augment(x, config.augment, gen, part=(rank * 8, 16)), augment(x, config.augment, gen, part=(rank * 8, 16))
    moco(a, b, gen, torch.arange(rank * 8, (rank + 1) * 8) + 100)
    torch.save({"queue": moco.queue, "ids": moco.queue_ids, "ptr": moco.queue_ptr}, Path(out) / f"queue-{rank}.pt")


def test_moco_queue_takes_the_keys_of_both_processes(images, tmp_path):
    config = _config()
    launch(_queue_rank, 2, (images, config, str(tmp_path)), threads=1)
    r0, r1 = (torch.load(tmp_path / f"queue-{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(r0["queue"], r1["queue"]) and torch.equal(r0["ids"], r1["ids"])  # one queue, two copies
    assert r0["ptr"].item() == 16  # both ranks' 8 keys went in
    assert torch.equal(r0["ids"][:16], torch.arange(100, 116))  # rank 0's images, then rank 1's
    # The keys are the ones one process computes for the whole batch of 16 (same seed, same views).
    torch.manual_seed(config.seed)
    moco = MoCo(config, queue_size=32)
    gen = torch.Generator().manual_seed(0)
    x = images[:16].float() / 255
    moco(augment(x, config.augment, gen), augment(x, config.augment, gen), gen, torch.arange(100, 116))
    assert torch.allclose(r0["queue"][:16], moco.queue[:16], atol=1e-6)
    assert torch.equal(r0["queue"][16:], moco.queue[16:])  # the untouched random initial keys


TINY_CLI = ["--data", "procedural:shapes", "--images", "32", "--epochs", "2", "--size", "16", "--arch", "resnet10",
            "--width", "4", "--batch-size", "16", "--threads", "1"]


def test_cli_nproc_2_and_torchrun_write_one_run_with_the_same_curve(tmp_path):
    import typer

    from drawloop.commands.train import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["train", *TINY_CLI, "--nproc", "2", "--out", str(tmp_path / "spawn")])
    assert result.exit_code == 0, result.output
    assert "2 processes" in result.output
    assert sorted(p.name for p in (tmp_path / "spawn").iterdir()) == ["checkpoint.pt", "model.pt", "train.json"]
    spawned = json.loads((tmp_path / "spawn" / "train.json").read_text())
    assert spawned["world_size"] == 2 and spawned["epochs_done"] == 2

    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_KEYS}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "drawloop", "train", *TINY_CLI, "--out", str(tmp_path / "torchrun")],
                         capture_output=True, text=True, env=env, timeout=500, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("done:") == 1  # rank 0 alone reports
    launched = json.loads((tmp_path / "torchrun" / "train.json").read_text())
    assert launched["world_size"] == 2
    assert launched["step_losses"] == spawned["step_losses"]  # same computation, however it was started


def test_nproc_that_contradicts_torchrun_or_splits_the_batch_unevenly_is_a_clear_error(tmp_path, monkeypatch):
    import typer

    from drawloop.commands.train import register

    app = typer.Typer()
    register(app)
    args = ["train", *TINY_CLI, "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, [*args, "--nproc", "3"])  # 16 images a batch do not split in 3
    assert result.exit_code == 2 and "multiple of 3" in result.output, result.output
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    result = CliRunner().invoke(app, [*args, "--nproc", "4"])
    assert result.exit_code == 2 and "leave --nproc out under torchrun" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_augmenting_a_share_gives_those_rows_of_the_whole_batch(images):
    x = images[:16].float() / 255
    config = _config().augment
    whole = augment(x, config, torch.Generator().manual_seed(3))
    gens = [torch.Generator().manual_seed(3) for _ in range(2)]
    halves = [augment(x[r * 8 : (r + 1) * 8], config, gens[r], part=(r * 8, 16)) for r in range(2)]
    assert torch.allclose(torch.cat(halves), whole, atol=1e-6)
    assert torch.equal(gens[0].get_state(), gens[1].get_state())  # the ranks' generators stay in step
    with pytest.raises(ValueError, match="not inside a batch"):
        augment(x, config, gens[0], part=(8, 16))


def test_an_error_in_the_processes_comes_back_as_its_message(images, tmp_path):
    train(images, _config(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings"):  # raised in both ranks, on resume
        train_in_processes(images, _config(epochs=1, lr=0.5), tmp_path, nproc=2, threads=1, progress=False)
