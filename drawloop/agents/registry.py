"""Named agents, so the CLI and `build_refine_graph` can take names as well as instances.

    from drawloop.agents.registry import register, resolve, AgentContext

    @register("critic", "harsh")
    def harsh_critic(ctx: AgentContext):
        return Critic([(RenderSanityScorer(), 1.0)])

    critic = resolve("critic", "harsh", ctx)      # or resolve("critic", my_instance) -> my_instance

Kinds: drawer, renderer, recognizer, critic, scorer, judge. Installed packages add agents without
touching this repo through the `drawloop.agents` entry-point group; the entry point's name is
"<kind>.<name>" and its value a factory taking an AgentContext, e.g. in pyproject.toml:

    [project.entry-points."drawloop.agents"]
    "critic.harsh" = "my_pkg.critics:harsh_critic"

Plugins load lazily: a broken one fails with a clear error when its name is used, and never
stops the others from loading. Built-in names win over plugins with the same name.

New drawing languages: register a renderer under the language's name. The default renderer
routes each attempt by its language: svg and python to the built-in renderers, anything else
to the renderer registered under that name. The drawer must write that language too:

    @register("renderer", "turtle")
    def turtle_renderer(ctx): return TurtleRenderer()
    draw("a house", language="turtle", drawer="turtle")     # renderer "default" finds "turtle"

Agents that need no model can be built without a context; `resolve` then uses default settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

from drawloop.config import Settings

KINDS = ("drawer", "renderer", "recognizer", "critic", "scorer", "judge")
Factory = Callable[["AgentContext"], Any]
_REGISTRY: dict[str, dict[str, Factory]] = {kind: {} for kind in KINDS}
_entry_points_loaded = False
_PLUGINS: set[tuple[str, str]] = set()


@dataclass
class AgentContext:
    settings: Settings
    models: Any = None  # drawloop.llm.ModelHandle, or None for agents that need no model

    def chat(self, role: str = "drawer", **kwargs):
        """A ChatLLM for one role (drawer, recognizer, critic): the role's own chat model when one
        was handed in (draw(recognizer_chat_model=...)), else the run's model."""
        if self.models is None:
            raise RuntimeError("this agent needs a model, but the context has none")
        return self.models.chat(role=role, **kwargs)


def register(kind: str, name: str) -> Callable[[Factory], Factory]:
    if kind not in KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; kinds are {', '.join(KINDS)}")

    def decorator(factory: Factory) -> Factory:
        _REGISTRY[kind][name] = factory
        return factory

    return decorator


class PluginError(ValueError):
    """An installed plugin's entry point could not be imported."""


def _plugin_factory(ep: EntryPoint) -> Factory:
    """Import the plugin on first use, so one broken package cannot break every command."""

    def factory(ctx: AgentContext) -> Any:
        try:
            real = ep.load()
        except Exception as exc:
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
            raise PluginError(f"the plugin {ep.name!r} from {dist} failed to load ({ep.value}): "
                              f"{type(exc).__name__}: {exc}") from exc
        return real(ctx)

    factory.__doc__ = f"plugin {ep.value}"
    return factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="drawloop.agents"):
        kind, _, name = ep.name.partition(".")
        if kind in KINDS and name and name not in _REGISTRY[kind]:
            _REGISTRY[kind][name] = _plugin_factory(ep)
            _PLUGINS.add((kind, name))


def reload_plugins() -> None:
    """Forget loaded plugins and scan the entry points again (after installing a package at run time)."""
    global _entry_points_loaded
    for kind, name in _PLUGINS:
        _REGISTRY[kind].pop(name, None)
    _PLUGINS.clear()
    _entry_points_loaded = False
    _load_entry_points()


def available(kind: str) -> list[str]:
    if kind not in KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; kinds are {', '.join(KINDS)}")
    _load_entry_points()
    return sorted(_REGISTRY[kind])


