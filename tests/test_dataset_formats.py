"""A built dataset in others' formats: concept-level train/validation splits, Hugging Face `datasets`
(imagefolder metadata per split, the card's YAML header), WebDataset tar shards, and datasets built
in the older per-concept layout moving into the split folders.

The `datasets` checks run the real package in a subprocess with HF_DATASETS_OFFLINE=1,
HF_HUB_OFFLINE=1 and a temporary HF_HOME and cache_dir, so nothing reaches the network or the
user's cache (and the offline switches are read when `datasets` is imported, which a subprocess
makes certain)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import yaml
from test_dataset import build
from typer.testing import CliRunner

from drawloop.dataset import DrawingDataset, curate_dataset
from drawloop.dataset.formats import (
    card_header,
    hub_rows,
    write_split_metadata,
    write_webdataset,
)
from drawloop.dataset.reader import find_drawing
from drawloop.dataset.splits import assign, concept_split

NAMES = ("a planted cat", "a planted twin", "a shifted dog", "a varied tree", "a red circle")


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_datasets(script: str, tmp_path: Path, timeout: int = 300) -> dict:
    """Run `script` (which prints one JSON line last) with the real `datasets`, offline."""
    pytest.importorskip("datasets")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Five concepts, three samples each, planted duplicates, WebDataset shards, a license."""
    tmp = tmp_path_factory.mktemp("formats")
    result = build(tmp, NAMES, samples=3, format="webdataset", license="cc-by-4.0")
    return tmp / "data", result


# ---------------------------------------------------------------- splits

def test_splits_are_by_concept_deterministic_and_independent_of_the_other_concepts():
    concepts = [f"concept number {i}" for i in range(400)]
    splits = assign(concepts, 0.1)
    assert assign(list(reversed(concepts)), 0.1) == splits                  # order does not matter
    held = [c for c, s in splits.items() if s == "validation"]
    assert 20 < len(held) < 60                                              # about a tenth
    more = assign(concepts + [f"another concept {i}" for i in range(100)], 0.1)
    assert all(more[c] == splits[c] for c in concepts)                      # adding concepts moves none
    assert all(concept_split(c, 0.1) == s for c, s in splits.items())
    assert set(assign(concepts, 0.0).values()) == {"train"}                 # 0: no validation split
    assert set(assign(concepts, 0.5).values()) == {"train", "validation"}


def test_small_datasets_still_get_both_splits():
    assert assign(["only one"], 0.1) == {"only one": "train"}
    two = assign(["a red circle", "a blue square"], 0.1)
    assert sorted(two.values()) == ["train", "validation"]
    assert set(assign(["x", "y", "z"], 0.9).values()) == {"train", "validation"}   # never all held out
    with pytest.raises(ValueError, match="--validation"):
        assign(["x"], 1.0)


