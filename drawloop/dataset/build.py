"""Build a dataset: plan the jobs, draw them concurrently and durably, then curate and export.

    result = build_dataset("shapes", samples=2, out="data/shapes", settings=Settings.from_env(max_iters=2),
                           concurrency=4)
    result.stats.done, result.summary["kept"], result.root / "README.md"

    curate_dataset("data/shapes", dedup=0.9)      # re-curate and re-export with another threshold

A drawing counts as done only once its PNG and code are on disk (written atomically, fsync'd) and
its row is committed to manifest.sqlite. Kill the process at any moment and run the same command
again: committed drawings are kept as they are, threads that were half-way resume from their last
checkpoint (work/checkpoints.sqlite), nothing is drawn twice and nothing committed is lost.

With checkpoint="postgresql://..." (--checkpoint, or $DRAWLOOP_CHECKPOINT) the manifest and the
checkpoints live in the dataset's own schema of that database instead (ROOT/postgres.json names
it), and the folder may be on shared storage: the same command on another machine that mounts it
resumes the build. One driver at a time per dataset, also across machines (Manifest.claim).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shlex
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from drawloop.config import Settings
from drawloop.dataset import export, formats
from drawloop.dataset.curate import EMBEDDERS, SCOPES, curate, make_embedder
from drawloop.dataset.manifest import JobRow, Manifest, is_dataset, open_manifest
from drawloop.dataset.plan import iter_jobs, select_concepts
from drawloop.dataset.reader import DatasetBusy, find_drawing
from drawloop.dataset.splits import VALIDATION, assign, check_share, concept_split
from drawloop.graphs.batch import BatchRunner, BatchStats, GraphCache, ThreadJob, ThreadOutcome
from drawloop.runs import CODE_SUFFIX, ArtifactStore, postgres_checkpointer, sqlite_checkpointer
from drawloop.state import attempt_score
from drawloop.trace.events import TraceEvent, TraceWriter

MAX_LOCAL_SLOTS = 8        # llama.cpp slots for the embedded model; each gets its own 4k context
FIXED_SETTINGS = ("language", "size")   # a dataset mixes no canvas sizes or drawing languages


@dataclass
class Hooks:
    """Callbacks for watching a build: statistics, every trace event, every committed drawing, notes."""

    on_progress: Callable[[BatchStats], None] | None = None
    on_event: Callable[[TraceEvent], None] | None = None
    on_drawing: Callable[[dict], None] | None = None
    log: Callable[[str], None] = lambda _: None


@dataclass
class BuildResult:
    root: Path
    stats: BatchStats
    summary: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)   # this selection's jobs: pending/done/failed


@contextlib.contextmanager
def exclusive(root: Path):
    """One build or curation per dataset folder at a time. The lock dies with its process, so a
    SIGKILLed build never leaves the folder locked."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetBusy(f"another drawloop process is building or curating {root}; wait for it "
                             "(or stop it) and run again") from None
        yield


def _usage(attempts: list[dict]) -> dict[str, int]:
    totals = {"tokens_in": 0, "tokens_out": 0}
    for attempt in attempts:
        for part in (attempt.get("usage"), (attempt.get("recognition") or {}).get("usage"),
                     (attempt.get("critique") or {}).get("usage")):
            for key in totals:
                totals[key] += int((part or {}).get(key) or 0)
    return totals


def drawing_record(job: JobRow, outcome: ThreadOutcome, png: bytes, model: str, settings: Settings,
                   split: str = "train") -> dict:
    """The metadata row of one finished drawing (what metadata.jsonl says about it), its files in
    the folder of `split` (curation may move them: duplicates/, or another split)."""
    state, best = outcome.state, outcome.best
    attempts = state.get("attempts") or []
    recognition = best.get("recognition") or {}
    critique = best.get("critique") or {}
    code = best.get("code", "")
    folder = f"{split}/{job.id}"
    return {
        "id": job.id, "concept": job.concept, "level": job.level, "category": job.category, "slug": job.slug,
        "sample": job.sample, "language": best.get("language", settings.language), "size": settings.size,
        "file_name": folder + ".png", "code": folder + CODE_SUFFIX.get(best.get("language", "svg"), ".txt"),
        "score": round(attempt_score(best), 4), "scores": critique.get("scores") or {},
        "recognition": {k: recognition.get(k) for k in ("label", "correct", "confidence", "source")},
        "recognized": bool(recognition.get("correct")),
        "choices": list(state.get("choices") or []),
        "iterations": len(attempts), "best_iteration": state.get("best"), "stop_reason": state.get("stop_reason"),
        "scores_by_iteration": [round(attempt_score(a), 4) for a in attempts],
        "model": model, "seed": outcome.job.thread_seed, "temperature": job.temperature,
        "tries": outcome.job.tries + 1, "thread_id": outcome.job.thread_id,
        "png_sha256": hashlib.sha256(png).hexdigest(), "code_sha256": hashlib.sha256(code.encode()).hexdigest(),
        **_usage(attempts),
        "seconds": round(sum(sum((a.get("seconds") or {}).values()) for a in attempts), 3),
    }