def check_names(**names: str | None) -> None:
    """Fail before any model starts when a name is unknown: check_names(critic="harsh")."""
    for kind, name in names.items():
        if isinstance(name, str) and name not in available(kind):
            raise ValueError(f"no {kind} named {name!r}; available: {', '.join(available(kind)) or 'none'}")


def check_language(language: str) -> None:
    """svg and python have built-in renderers; any other language needs a registered renderer."""
    from drawloop.renderers import LANGUAGES

    if language not in LANGUAGES and language not in available("renderer"):
        known = [*LANGUAGES, *(n for n in available("renderer") if n not in ("default", *LANGUAGES))]
        raise ValueError(f"--language {language!r} has no renderer; known languages: {', '.join(known)}")


def is_plugin(kind: str, name: str) -> bool:
    _load_entry_points()
    return (kind, name) in _PLUGINS


def resolve(kind: str, spec: Any, context: AgentContext | None = None) -> Any:
    """An instance passes through; a name is looked up and built with the context (default
    settings and no model when there is none: enough for agents that need no model)."""
    if not isinstance(spec, str):
        return spec
    names = available(kind)
    factory = _REGISTRY[kind].get(spec)
    if factory is None:
        raise ValueError(f"no {kind} named {spec!r}; available: {', '.join(names) or 'none'}")
    return factory(context or AgentContext(settings=Settings()))


# -- built-in agents ---------------------------------------------------------------------------

@register("drawer", "llm")
def _llm_drawer(ctx: AgentContext):
    from drawloop.agents.drawer import Drawer

    from drawloop.concepts.shapes import SHAPE_TOKENS

    s = ctx.settings
    return Drawer(ctx.chat(max_tokens=s.max_tokens), size=s.size, feedback=s.feedback,
                  shape_llm=ctx.chat(max_tokens=min(s.max_tokens, SHAPE_TOKENS)))


class LanguageRouter:
    """The default renderer: svg and python through drawloop.renderers, any other language
    through the renderer registered under the language's name (built on first use)."""

    def __init__(self, ctx: AgentContext, builtin: Any):
        self.ctx, self.builtin = ctx, builtin
        self._by_language: dict[str, Any] = {}

    def for_language(self, language: str) -> Any:
        from drawloop.renderers import LANGUAGES

        if language in LANGUAGES:
            return self.builtin
        if language not in self._by_language:
            if language in ("default",) or language not in available("renderer"):
                known = sorted(set(LANGUAGES) | set(available("renderer")) - {"default"})
                raise ValueError(f"no renderer for the drawing language {language!r}; register one with "
                                 f"@register('renderer', {language!r}) (known: {', '.join(known)})")
            self._by_language[language] = resolve("renderer", language, self.ctx)
        return self._by_language[language]

    def render(self, code: str, language: str = "svg", size: int = 256):
        return self.for_language(language).render(code, language=language, size=size)


def _builtin_renderer(ctx: AgentContext):
    from drawloop.agents.renderer import RendererAgent

    return RendererAgent(**ctx.settings.extra.get("renderer_options", {}))


@register("renderer", "default")
def _default_renderer(ctx: AgentContext):
    return LanguageRouter(ctx, _builtin_renderer(ctx))


register("renderer", "svg")(_builtin_renderer)      # the built-in renderers under their language's name,
register("renderer", "python")(_builtin_renderer)   # so renderer="svg" reads as the design shows


@register("recognizer", "code")
def _code_recognizer(ctx: AgentContext):
    from drawloop.agents.recognizer import CodeRecognizer

    return CodeRecognizer(ctx.chat(max_tokens=16, temperature=0.0, role="recognizer"))  # room for {"answer": "B"}


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

    return LLMCodeCritic(ctx.chat(max_tokens=200, temperature=0.0, role="critic"))


@register("recognizer", "pixels")
def _pixel_recognizer(ctx: AgentContext):
    """kNN over the human-drawn reference gallery (vision/gallery.py); needs no model."""
    from drawloop.agents.pixel import PixelRecognizer

    return PixelRecognizer()


@register("scorer", "concept")
def _concept_scorer(ctx: AgentContext):
    from drawloop.agents.pixel import ConceptScorer

    return ConceptScorer()


