"""Your own LangChain chat model does the drawing: any BaseChatModel goes into draw(chat_model=...).

    python examples/own_chat_model.py                    # offline: a scripted chat model defined below
    python examples/own_chat_model.py --provider anthropic:claude-3-5-haiku-latest   # any installed provider
    DRAWLOOP_EXAMPLE_PROVIDER=ollama:qwen2.5-coder python examples/own_chat_model.py
    python examples/own_chat_model.py --model openai:NAME --base-url http://host:8000/v1   # a ChatOpenAI of yours

drawloop wraps the model in its calling discipline (retries that honour Retry-After, --rpm, empty
answers, token counts) and keeps the model's own settings (temperature, max tokens, keys).
`recognizer_chat_model=` and `critic_chat_model=` give those roles models of their own; here a
second instance reads the code back. `on_token` shows the drawer's answer as it streams.
"""

from __future__ import annotations

import argparse
import json
import os
import re

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

import drawloop


class ScriptedArtist(BaseChatModel):
    """A chat model that needs no server: it draws a red disc with a stem for any concept, picks
    the option naming `concept` when asked what a drawing shows, and rates every drawing 7/10."""

    concept: str = "a red apple"
    model_name: str = "scripted-artist"

    @property
    def _llm_type(self) -> str:
        return "scripted-artist"

    def _answer(self, messages) -> str:
        prompt = messages[-1].content if isinstance(messages[-1].content, str) else ""
        if "Choose exactly one option" in prompt:
            options = dict(re.findall(r"^([A-Z])\. (.+)$", prompt, re.M))
            return next((letter for letter, option in options.items() if option == self.concept), "A")
        if "SCORE:" in prompt or "score" in prompt.lower() and "fixes" in prompt.lower():
            return "SCORE: 7\nFIXES:\n- add a leaf"
        return ('```svg\n<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">\n'
                '<rect width="100" height="100" fill="#fff"/>\n<circle cx="50" cy="55" r="30" fill="#d22"/>\n'
                '<rect x="48" y="15" width="4" height="15" fill="#630"/>\n</svg>\n```')

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._answer(messages)))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        text = self._answer(messages)
        for i in range(0, len(text), 16):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text[i:i + 16]))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def make_model(args, concept: str) -> BaseChatModel:
    """Your model: a provider's class, a ChatOpenAI for a compatible server, or the offline one."""
    provider = args.provider or os.environ.get("DRAWLOOP_EXAMPLE_PROVIDER")
    if provider:
        from drawloop.providers import chat_model

        name, _, model = provider.partition(":")
        return chat_model(name, model, temperature=0.7, max_tokens=1200)   # "pip install ..." if missing
    if args.model:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=args.model.partition(":")[2] or args.model, base_url=args.base_url,
                          api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"), temperature=0.7, max_tokens=1200)
    return ScriptedArtist(concept=concept)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("concept", nargs="?", default="a red apple")
    parser.add_argument("--provider", help="PROVIDER:NAME of an installed LangChain provider")
    parser.add_argument("--model", help="openai:NAME, with --base-url for a compatible server")
    parser.add_argument("--base-url")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--max-iters", type=int, default=2)
    args = parser.parse_args(argv)

    model = make_model(args, args.concept)
    tokens = []
    result = drawloop.draw(args.concept, chat_model=model, recognizer_chat_model=make_model(args, args.concept),
                           runs_dir=args.runs_dir, max_iters=args.max_iters,
                           on_token=lambda text, meta: tokens.append(text))
    print(f"{result.model}: scores {result.scores}, seen as {result.to_dict()['recognized']}, "
          f"{len(tokens)} streamed chunks; {result.run_dir}")
    outcome = {"example": "own_chat_model", "run_dir": str(result.run_dir), "model": result.model,
               "scores": result.scores, "recognized": result.to_dict()["recognized"], "streamed": len(tokens),
               "drawn": "".join(tokens).count("</svg>")}
    print(json.dumps(outcome))
    return outcome


if __name__ == "__main__":
    main()
