"""`drawloop concepts`: browse the Visual Aptitude Dataset.

    drawloop concepts list                              # every level, a table
    drawloop concepts list --level objects --category bird
    drawloop concepts list --level relations --json --limit 5
    drawloop concepts show "a parrot in a jungle"       # level, category, parts, distractors, slug
    drawloop concepts show "a guitar-shaped cake"       # generated concepts resolve too
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Optional

import typer
from rich.table import Table
from drawloop.commands import USAGE, console, err_console



def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Browse the concept set: shapes, objects, scenes, compositions, effects, "
                             "relations.", no_args_is_help=True)
    group.command("list")(list_concepts)
    group.command("show")(show_concept)
    app.add_typer(group, name="concepts")


def list_concepts(
    level: Optional[str] = typer.Option(None, "--level", "-l", help="shapes | objects | scenes | "
                                        "compositions | effects | relations (default: all)."),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="e.g. animal, vehicle, glow, row."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Show at most N concepts."),
) -> None:
    """List concepts with their level, category and distractors."""
    from drawloop.concepts import LEVELS, load_concepts

    if level is not None and level not in LEVELS:
        raise typer.BadParameter(f"{level!r} is not a level; choose from {', '.join(LEVELS)}",
                                 param_hint="--level")
    concepts = load_concepts(level)
    if category is not None:
        known = sorted({c.category for c in concepts})
        concepts = [c for c in concepts if c.category == category]
        if not concepts:
            raise typer.BadParameter(f"no concepts in category {category!r}; categories: "
                                     f"{', '.join(known)}", param_hint="--category")
    total = len(concepts)
    concepts = concepts[:limit] if limit else concepts
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in concepts], indent=1))
        return
    console.print(_table(concepts, total, level or "all levels"))


def show_concept(name: str = typer.Argument(..., help="A concept, e.g. \"a row of bicycles\".")) -> None:
    """Show one concept: level, category, parts, distractors and its dataset folder name."""
    from drawloop.concepts import get_concept, load_concepts, slugify
    from drawloop.dataset.splits import concept_split

    concept = get_concept(name)
    if concept is None:
        import difflib

        names = [c.name for c in load_concepts()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else " Try: drawloop concepts list"
        err_console.print(f"[red]Unknown concept {name!r}.[/]{hint}")
        raise typer.Exit(USAGE)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("name", concept.name)
    grid.add_row("level", concept.level)
    grid.add_row("category", concept.category)
    grid.add_row("parts", ", ".join(concept.parts) or "-")
    grid.add_row("distractors", "\n".join(concept.distractors))
    split = concept_split(concept.name)     # the hash rule at the default share (dataset/splits.py)
    grid.add_row("files", f"{split}/{slugify(concept.name)}-NNNN.png in a dataset ({split} split)")
    console.print(grid)


def _table(concepts: list, total: int, title: str) -> Table:
    table = Table(title=f"{title}: {total} concepts", caption=(
        f"showing {len(concepts)} of {total}" if len(concepts) < total else None))
    table.add_column("#", justify="right", style="dim")
    table.add_column("concept", style="bold")
    table.add_column("level")
    table.add_column("category")
    table.add_column("distractors", style="dim")
    for i, c in enumerate(concepts, 1):
        table.add_row(str(i), c.name, c.level, c.category, ", ".join(c.distractors))
    return table
