"""Datasets of drawings: many concepts, many samples each, drawn resumably, curated and exported.

    from drawloop.dataset import build_dataset, curate_dataset, DrawingDataset
    result = build_dataset("shapes", samples=2, out="data/shapes", settings=Settings.from_env(max_iters=2))
    curate_dataset("data/shapes", dedup=0.9)              # another near-duplicate threshold, no redrawing
    data = DrawingDataset("data/shapes")                  # read it back: rows, (path, label) samples, index

The same from the shell: `drawloop dataset build --concepts shapes --samples 2 --out data/shapes`,
`drawloop dataset info data/shapes`, `drawloop dataset curate data/shapes --dedup 0.9`.

Modules: plan.py (concepts -> jobs with stable ids, seeds, temperatures), manifest.py (the SQLite
ledger), build.py (drawing through graphs/batch.py, durable commits), curate.py (embeddings, FAISS,
near-duplicates, diversity), export.py (files, metadata.jsonl, contact sheets, the card), reader.py.
"""

from drawloop.dataset.build import BuildResult, build_dataset, curate_dataset
from drawloop.dataset.reader import DatasetError, DrawingDataset, image_folder

__all__ = ["build_dataset", "curate_dataset", "BuildResult", "DrawingDataset", "image_folder", "DatasetError"]
