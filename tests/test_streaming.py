"""The drawer's tokens stream into the live view (LangGraph `messages` mode next to `custom`): the
last lines of the draft under the spinner, a runaway draft still cut by the drawer's guard, and
`drawloop draw --json` unchanged."""

import io
import json
import threading

from rich.console import Console
from typer.testing import CliRunner

import drawloop
from conftest import APPLE, FakeOpenAI, SmartChat
from drawloop.trace.events import TraceEvent
from drawloop.trace.view import DRAFT_LINES, LiveView

MULTILINE_APPLE = APPLE.replace("><", ">\n<")


def text_of(view: LiveView, width: int = 120) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(view.render())
    return console.export_text()


class Snapshots:
    """Hands tokens to the view and renders it now and then, as the live display would."""

    def __init__(self, view: LiveView):
        self.view, self.frames, self.metas = view, [], []

    def __call__(self, text: str, meta: dict) -> None:
        self.view.token(text, meta)
        self.metas.append(meta)
        if self.view.running == "draw" and len(self.metas) % 5 == 0:
            self.frames.append(text_of(self.view))


def test_the_live_view_shows_the_drafts_last_lines_as_they_stream(tmp_path):
    view = LiveView("a red apple")
    watch = Snapshots(view)
    result = drawloop.draw("a red apple", chat_model=SmartChat(svg=MULTILINE_APPLE, chunk=7), runs_dir=str(tmp_path),
                           max_iters=1, on_event=view.update, on_token=watch)
    assert result.best["code"]
    assert view.tokens_seen > 20 and {m["langgraph_node"] for m in watch.metas} == {"draw"}
    frame = watch.frames[-1]
    spinner_line = next(i for i, line in enumerate(frame.splitlines()) if "draw …" in line)
    draft = frame.splitlines()[spinner_line + 1:spinner_line + 1 + DRAFT_LINES]
    assert len(draft) == DRAFT_LINES and draft[0].lstrip().startswith("draft │")
    assert any("<circle" in line or "<rect" in line or "</svg>" in line for line in draft)
    # the frames keep their height while the draft grows: no jumping screen
    assert len({len(f.splitlines()) for f in watch.frames}) == 1
    assert not view.drafts and "draft │" not in text_of(view)   # written: the row says the rest


def test_draft_lines_are_cut_to_the_width_and_cleaned():
    view = LiveView("a kite")
    view.update(TraceEvent(node="draw", phase="start"))
    view.token("<svg>\n\x1b[2J<path d='" + "L1 1 " * 200, {"langgraph_node": "draw", "message_id": "a"})
    view.token("ignored", {"langgraph_node": "recognize", "message_id": "b"})
    text = text_of(view, width=60)
    assert "\x1b" not in text and "ignored" not in text
    assert all(len(line) <= 60 for line in text.splitlines())
    view.token("<svg>retry", {"langgraph_node": "draw", "message_id": "c"})   # a retried answer starts afresh
    assert list(view.drafts.values())[0]["text"] == "<svg>retry"


class Runaway(SmartChat):
    """Starts a drawing, then writes the same path command forever (until the stream is closed)."""

    yielded: int = 0

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        from langchain_core.messages import AIMessageChunk
        from langchain_core.outputs import ChatGenerationChunk

        self.calls.append(("stream", messages[-1].content))
        pieces = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256">\n', '<path d="M10 10']
        while True:
            text = pieces.pop(0) if pieces else " L20 20"
            self.yielded += 1
            piece = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=piece)
            yield piece


def test_the_loop_guard_still_stops_a_runaway_draft_while_it_streams(tmp_path):
    view, chat = LiveView("a red apple"), Runaway()
    done = threading.Event()
    result = {}

    def run():
        result["r"] = drawloop.draw("a red apple", chat_model=chat, runs_dir=str(tmp_path), max_iters=1,
                                    on_event=view.update, on_token=view.token)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(120), "the runaway draft was not stopped"
    # cut by the repetition guard (it looks every 16 chunks) after the view saw every chunk stream by
    assert 16 <= chat.yielded <= 64 and view.tokens_seen == chat.yielded
    assert "L20 20" in result["r"].attempts[0]["raw"]


def test_draw_json_is_unchanged_and_requests_are_the_same_with_the_live_view(fake_server, tmp_path):
    from drawloop.api import DrawResult
    from drawloop.cli import build_app

    FakeOpenAI.concept = "a red apple"
    args = ["draw", "a red apple", "--model", "openai:fake", "--base-url", fake_server, "--max-iters", "1",
            "--seed", "3", "--out"]
    result = CliRunner().invoke(build_app(), args + [str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)   # the whole output is the JSON summary, no token in it
    empty = DrawResult(concept="", run_dir=tmp_path, attempts=[], best_index=None, stop_reason=None, model="")
    assert set(summary) == set(empty.to_dict()) and summary["best_recognized_as"] == "a red apple"
    as_json = [(r["messages"][0]["role"], bool(r.get("stream"))) for r in FakeOpenAI.requests]

    FakeOpenAI.requests.clear()
    live = CliRunner().invoke(build_app(), args + [str(tmp_path / "b")])
    assert live.exit_code == 0, live.output
    with_view = [(r["messages"][0]["role"], bool(r.get("stream"))) for r in FakeOpenAI.requests]
    assert with_view == as_json                   # only the drawer streams, as before, view or not
    assert ("system", True) in as_json and ("user", False) in as_json