@register("scorer", "structure")
def _structure_scorer(ctx: AgentContext):
    from drawloop.agents.pixel import StructureScorer

    return StructureScorer()


@register("scorer", "vlm")
def _vlm_scorer(ctx: AgentContext):
    """The PNG judged by a vision-language model: --critic-model, at --critic-base-url if given."""
    from drawloop.agents.pixel import VLMCriticScorer

    settings = ctx.settings
    if not settings.critic_model:
        raise ValueError("the vlm scorer needs --critic-model (e.g. openai:gpt-4o-mini)")
    return VLMCriticScorer.from_model(settings.critic_model, base_url=settings.critic_base_url,
                                      api_key=settings.api_key, timeout=settings.request_timeout)


@register("scorer", "clip")
def _clip_scorer(ctx: AgentContext):
    from drawloop.agents.pixel import ClipScorer

    import os

    # No CLIP weights ship offline: the user points at a local open_clip checkpoint.
    return ClipScorer(ctx.settings.extra.get("clip_checkpoint") or os.environ.get("DRAWLOOP_CLIP_CHECKPOINT"))


SCORERS_NEEDING_A_MODEL = frozenset({"llm"})   # the drawer's own model; vlm brings its --critic-model
# Fitted by bench/agreement.py on the held-in half of tests/preferences (31 decisive pairs of the
# local model's drawings, judged by a person): 26/31 agree there, 20/36 (0.56) on the held-out half,
# against 0.47 for the old code-only default. Recognition from code earned no weight: on these
# drawings the 1.5B recognizer's guesses went against people's judgement as often as with them.
DEFAULT_WEIGHTS = {"sanity": 0.5, "recognition": 0.0, "llm": 1.0, "concept": 1.0, "structure": 1.0}
PIXEL_WEIGHTS = {"sanity": 1.0, "recognition": 1.0, "llm": 1.0, "concept": 1.0, "structure": 1.0}


def _weighted_critic(ctx: AgentContext, defaults: dict[str, float]):
    from drawloop.agents.critic import Critic

    weights = dict(ctx.settings.extra.get("weights") or defaults)
    if ctx.settings.critic_model:
        weights.setdefault("vlm", 2.0)  # a model that sees the picture outweighs text-only judges
    return Critic([(resolve("scorer", name, ctx), weight) for name, weight in weights.items() if weight > 0])


@register("critic", "default")
def _default_critic(ctx: AgentContext):
    """Scorers named in settings.extra['weights'] (default: DEFAULT_WEIGHTS, chosen by agreement with
    people in bench/agreement.py), plus the vision-language critic when --critic-model is set."""
    return _weighted_critic(ctx, DEFAULT_WEIGHTS)


@register("critic", "pixels")
def _pixel_critic(ctx: AgentContext):
    """Every offline scorer at weight 1 (the default critic's set, before its weights were fitted)."""
    return _weighted_critic(ctx, PIXEL_WEIGHTS)


@register("judge", "score")
def _score_judge(ctx: AgentContext):
    """Offline: the candidate replaces the best when the critic scores it higher by min_delta."""
    from drawloop.agents.judge import ScoreJudge

    return ScoreJudge(margin=ctx.settings.min_delta)


@register("judge", "vlm")
def _vlm_judge(ctx: AgentContext):
    """Both pictures shown to the --critic-model; the score judge when it cannot answer."""
    from drawloop.agents.judge import VLMJudge

    settings = ctx.settings
    if not settings.critic_model:
        raise ValueError("the vlm judge needs --critic-model (e.g. openai:gpt-4o-mini)")
    return VLMJudge.from_model(settings.critic_model, base_url=settings.critic_base_url, api_key=settings.api_key,
                               timeout=settings.request_timeout, margin=settings.min_delta)


@register("judge", "default")
def _default_judge(ctx: AgentContext):
    """The vision-language judge when --critic-model is set, otherwise the score judge."""
    return _vlm_judge(ctx) if ctx.settings.critic_model else _score_judge(ctx)
