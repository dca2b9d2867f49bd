"""Named agents, so the CLI and `build_refine_graph` can take names as well as instances.

    from drawloop.agents.registry import register, resolve, AgentContext

    @register("critic", "harsh")
    def harsh_critic(ctx: AgentContext):
        return Critic([(RenderSanityScorer(), 1.0)])

    critic = resolve("critic", "harsh", ctx)      # or resolve("critic", my_instance) -> my_instance

Kinds: drawer, renderer, recognizer, critic, scorer. Installed packages add agents without
touching this repo through the `drawloop.agents` entry-point group; the entry point's name is
"<kind>.<name>" and its value a factory taking an AgentContext, e.g. in pyproject.toml:

    [project.entry-points."drawloop.agents"]
    "critic.harsh" = "my_pkg.critics:harsh_critic"
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from drawloop.config import Settings

KINDS = ("drawer", "renderer", "recognizer", "critic", "scorer")
Factory = Callable[["AgentContext"], Any]
_REGISTRY: dict[str, dict[str, Factory]] = {kind: {} for kind in KINDS}
_entry_points_loaded = False


@dataclass
class AgentContext:
    settings: Settings
    models: Any = None  # drawloop.llm.ModelHandle, or None for agents that need no model

    def chat(self, **kwargs):
        if self.models is None:
            raise RuntimeError("this agent needs a model, but the context has none")
        return self.models.chat(**kwargs)


def register(kind: str, name: str) -> Callable[[Factory], Factory]:
    if kind not in KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; kinds are {', '.join(KINDS)}")

    def decorator(factory: Factory) -> Factory:
        _REGISTRY[kind][name] = factory
        return factory

    return decorator


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="drawloop.agents"):
        kind, _, name = ep.name.partition(".")
        if kind in KINDS and name:
            _REGISTRY[kind].setdefault(name, ep.load())


def available(kind: str) -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY[kind])


def resolve(kind: str, spec: Any, context: AgentContext | None) -> Any:
    """An instance passes through; a name is looked up and built with the context."""
    if not isinstance(spec, str):
        return spec
    _load_entry_points()
    factory = _REGISTRY[kind].get(spec)
    if factory is None:
        raise ValueError(f"no {kind} named {spec!r}; available: {', '.join(available(kind)) or 'none'}")
    if context is None:
        raise ValueError(f"building the {kind} {spec!r} by name needs an AgentContext (settings + models)")
    return factory(context)


# -- built-in agents ---------------------------------------------------------------------------

@register("drawer", "llm")
def _llm_drawer(ctx: AgentContext):
    from drawloop.agents.drawer import Drawer

    return Drawer(ctx.chat(max_tokens=ctx.settings.max_tokens), size=ctx.settings.size,
                  feedback=ctx.settings.feedback)


@register("renderer", "default")
def _default_renderer(ctx: AgentContext):
    from drawloop.agents.renderer import RendererAgent

    return RendererAgent(**ctx.settings.extra.get("renderer_options", {}))


@register("recognizer", "code")
def _code_recognizer(ctx: AgentContext):
    from drawloop.agents.recognizer import CodeRecognizer

    return CodeRecognizer(ctx.chat(max_tokens=8, temperature=0.0))


@register("scorer", "sanity")
def _sanity(ctx: AgentContext):
    from drawloop.agents.critic import RenderSanityScorer

    return RenderSanityScorer()


@register("scorer", "recognition")
def _recognition(ctx: AgentContext):
    from drawloop.agents.critic import RecognitionScorer

    return RecognitionScorer()


@register("scorer", "llm")
def _llm_scorer(ctx: AgentContext):
    from drawloop.agents.critic import LLMCodeCritic

    return LLMCodeCritic(ctx.chat(max_tokens=200, temperature=0.0))


DEFAULT_WEIGHTS = {"sanity": 1.0, "recognition": 1.0, "llm": 1.0}


@register("critic", "default")
def _default_critic(ctx: AgentContext):
    """Scorers named in settings.extra['weights'] (default: sanity, recognition, llm)."""
    from drawloop.agents.critic import Critic

    weights = ctx.settings.extra.get("weights") or DEFAULT_WEIGHTS
    scorers = [(resolve("scorer", name, ctx), weight) for name, weight in weights.items() if weight > 0]
    return Critic(scorers)
