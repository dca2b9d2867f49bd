"""The agent registry: names, language routing, and plugins installed through entry points."""

import io
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from conftest import APPLE, FakeOpenAI
from drawloop.agents import registry
from drawloop.agents.registry import AgentContext, PluginError, available, register, reload_plugins, resolve
from drawloop.config import Settings
from drawloop.renderers import RenderResult

PLUGIN_SRC = Path(__file__).parent / "plugin_pkg"


def tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    return buffer.getvalue()


class StampRenderer:
    """Renders any code as a small red PNG and remembers what it was asked."""

    calls = []

    def render(self, code, language="svg", size=256):
        StampRenderer.calls.append((code, language))
        return RenderResult(ok=True, png=tiny_png(), engine="stamp")


@pytest.fixture(autouse=True)
def clean_registry():
    before = {kind: dict(names) for kind, names in registry._REGISTRY.items()}
    yield
    for kind, names in before.items():
        registry._REGISTRY[kind].clear()
        registry._REGISTRY[kind].update(names)


def test_instances_pass_through_and_unknown_names_list_the_known_ones():
    critic = object()
    assert resolve("critic", critic) is critic
    with pytest.raises(ValueError, match="no critic named 'nope'; available: .*default"):
        resolve("critic", "nope")
    with pytest.raises(ValueError, match="unknown agent kind 'painter'"):
        register("painter", "x")


def test_model_free_agents_build_without_a_context_and_model_agents_say_what_they_need():
    assert hasattr(resolve("renderer", "svg"), "render")
    with pytest.raises(RuntimeError, match="needs a model"):
        resolve("drawer", "llm")


def test_default_renderer_routes_new_languages_to_the_renderer_registered_under_their_name():
    StampRenderer.calls = []
    register("renderer", "stamp")(lambda ctx: StampRenderer())
    router = resolve("renderer", "default", AgentContext(settings=Settings()))
    assert router.render("fd 10", language="stamp", size=64).ok
    assert StampRenderer.calls == [("fd 10", "stamp")]
    svg = router.render(APPLE, language="svg", size=64)  # built-in languages still go to the built-in renderer
    assert svg.ok and StampRenderer.calls == [("fd 10", "stamp")]
    with pytest.raises(ValueError, match="no renderer for the drawing language 'klingon'.*register"):
        router.render("x", language="klingon")


def test_a_broken_plugin_fails_clearly_when_used_and_does_not_hide_the_others(monkeypatch):
    eps = [EntryPoint("critic.snapped", "no_such_module_xyz:factory", "drawloop.agents"),
           EntryPoint("critic.fine", "drawloop.agents.critic:Critic", "drawloop.agents"),
           EntryPoint("weird-name", "x:y", "drawloop.agents"),
           EntryPoint("critic.default", "no_such_module_xyz:factory", "drawloop.agents")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "drawloop.agents" else [])
    reload_plugins()
    try:
        assert {"snapped", "fine", "default"} <= set(available("critic"))
        assert registry.is_plugin("critic", "snapped") and not registry.is_plugin("critic", "default")
        with pytest.raises(PluginError, match="'critic.snapped'.*no_such_module_xyz.*ModuleNotFoundError"):
            resolve("critic", "snapped")
        assert resolve("critic", "default", AgentContext(Settings(extra={"weights": {"sanity": 1.0}})))
    finally:
        monkeypatch.undo()
        reload_plugins()
    assert "snapped" not in available("critic")


# -- a real package, installed with pip, found through its entry points --------------------------

@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """pip-installs tests/plugin_pkg into a temporary target and puts it on sys.path."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(PLUGIN_SRC, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--disable-pip-version-check", "--target", str(target), str(source)],
                   check=True, capture_output=True, timeout=300)
    assert list(target.glob("drawloop_plugin_demo-*.dist-info"))
    sys.path.insert(0, str(target))
    reload_plugins()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("drawloop_plugin_demo", None)
    reload_plugins()


def test_installed_plugin_is_found(installed_plugin):
    assert "plugin_fixed" in available("critic") and registry.is_plugin("critic", "plugin_fixed")
    assert "plugin_corners" in available("scorer")
    with pytest.raises(PluginError, match="drawloop-plugin-demo.*drawloop_plugin_demo.missing"):
        resolve("critic", "plugin_broken")


def test_installed_plugin_critic_is_used_by_draw(installed_plugin, fake_server, tmp_path):
    import drawloop

    FakeOpenAI.concept = "a red apple"
    result = drawloop.draw("a red apple", model="openai:fake", base_url=fake_server, runs_dir=str(tmp_path),
                           max_iters=2, patience=1, critic="plugin_fixed")
    assert result.scores == [0.42, 0.42]
    assert result.attempts[0]["critique"]["feedback"] == "The plugin critic looked at it."
    assert not any("SCORE:" in r["messages"][-1]["content"] for r in FakeOpenAI.requests)  # the LLM critic never ran


def test_installed_plugin_scorer_is_used_by_name_from_the_command_line(installed_plugin, fake_server, tmp_path):
    import json

    from typer.testing import CliRunner

    from drawloop.cli import build_app

    FakeOpenAI.concept = "a red apple"
    out = CliRunner().invoke(build_app(), ["draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server,
                                           "--max-iters", "1", "--weights", "plugin_corners=1", "--out", str(tmp_path),
                                           "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    records = [json.loads(line) for line in (Path(summary["run_dir"]) / "trace.jsonl").read_text().splitlines()]
    critique = next(r for r in records if r["node"] == "critique" and r["phase"] == "end")
    assert critique["scores"] == {"plugin_corners": 1.0}