def test_a_build_splits_by_concept_and_writes_split_metadata(built):
    root, result = built
    rows = rows_of(root / "metadata.jsonl")
    by_concept: dict[str, set] = {}
    for row in rows:
        by_concept.setdefault(row["concept"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in by_concept.values())         # one split per concept
    assert {c: s.pop() for c, s in by_concept.items()} == assign(NAMES, 0.1)
    for row in rows:
        folder = "duplicates" if row["duplicate"] else row["split"]
        assert row["file_name"] == f"{folder}/{row['id']}.png" and (root / row["file_name"]).is_file()
        assert row["code"] == f"{folder}/{row['id']}.svg" and (root / row["code"]).is_file()
    for split in ("train", "validation"):
        meta = rows_of(root / split / "metadata.jsonl")
        kept = [r for r in rows if r["split"] == split and not r["duplicate"]]
        assert [m["id"] for m in meta] == [r["id"] for r in kept]
        assert all((root / split / m["file_name"]).is_file() and "/" not in m["file_name"] for m in meta)
        assert all("duplicate" not in m and m["split"] == split for m in meta)
    assert not (root / "images").exists()
    # folders are flat: no concept folder whose name `datasets` could take for a split
    assert not [p for p in (root / "train").iterdir() if p.is_dir()]
    assert result.summary["splits"] == {
        split: {"concepts": len({r["concept"] for r in rows if r["split"] == split}),
                "kept": sum(1 for r in rows if r["split"] == split and not r["duplicate"])}
        for split in ("train", "validation")}


# ---------------------------------------------------------------- Hugging Face datasets

def test_datasets_loads_the_folder_with_its_splits_and_every_column(built, tmp_path):
    root, _ = built
    out = run_datasets(f"""
        import json, datasets
        root, cache = {str(root)!r}, {str(tmp_path / "cache")!r}
        report = {{}}
        for how, data in (("imagefolder", datasets.load_dataset("imagefolder", data_dir=root, cache_dir=cache)),
                          ("card", datasets.load_dataset(root, cache_dir=cache))):
            first = data["validation"][0]
            report[how] = {{
                "splits": {{name: split.num_rows for name, split in data.items()}},
                "columns": sorted(data["train"].column_names),
                "image": [first["image"].size, first["image"].mode],
                "concepts": {{name: sorted(set(split["concept"])) for name, split in data.items()}},
                "recognition": data["train"][0]["recognition"],
            }}
        print(json.dumps(report))
    """, tmp_path)
    rows = [r for r in rows_of(root / "metadata.jsonl") if not r["duplicate"]]
    columns = sorted(set(rows[0]) - {"file_name", "duplicate", "duplicate_of", "duplicate_similarity"} | {"image"})
    for how in ("imagefolder", "card"):
        got = out[how]
        assert got["splits"] == {s: sum(1 for r in rows if r["split"] == s) for s in ("train", "validation")}
        assert got["columns"] == columns                          # every metadata column, the image decoded
        assert got["image"][0] == [64, 64]
        assert not set(got["concepts"]["train"]) & set(got["concepts"]["validation"])
        assert got["recognition"]["correct"] is True and got["recognition"]["source"] == "test"


def test_columns_null_in_one_split_and_typed_in_the_other_still_load(tmp_path):
    """Arrow types each split's metadata on its own; conformed rows keep them equal."""
    from PIL import Image

    root = tmp_path / "d"
    rows = []
    for i, (split, confidence, tags, note) in enumerate([("train", 0.9, ["a"], "x"), ("train", None, ["b"], None),
                                                         ("validation", None, [], None)]):
        (root / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(root / split / f"d-{i:04d}.png")
        (root / split / f"d-{i:04d}.svg").write_text("<svg/>")
        rows.append({"id": f"d-{i:04d}", "concept": f"c{i}", "split": split, "duplicate": False,
                     "file_name": f"{split}/d-{i:04d}.png", "code": f"{split}/d-{i:04d}.svg",
                     "confidence": confidence, "tags": tags, "note": note, "best_iteration": None if i == 2 else i,
                     "scores": {"shape": 1} if i == 0 else {"shape": 0.5, "colour": 0.25}})
    write_split_metadata(root, rows)
    out = run_datasets(f"""
        import json, math, datasets
        data = datasets.load_dataset("imagefolder", data_dir={str(root)!r}, cache_dir={str(tmp_path / "c")!r})
        v = data["validation"][0]
        print(json.dumps({{"n": {{k: s.num_rows for k, s in data.items()}}, "confidence": str(v["confidence"]),
                          "note": v["note"], "tags": v["tags"], "best": v["best_iteration"],
                          "scores": str(data["train"][0]["scores"])}}))
    """, tmp_path)
    assert out["n"] == {"train": 2, "validation": 1}
    assert out["confidence"] == "nan" and out["note"] == ""            # a null float is NaN, a null string ""
    assert out["tags"] == "[]" and out["best"] == "null"               # untypable columns are JSON text
    assert out["scores"] == "{'colour': nan, 'shape': 1.0}"            # a nested object gets every key


def test_hub_rows_type_every_column_once():
    rows = hub_rows([{"a": 1, "b": None, "c": "x", "d": [1], "e": {"k": 1.5}},
                     {"a": 2.5, "b": None, "c": None, "d": [2.0], "e": None}])
    assert rows[0] == {"a": 1.0, "b": None, "c": "x", "d": [1.0], "e": {"k": 1.5}}
    assert rows[1]["c"] == "" and rows[1]["e"]["k"] != rows[1]["e"]["k"]   # NaN
    assert hub_rows([]) == []
    mixed = hub_rows([{"m": 1}, {"m": "one"}])
    assert [r["m"] for r in mixed] == ["1", '"one"']


# ---------------------------------------------------------------- the card

def test_the_card_starts_with_the_hubs_yaml_header(built):
    root, _ = built
    card = (root / "README.md").read_text()
    assert card.startswith("---\n")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "cc-by-4.0" and header["size_categories"] == ["n<1K"]
    assert {"image-classification", "text-to-image"} <= set(header["task_categories"])
    assert header["language"] == ["en"] and "svg" in header["tags"]
    files = {c["split"]: c["path"] for c in header["configs"][0]["data_files"]}
    assert files == {"train": ["train/*.png", "train/metadata.jsonl"],
                     "validation": ["validation/*.png", "validation/metadata.jsonl"]}
    assert "# data: drawings by a language model" in card and "load_dataset(\"imagefolder\"" in card
    assert "validation" in card.split("## Counts")[1].split("|")[0]          # split counts in the prose
    big = yaml.safe_load(card_header("big", {"kept": 25_000, "splits": {"train": {"kept": 25_000}}}, {})[4:-5])
    assert big["size_categories"] == ["10K<n<100K"] and big["license"] == "unknown"
    assert [c["split"] for c in big["configs"][0]["data_files"]] == ["train"]


# ---------------------------------------------------------------- WebDataset

def test_webdataset_shards_hold_every_kept_drawing_grouped_by_key(built):
    root, _ = built
    rows = {r["id"]: r for r in rows_of(root / "metadata.jsonl")}
    seen = {}
    for shard in sorted((root / "webdataset").glob("*.tar")):
        split = shard.name.split("-")[0]
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)
            names = [m.name for m in members]
            keys = [n.split(".", 1)[0] for n in names]
            assert keys == sorted(keys)                                # a sample's files are together
            for key in dict.fromkeys(keys):
                row = rows[key]
                assert sorted(n.split(".", 1)[1] for n in names if n.split(".", 1)[0] == key) == \
                    ["json", "png", "svg", "txt"]
                assert tar.extractfile(f"{key}.png").read() == (root / row["file_name"]).read_bytes()
                assert tar.extractfile(f"{key}.svg").read() == (root / row["code"]).read_bytes()
                assert tar.extractfile(f"{key}.txt").read().decode() == row["concept"]
                meta = json.loads(tar.extractfile(f"{key}.json").read())
                assert meta["id"] == key and meta["split"] == split == row["split"] and "file_name" not in meta
                seen[key] = split
    assert sorted(seen) == sorted(i for i, r in rows.items() if not r["duplicate"])


def test_webdataset_shard_size_and_stale_shards(built, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(built[0], root)
    rows = rows_of(root / "metadata.jsonl")
    kept = sum(1 for r in rows if not r["duplicate"] and r["split"] == "train")
    written = write_webdataset(root, rows, shard_size=2)
    assert sum(1 for w in written if "/train-" in w) == -(-kept // 2)
    again = [(root / w).read_bytes() for w in written]
    assert [(root / w).read_bytes() for w in write_webdataset(root, rows, shard_size=2)] == again   # same bytes
    write_webdataset(root, rows, shard_size=1000)
    assert sorted(p.name for p in (root / "webdataset").glob("*.tar")) == ["train-00000.tar", "validation-00000.tar"]


def test_datasets_reads_the_webdataset_shards(built, tmp_path):
    root, _ = built
    out = run_datasets(f"""
        import json, datasets
        data = datasets.load_dataset("webdataset", data_dir={str(root / "webdataset")!r},
                                     cache_dir={str(tmp_path / "cache")!r})
        first = data["train"][0]
        print(json.dumps({{"n": {{k: s.num_rows for k, s in data.items()}}, "size": list(first["png"].size),
                          "concept": first["txt"], "json": sorted(first["json"]), "svg": first["svg"][:4].decode()}}))
    """, tmp_path)
    rows = [r for r in rows_of(root / "metadata.jsonl") if not r["duplicate"]]
    assert out["n"] == {s: sum(1 for r in rows if r["split"] == s) for s in ("train", "validation")}
    assert out["size"] == [64, 64] and out["svg"] == "<svg" and "concept" in out["json"]


def test_curate_switches_the_shards_off_and_on(built, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(built[0], root)
    curate_dataset(root, format="imagefolder")
    assert not (root / "webdataset").exists()
    curate_dataset(root, format="webdataset", validation=0.0, license="mit")
    assert sorted(p.name for p in (root / "webdataset").glob("*.tar")) == ["train-00000.tar"]
    assert not (root / "validation").exists() and {r["split"] for r in rows_of(root / "metadata.jsonl")} == {"train"}
    assert "license: \"mit\"" in (root / "README.md").read_text()
    with pytest.raises(ValueError, match="--format"):
        curate_dataset(root, format="parquet")
    with pytest.raises(ValueError, match="--validation"):
        curate_dataset(root, validation=1.5)


def test_cli_curate_takes_the_export_options(built, tmp_path):
    import shutil

    from drawloop.cli import build_app

    root = tmp_path / "copy"
    shutil.copytree(built[0], root)
    runner = CliRunner()
    done = runner.invoke(build_app(), ["dataset", "curate", str(root), "--embedder", "thumbnail",
                                       "--validation", "0.5", "--format", "imagefolder", "--license", "other"])
    assert done.exit_code == 0, done.output
    assert not (root / "webdataset").exists() and "license: \"other\"" in (root / "README.md").read_text()
    assert {r["split"] for r in rows_of(root / "metadata.jsonl")} == {"train", "validation"}
    bad = runner.invoke(build_app(), ["dataset", "curate", str(root), "--format", "zip"])
    assert bad.exit_code == 2 and "--format" in bad.output
    assert "--validation" in runner.invoke(build_app(), ["dataset", "build", "--help"]).output


# ---------------------------------------------------------------- older datasets

def test_a_dataset_in_the_old_per_concept_layout_moves_into_the_split_folders(tmp_path):
    build(tmp_path, ("a varied tree", "a blue square", "a red circle"), samples=2)
    root = tmp_path / "data"
    before = {r["id"]: r["png_sha256"] for r in rows_of(root / "metadata.jsonl")}
    # turn it into what an older drawloop wrote: images/<slug>/<id>.png, rows naming `image`
    db = sqlite3.connect(root / "manifest.sqlite")
    for drawing_id, text in db.execute("SELECT id, record FROM drawings").fetchall():
        record = json.loads(text)
        old = f"images/{record['slug']}/{drawing_id}"
        for key, suffix in (("file_name", ".png"), ("code", ".svg")):
            (root / old).parent.mkdir(parents=True, exist_ok=True)
            find_drawing(root, record[key]).rename(root / (old + suffix))   # curation may have moved it
        record.pop("file_name")
        record.update(image=old + ".png", code=old + ".svg")
        db.execute("UPDATE drawings SET record = ? WHERE id = ?", (json.dumps(record), drawing_id))
    db.commit()
    db.close()
    for split in ("train", "validation"):
        (root / split / "metadata.jsonl").unlink()
        (root / split).rmdir()
    legacy = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    (root / "metadata.jsonl").write_text("".join(json.dumps({**{k: v for k, v in r.items() if k != "file_name"},
                                                             "image": f"images/{r['slug']}/{r['id']}.png"}) + "\n"
                                                 for r in legacy))
    assert len(DrawingDataset(root)) == 6 and DrawingDataset(root).image(0).size == (64, 64)   # reads `image`
    from drawloop.vision.data import list_images

    assert len(list_images(root)) == 6

    curate_dataset(root)
    rows = rows_of(root / "metadata.jsonl")
    assert {r["id"]: r["png_sha256"] for r in rows} == before
    assert not (root / "images").exists()
    assert all((root / r["file_name"]).is_file() and r["file_name"].startswith(r["split"] + "/") for r in rows)
    assert len(list_images(root)) == 6 and len(DrawingDataset(root)) == 6
