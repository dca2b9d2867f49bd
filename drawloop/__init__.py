"""drawloop: language models learn to see by drawing.

    from drawloop import draw, build_refine_graph
    result = draw("a row of bicycles", model="local", max_iters=6)
    result.best_image_path, result.best_score, result.scores, result.stop_reason

    graph = build_refine_graph(critic=MyCritic(), context=ctx)     # swap any agent
    graph.invoke({"concept": "a glowing light bulb"}, {"configurable": {"thread_id": "bulb-1"}})

Public API only; everything else lives in its module (see README and design.md).
"""

import logging

from drawloop.api import DrawResult, draw
from drawloop.config import Settings
from drawloop.graphs.refine import build_refine_graph
from drawloop.graphs.stopping import StopRule
from drawloop.state import Attempt, Critique, DrawState, Drawing, Recognition

__version__ = "0.1.0"

# drawloop logs under the "drawloop" logger (drawloop.llm, drawloop.local_model, drawloop.graphs.batch,
# ...); silent unless the application configures logging (`drawloop -v` does: INFO, -vv: DEBUG).
logging.getLogger("drawloop").addHandler(logging.NullHandler())


def load_concepts(levels=None):
    """The Visual Aptitude Dataset concepts (see drawloop.concepts)."""
    from drawloop.concepts import load_concepts as _load

    return _load(levels)


__all__ = ["draw", "DrawResult", "build_refine_graph", "StopRule", "Settings", "load_concepts",
           "Attempt", "Critique", "DrawState", "Drawing", "Recognition"]
