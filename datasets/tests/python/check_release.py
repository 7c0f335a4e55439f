"""Open a reasongen release with the tools the field uses, and check what they see.

Usage: check_release.py RELEASE_DIR EXPECTED_ROWS IMAGE_SIDE
Prints one JSON object; exits non-zero on any mismatch.
"""
import json
import sys
from pathlib import Path

import datasets
import polars as pl
import pyarrow.parquet as pq

release, expected_rows, side = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
report = {"datasets": datasets.__version__}

# 1. datasets, through the generic Parquet builder on the data folder.
ds = datasets.load_dataset("parquet", data_dir=str(release / "data"))
rows = sum(len(ds[s]) for s in ds)
assert rows == expected_rows, (rows, expected_rows)
split = next(s for s in ds if len(ds[s]) > 0)
feature = ds[split].features["image"]
assert isinstance(feature, datasets.Image), feature
img = ds[split][0]["image"]
assert img.size == (side, side), img.size
report["image_feature"] = type(feature).__name__
report["splits"] = {s: len(ds[s]) for s in ds}

# 2. datasets, through the card's YAML configs (the Hub's view of the folder).
by_card = datasets.load_dataset(str(release))
assert sum(len(by_card[s]) for s in by_card) == expected_rows
prov = datasets.load_dataset(str(release), "provenance")
report["provenance_rows"] = sum(len(prov[s]) for s in prov)

# 3. pyarrow: schema metadata carries the features and the schema id.
files = sorted((release / "data").glob("*.parquet"))
table = pq.read_table(files)
assert table.num_rows == expected_rows
meta = table.schema.metadata
assert b"huggingface" in meta and b"reasongen.schema" in meta
report["schema_id"] = meta[b"reasongen.schema"].decode()

# 4. polars.
df = pl.read_parquet([str(f) for f in files])
assert df.height == expected_rows
assert df.schema["image"] == pl.Struct({"bytes": pl.Binary, "path": pl.String}), df.schema["image"]
report["polars_rows"] = df.height

print(json.dumps(report))
