import json

import pytest
import typer
from typer.testing import CliRunner

from drawloop.commands.train import register
from drawloop.vision.probe import FASHION_MNIST


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py


@pytest.fixture
def app():
    app = typer.Typer()
    register(app)
    return app


TINY = ["--size", "16", "--arch", "resnet10", "--width", "4", "--batch-size", "16", "--threads", "1"]


def test_train_writes_model_and_report(app, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", "procedural:shapes", "--images", "32", "--epochs", "2",
                                      "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "train.json").read_text())
    assert report["source"] == "procedural:shapes" and report["images"] == 32 and report["epochs_done"] == 2
    assert len(report["epoch_losses"]) == 2 and report["wall_s"] > 0
    assert (out / "model.pt").exists() and (out / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "procedural:fractal", "--images", "8"], "unknown procedural source"),
        (["train", "--data", "/nonexistent", "--images", "8"], "does not exist"),
        (["train", "--data", "procedural:shapes", "--images", "8", "--method", "byol"], "unknown method"),
        (["train", "--data", "procedural:shapes", "--images", "8", "--where", "novalue"], "KEY=VALUE"),
        (["probe"], "exactly one of"),
        (["probe", "--random-init", "--pixels"], "exactly one of"),
        (["probe", "--checkpoint", "/nonexistent/model.pt"], "no checkpoint"),
    ],
)
def test_bad_input_is_one_clear_line_not_a_traceback(app, tmp_path, args, message):
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "x"), "--epochs", "1", *TINY]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="Debian dataset-fashion-mnist is not installed")
def test_probe_random_init_and_checkpoint_write_accuracy_json(app, tmp_path):
    small = ["--train-size", "200", "--test-size", "100", "--threads", "1"]
    out = tmp_path / "random.json"
    result = CliRunner().invoke(app, ["probe", "--random-init", "--arch", "resnet10", "--width", "4",
                                      "--size", "16", "--out", str(out), *small])
    assert result.exit_code == 0, result.output
    floor = json.loads(out.read_text())
    assert 0.3 < floor["linear"] <= 1.0 and floor["train"] == 200 and floor["size"] == 16

    run = tmp_path / "run"
    CliRunner().invoke(app, ["train", "--data", "procedural:spectral", "--images", "32", "--epochs", "1",
                             "--out", str(run), *TINY])
    result = CliRunner().invoke(app, ["probe", "--checkpoint", str(run / "model.pt"), *small])
    assert result.exit_code == 0, result.output
    probed = json.loads((run / "probe.json").read_text())
    assert probed["size"] == 16  # the checkpoint's training size is the default probe size
    assert set(probed) >= {"linear", "knn", "subject", "test"}