def _model_name(settings: Settings, agents: dict | None = None) -> str:
    """What metadata says drew the pictures: provider:model, or the class of a custom drawer."""
    from drawloop.llm import parse_model_spec

    drawer = (agents or {}).get("drawer")
    if drawer is not None and not isinstance(drawer, str):
        return f"custom:{type(drawer).__name__}"
    provider, name = parse_model_spec(settings.model)
    return f"{provider}:{Path(name).name if provider == 'local' else name}"


def _check_settings(manifest: Manifest, settings: Settings, root: Path) -> None:
    info = manifest.info()
    for key in FIXED_SETTINGS:
        if key in info and info[key] != getattr(settings, key):
            raise ValueError(f"{root} was built with --{key} {info[key]}; rerun with the same --{key} or "
                             f"use another --out (a dataset does not mix {key}s)")


def _missing_files(root: Path, jobs: Iterable[JobRow]) -> list[str]:
    """Done jobs whose PNG is in no split folder nor duplicates/ (deleted by hand?): redraw them."""
    return [job.id for job in jobs if job.status == "done"
            and find_drawing(root, f"images/{job.slug}/{job.id}.png") is None]


def build_dataset(concepts: str, samples: int, out: str | Path, settings: Settings | None = None, *,
                  concurrency: int = 4, tries: int = 3, seed: int = 0, spread: float = 0.2,
                  dedup: float = 0.97, dedup_scope: str = "concept", embedder: str = "efficientnet-lite0",
                  limit: int | None = None,
                  retry_failed: bool = False, models=None, agents: dict | None = None, executor=None,
                  on_progress: Callable[[BatchStats], None] | None = None,
                  on_event: Callable[[TraceEvent], None] | None = None,
                  on_drawing: Callable[[dict], None] | None = None,
                  log: Callable[[str], None] = lambda _: None, command: str | None = None,
                  checkpoint: str | None = None, validation: float | None = None, format: str | None = None,
                  license: str | None = None) -> BuildResult:
    """Draw `samples` drawings of every selected concept into `out`, resumably; then curate and export.

    `validation`: the share of concepts held out (splits.py; default 0.1, or what the dataset had);
    `format`: "imagefolder" (always written) or "webdataset" (tar shards as well, formats.py);
    `license`: the card's license (a Hub license id such as cc-by-4.0; default unknown).

    `models`: an open ModelHandle to reuse (else one is opened, and closed at the end); `agents`:
    instances or names for drawer/renderer/recognizer/critic; `executor`: see graphs/batch.py;
    `checkpoint`: a postgresql:// URL for the manifest and checkpoints (default: SQLite files in
    `out`, or $DRAWLOOP_CHECKPOINT)."""
    settings = settings or Settings.from_env()
    root = Path(out)
    planned = iter_jobs(select_concepts(concepts, limit), samples, seed, settings.temperature, spread)
    if embedder not in EMBEDDERS:
        raise ValueError(f"unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
    if not 0 < dedup <= 1:
        raise ValueError(f"--dedup is a cosine similarity in (0, 1], got {dedup}")
    if dedup_scope not in SCOPES:
        raise ValueError(f"--dedup-scope must be one of {', '.join(SCOPES)}")
    exported = _export_info(validation, format, license)
    command = command or shlex.join([
        "drawloop", "dataset", "build", "--concepts", concepts, "--samples", str(samples), "--out", str(out),
        "--concurrency", str(concurrency), "--model", settings.model,
        *(["--base-url", settings.base_url] if settings.base_url else []),
        "--max-iters", str(settings.max_iters), "--patience", str(settings.patience),
        "--temperature", str(settings.temperature), "--spread", str(spread), "--seed", str(seed),
        "--size", str(settings.size), "--language", settings.language, "--dedup", str(dedup),
        "--dedup-scope", dedup_scope, "--embedder", embedder, *(["--limit", str(limit)] if limit else []),
        *[arg for key, value in exported.items() for arg in (f"--{key}", str(value))]])
    model_name = _model_name(settings, agents)
    with exclusive(root), open_manifest(root, checkpoint) as manifest:
        manifest.claim()
        _check_settings(manifest, settings, root)
        manifest.add_jobs(planned, as_plan=True)   # streamed: the plan is never a list in memory
        if retry_failed:
            manifest.reopen([job.id for job in manifest.iter_jobs("failed", planned=True)], reset_tries=True)
        manifest.reopen(_missing_files(root, manifest.iter_jobs("done", planned=True)))
        manifest.set_info({**{k: getattr(settings, k) for k in FIXED_SETTINGS},
                           "model": model_name, "max_iters": settings.max_iters,
                           "patience": settings.patience, "temperature": settings.temperature, "spread": spread,
                           "seed": seed, "dedup": dedup, "dedup_scope": dedup_scope, "embedder": embedder,
                           "command": command, **exported})
        before = manifest.counts(planned=True)
        done, failed = before["done"], before["failed"]
        stats = BatchStats(total=sum(before.values()), done=done, done_before=done, failed=failed)
        if before["pending"]:
            hooks = Hooks(on_progress, on_event, on_drawing, log)
            stats = _draw(root, manifest, manifest.iter_jobs("pending", planned=True), before["pending"], settings,
                          model_name, stats, concurrency=concurrency, tries=tries, models=models,
                          agents=agents or {}, executor=executor, hooks=hooks)
        counts = manifest.counts(planned=True)
        summary = _curate(root, manifest, log)
    return BuildResult(root, stats, summary, counts)


def _warm_renderer(settings: Settings) -> None:
    from drawloop.renderers import render

    tiny = {"svg": '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="8" height="8"/></svg>',
            "python": "import matplotlib.pyplot as plt\nplt.plot([0, 1])"}
    if settings.language in tiny:
        render(tiny[settings.language], settings.language, settings.size)


def _draw(root: Path, manifest: Manifest, pending: Iterable[JobRow], n_pending: int, settings: Settings,
          model_name: str,
          stats: BatchStats, *, concurrency: int, tries: int, models, agents: dict, executor,
          hooks: Hooks) -> BatchStats:
    """Run the pending jobs to committed drawings (or recorded failures)."""
    from drawloop.llm import open_model, parse_model_spec

    if models is None and parse_model_spec(settings.model)[0] == "local" and not settings.base_url:
        settings = dataclasses.replace(settings, parallel=max(settings.parallel, min(concurrency, MAX_LOCAL_SLOTS)))
    # No model to open when every agent that would need one came as an instance, nor when the threads
    # run in other processes (an executor with remote = True): they open their own (graphs/ray_executor.py).
    remote = bool(getattr(executor, "remote", False))
    owned = not remote and models is None and not all(
        agents.get(k) is not None and not isinstance(agents.get(k), str) for k in ("drawer", "recognizer", "critic"))
    models = open_model(settings) if owned else models
    warming = None
    if not agents.get("renderer") and not remote:
        # The renderer's worker processes start on first use; start them while the model starts,
        # not in front of the first wave of threads.
        warming = threading.Thread(target=_warm_renderer, args=(settings,), daemon=True)
        warming.start()
    if owned:
        hooks.log(f"starting the model: {settings.model}")
        models.open()
    if warming is not None:
        warming.join()
    store = ArtifactStore(root / "work")
    share = float(manifest.info().get("validation", VALIDATION))

    def commit(outcome: ThreadOutcome) -> None:
        job = manifest.job(outcome.job.id)
        png = store.read(outcome.best["image"])
        record = drawing_record(job, outcome, png, model_name, settings, split=concept_split(job.concept, share))
        export.write_atomic(root / record["file_name"], png)
        export.write_atomic(root / record["code"], outcome.best.get("code", ""))
        manifest.commit(job.id, record)    # only now is the drawing done
        if hooks.on_drawing:
            hooks.on_drawing(record)

    def failure(job: ThreadJob, reason: str, final: bool) -> None:
        manifest.fail(job.id, reason, final)

    try:
        place = manifest.postgres       # the checkpoints go where the manifest is
        with (postgres_checkpointer(place) if place else sqlite_checkpointer(root / "work" / "checkpoints.sqlite")) \
                as saver, \
                TraceWriter(root / "work" / "trace.jsonl") as trace:
            def event(e: TraceEvent) -> None:
                trace.write(e)
                if hooks.on_event:
                    hooks.on_event(e)

            if remote:   # a recipe: each worker process builds its graphs, model client and checkpointer
                from drawloop.graphs.ray_executor import PortableGraphs

                if hasattr(executor, "prepare"):
                    executor.prepare(settings, agents)   # e.g. one embedded model per node
                checkpoint = getattr(manifest, "postgres", None) or root / "work" / "checkpoints.sqlite"
                graphs = PortableGraphs(settings, store.run_dir, checkpoint, agents=agents, checkpointer=saver)
            else:
                graphs = GraphCache(settings, models, store, saver, agents=agents)
            runner = BatchRunner(graphs, concurrency=concurrency, max_tries=tries, run_id=root.name,
                                 executor=executor, on_event=event, trace_key=_trace_key(manifest, root))
            runner.stats = stats
            # Every failed try left a row in the manifest, also those --retry-failed wrote off; a fresh
            # set of tries gets fresh threads and seeds, not the ones that failed (a seeded model
            # would repeat its answers).
            failed_tries = Counter(f["id"] for f in manifest.failures())
            jobs = (ThreadJob(job.id, job.concept, job.seed, job.temperature, job.tries,
                              tries_before=max(0, failed_tries[job.id] - job.tries)) for job in pending)
            hooks.log(f"drawing {n_pending} threads ({stats.done} of {stats.total} already done), "
                f"{concurrency} at a time")
            return runner.run(jobs, commit, on_failure=failure, on_progress=hooks.on_progress, total=stats.total,
                              done_before=stats.done)
    finally:
        if owned:
            models.close()


def _trace_key(manifest: Manifest, root: Path) -> str:
    """The build's name in LangSmith's thread ids ("<key>/<job thread>"): the folder's name and a
    random part, made once and kept in the manifest, so a resumed build traces into the same
    threads and two builds in folders of the same name never share one."""
    key = manifest.info().get("trace_key")
    if not key:
        import secrets

        key = f"{root.name}-{secrets.token_hex(4)}"
        manifest.set_info({"trace_key": key})
    return key


def curate_dataset(root: str | Path, dedup: float | None = None, embedder: str | None = None,
                   dedup_scope: str | None = None, log: Callable[[str], None] = lambda _: None,
                   checkpoint: str | None = None, validation: float | None = None, format: str | None = None,
                   license: str | None = None) -> dict[str, Any]:
    """Embed, dedup, split, place files, and write metadata.jsonl (and one per split), curated.txt,
    the index, the contact sheets, README.md and (format "webdataset") the tar shards from what
    the manifest holds. Idempotent; returns the summary. None keeps the dataset's setting."""
    root = Path(root)
    if not is_dataset(root):
        raise ValueError(f"{root} is not a drawloop dataset (no manifest.sqlite or postgres.json)")
    if dedup is not None and not 0 < dedup <= 1:
        raise ValueError(f"--dedup is a cosine similarity in (0, 1], got {dedup}")
    if dedup_scope is not None and dedup_scope not in SCOPES:
        raise ValueError(f"--dedup-scope must be one of {', '.join(SCOPES)}")
    if embedder is not None and embedder not in EMBEDDERS:
        raise ValueError(f"unknown embedder {embedder!r}; choose one of {', '.join(EMBEDDERS)}")
    exported = _export_info(validation, format, license)
    with exclusive(root), open_manifest(root, checkpoint) as manifest:
        manifest.claim()
        changes = {"dedup": dedup, "embedder": embedder, "dedup_scope": dedup_scope, **exported}
        manifest.set_info({k: v for k, v in changes.items() if v is not None})
        return _curate(root, manifest, log)


def _export_info(validation: float | None, format: str | None, license: str | None) -> dict[str, Any]:
    """The export settings given (checked), for the manifest's info; None: keep the dataset's."""
    if license is not None and not license.strip():
        raise ValueError("--license must name a license (a Hub license id such as cc-by-4.0, or other)")
    values = {"validation": None if validation is None else check_share(validation),
              "format": None if format is None else formats.check_format(format),
              "license": None if license is None else license.strip()}
    return {key: value for key, value in values.items() if value is not None}


def _curate(root: Path, manifest: Manifest, log: Callable[[str], None]) -> dict[str, Any]:
    info, records, failures = manifest.info(), manifest.records(), manifest.failures()
    given_up = [dataclasses.asdict(job) for job in manifest.jobs("failed")]
    export.sweep_strays(root, {r["id"] for r in records})
    curation = curate(root, records, make_embedder(info.get("embedder", "efficientnet-lite0")),
                      threshold=float(info.get("dedup", 0.97)), scope=info.get("dedup_scope", "concept"), log=log)
    splits = assign({r["concept"] for r in records}, float(info.get("validation", VALIDATION)))
    rows = export.place(root, records, curation, splits)
    export.write_metadata(root, rows, failures)
    if info.get("format") == "webdataset":
        log(f"writing WebDataset shards to {root / 'webdataset'}")
        formats.write_webdataset(root, rows)
    else:
        formats.remove_webdataset(root)
    summary = export.summarize(rows, curation.diversity, given_up)
    sheets = {}
    for level in summary["levels"]:
        export.contact_sheet(root, level, [r for r in rows if r["level"] == level],
                             root / "contact_sheets" / f"{level}.png")
        sheets[level] = f"contact_sheets/{level}.png"
    export.write_atomic(root / "README.md", export.card(root.name, summary, info, sheets, failures))
    log(f"exported {summary['kept']} kept drawings ({summary['duplicates']} duplicates) to {root}")
    return summary
