"""Chat models of any LangChain provider, named the way `init_chat_model` names them.

    chat = chat_model("anthropic", "claude-3-5-haiku-latest", temperature=0.7, max_tokens=1200, timeout=180)
    drawloop draw "a cat" --model anthropic:claude-3-5-haiku-latest
    drawloop draw "a cat" --model ollama:qwen2.5-coder:7b

`--model PROVIDER:NAME` works for every provider whose LangChain integration package is
installed. With the `langchain` package installed, models are built through
`langchain.chat_models.init_chat_model` (which knows every provider LangChain knows); without
it, through the table below, which is the same mapping (provider -> package and class). A
provider whose package is missing is a clear error that names the package to install.

Settings are passed only where the class has a field for them (max_tokens is `num_predict` for
Ollama, `max_output_tokens` for Gemini; a class without a timeout field gets none), so one
Settings object fits every provider. Keys come from each provider's own environment variable
(ANTHROPIC_API_KEY, GOOGLE_API_KEY, ...); DRAWLOOP_API_KEY is passed when set. `openai` and
`local` keep their own route in llm.py (the bounded transport, --base-url for any
OpenAI-compatible server).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# provider -> (module, class, pip package): langchain's init_chat_model table.
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "openai": ("langchain_openai", "ChatOpenAI", "langchain-openai"),
    "azure_openai": ("langchain_openai", "AzureChatOpenAI", "langchain-openai"),
    "anthropic": ("langchain_anthropic", "ChatAnthropic", "langchain-anthropic"),
    "google_genai": ("langchain_google_genai", "ChatGoogleGenerativeAI", "langchain-google-genai"),
    "google_vertexai": ("langchain_google_vertexai", "ChatVertexAI", "langchain-google-vertexai"),
    "google_anthropic_vertex": ("langchain_google_vertexai.model_garden", "ChatAnthropicVertex",
                                "langchain-google-vertexai"),
    "bedrock": ("langchain_aws", "ChatBedrock", "langchain-aws"),
    "bedrock_converse": ("langchain_aws", "ChatBedrockConverse", "langchain-aws"),
    "cohere": ("langchain_cohere", "ChatCohere", "langchain-cohere"),
    "fireworks": ("langchain_fireworks", "ChatFireworks", "langchain-fireworks"),
    "together": ("langchain_together", "ChatTogether", "langchain-together"),
    "mistralai": ("langchain_mistralai", "ChatMistralAI", "langchain-mistralai"),
    "groq": ("langchain_groq", "ChatGroq", "langchain-groq"),
    "ollama": ("langchain_ollama", "ChatOllama", "langchain-ollama"),
    "deepseek": ("langchain_deepseek", "ChatDeepSeek", "langchain-deepseek"),
    "xai": ("langchain_xai", "ChatXAI", "langchain-xai"),
    "perplexity": ("langchain_perplexity", "ChatPerplexity", "langchain-perplexity"),
    "nvidia": ("langchain_nvidia_ai_endpoints", "ChatNVIDIA", "langchain-nvidia-ai-endpoints"),
    "ibm": ("langchain_ibm", "ChatWatsonx", "langchain-ibm"),
    "huggingface": ("langchain_huggingface", "ChatHuggingFace", "langchain-huggingface"),
}
# What users also type; langchain's names are the canonical ones.
ALIASES = {"google": "google_genai", "gemini": "google_genai", "vertexai": "google_vertexai",
           "mistral": "mistralai", "azure": "azure_openai", "aws": "bedrock_converse"}
# The same setting under other names in some classes (the first one the class has is used).
SYNONYMS = {"max_tokens": ("max_tokens", "num_predict", "max_output_tokens", "max_new_tokens"),
            "timeout": ("timeout", "request_timeout", "default_request_timeout"),
            "base_url": ("base_url", "api_base", "endpoint_url", "anthropic_api_url")}


class ProviderNotInstalled(ValueError):
    """The provider is known but its LangChain integration package is not installed."""


def canonical(provider: str) -> str:
    name = (provider or "").strip().lower().replace("-", "_")
    return ALIASES.get(name, name)


def _langchain_init():
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        return None
    return init_chat_model


def known(provider: str) -> bool:
    """A provider drawloop can name (installed or not); with langchain installed, any name."""
    return canonical(provider) in PROVIDERS or _langchain_init() is not None


def installed(provider: str) -> bool:
    entry = PROVIDERS.get(canonical(provider))
    if entry is None:
        return _langchain_init() is not None
    try:
        return importlib.util.find_spec(entry[0].split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def installed_providers() -> list[str]:
    return [name for name in PROVIDERS if installed(name)]


def check_installed(provider: str) -> None:
    """Fail before any work starts when the provider's package is missing: say what to install."""
    name = canonical(provider)
    if name in PROVIDERS and not installed(name):
        package = PROVIDERS[name][2]
        raise ProviderNotInstalled(f"--model {provider}:... needs the {package} package: pip install {package}")
    if name not in PROVIDERS and _langchain_init() is None:
        raise ValueError(f"unknown model provider {provider!r}; known: local, {', '.join(PROVIDERS)} "
                         "(or install langchain for every provider init_chat_model knows)")


def chat_class(provider: str):
    module, cls, _ = PROVIDERS[canonical(provider)]
    check_installed(provider)
    return getattr(importlib.import_module(module), cls)


def fitting_kwargs(cls, **wanted: Any) -> dict[str, Any]:
    """`wanted` renamed to what `cls` calls them, and dropped where it has no such field."""
    fields = getattr(cls, "model_fields", {}) or {}
    names = set(fields) | {f.alias for f in fields.values() if getattr(f, "alias", None)}
    out: dict[str, Any] = {}
    for key, value in wanted.items():
        if value is None:
            continue
        for candidate in SYNONYMS.get(key, (key,)):
            if candidate in names:
                out[candidate] = value
                break
    return out


def chat_model(provider: str, name: str, **settings: Any):
    """A BaseChatModel for PROVIDER:NAME. `settings` (temperature, max_tokens, timeout, base_url,
    api_key, max_retries, ...) are passed where the provider's class takes them."""
    provider = canonical(provider)
    if not name:
        raise ValueError(f"--model {provider}:NAME needs a model name")
    check_installed(provider)
    init = _langchain_init()
    if provider not in PROVIDERS:   # langchain knows it, drawloop's table does not: pass settings as they are
        return init(name, model_provider=provider, **{k: v for k, v in settings.items() if v is not None})
    cls = chat_class(provider)
    kwargs = fitting_kwargs(cls, **settings)
    if init is not None:
        return init(name, model_provider=provider, **kwargs)
    if provider == "huggingface":   # langchain builds it from a pipeline endpoint: the same here
        return cls.from_model_id(model_id=name, task="text-generation", **kwargs)
    key = "model_id" if provider in ("ibm", "bedrock") else "model"
    return cls(**{key: name}, **kwargs)
