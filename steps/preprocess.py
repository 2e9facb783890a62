"""The shared preprocess step: read a table once, clean and split it, store it by content key.

    python -m steps.preprocess --data '{"path": "s3://b/sales.csv", "target": "sales"}' \
        --preprocess '{"scale": "standard"}' --seed 42 --storage-root s3://b/sweeps
    python -m steps.preprocess --plan s3://b/sweeps/sweeps/<sweep_id>/plan.json --group <id>

prints the stored split (`<storage-root>/preprocess/<key>/`) as JSON.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeper.core import storage
from sweeper.core.faults import Fault
from sweeper.core.records import TARGET_COLUMN, Plan, StoredSplit
from sweeper.errors import DataError
from sweeper.safe_text import first_line, redact
from sweeper.trial.splits import record_split

if TYPE_CHECKING:
    import pandas as pd

# Part of every key: bump it when the transformation changes so old splits are not reused.
PREPROCESS_VERSION = 5  # 5: each CV fold preprocessed on its own fitting rows, stored beside
BUNDLED = ("diabetes",)
BUNDLED_SOURCE = "sklearn.datasets.load_{}"  # a bundled data set's source, as lineage says it


def preprocess(
    data: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    seed: int,
    storage_root: str,
    cv: int = 0,
) -> StoredSplit:
    """Store the train/test split of `data` under a key of the settings and the data's content,
    with `cv` folds of its training rows (the sweep's `eval.cv`), each preprocessed apart.

    An identical split stored earlier (same settings, same bytes) is reused, not recomputed.
    """
    raw, content_hash = _read_source(data)
    key = split_key(data, preprocess, seed, content_hash, cv)
    url = storage.split_url(storage.absolute(storage_root), key)
    stored = _stored(url, key)
    if stored is not None:
        return stored

    from steps.transform import transform

    frame, read_as = _parse(raw, data) if raw is not None else (_load_bundled(data), [])
    schema = column_types(frame)
    prepared = transform(frame, data, preprocess, seed, cv)
    train, test, raw_test, transformer = (
        prepared.train,
        prepared.test,
        prepared.raw_test,
        prepared.transformer,
    )
    features = [str(f) for f in transformer.get_feature_names_out()]
    # meta.json goes last, with the files' checksums: a folder without it is an interrupted
    # write, and a file that does not match it is damaged; either is rebuilt, never trusted.
    # The transformer is stored with skops (no pickle to trust) for the sweep's best model, a
    # Pipeline that scores raw rows; the raw test rows are what it is scored on.
    import skops.io

    tables = {
        storage.TRAIN: _to_parquet(train),
        storage.TEST: _to_parquet(test),
        storage.TEST_RAW: _to_parquet(raw_test),
        storage.TRANSFORMER: skops.io.dumps(transformer),
    }
    for number, fold in enumerate(prepared.folds):
        fit, held_out = storage.fold_tables(number)
        tables.update({fit: _to_parquet(fold.fit), held_out: _to_parquet(fold.held_out)})
    for name, content in tables.items():
        storage.write_bytes_atomic(storage.join(url, name), content)
    meta = {
        "version": PREPROCESS_VERSION,
        "key": key,
        "name": data.get("name"),
        "content_sha256": content_hash,
        "source": _source(data),
        "schema": schema,
        "target": data["target"],
        "inputs": [c for c in raw_test.columns if c != TARGET_COLUMN],
        "features": features,
        "n_train": len(train),
        "n_test": len(test),
        "report": prepared.report,
        "warnings": [*read_as, *prepared.warnings],
        "task": prepared.task.value,
        "classes": list(prepared.classes),
        "smallest_class": prepared.smallest_class,
        "preprocess": dict(preprocess),
        "seed": seed,
        "cv": len(prepared.folds),
        "sha256": {name: hashlib.sha256(content).hexdigest() for name, content in tables.items()},
    }
    storage.write_bytes_atomic(storage.join(url, storage.META), json.dumps(meta, indent=2).encode())
    return _stored_split(url, key, False, meta)


def stored_split(
    data: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    seed: int,
    storage_root: str,
    cv: int = 0,
) -> StoredSplit | None:
    """The split `preprocess` would reuse, if one is stored (None: it would compute one); found
    without pandas or scikit-learn, by the data's bytes and the settings."""
    key = split_key(data, preprocess, seed, _read_source(data)[1], cv)
    return _stored(storage.split_url(storage.absolute(storage_root), key), key)


def _stored(url: str, key: str) -> StoredSplit | None:
    meta = _complete_meta(url)
    return None if meta is None else _stored_split(url, key, True, meta)


def _stored_split(url: str, key: str, reused: bool, meta: Mapping[str, Any]) -> StoredSplit:
    return StoredSplit(
        url,
        key,
        reused,
        meta["report"],
        tuple(meta["warnings"]),
        meta["task"],
        meta.get("smallest_class", 0),
        str(meta.get("name") or ""),
        str(meta.get("source") or ""),
        str(meta.get("content_sha256") or ""),
        dict(meta.get("schema") or {}),
    )


def _source(data: Mapping[str, Any]) -> str:
    """Where the data was read from, as lineage says it: a local file by its absolute path (a
    relative one means nothing from another folder), a URL without its credentials."""
    path = data.get("path")
    if not path:
        return BUNDLED_SOURCE.format(data.get("name"))
    return str(redact(storage.absolute(str(path))))


def column_types(frame: pd.DataFrame) -> dict[str, str]:
    """Each column's type as MLflow's dataset schemas name it."""
    import pandas as pd

    def kind(column: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(column):
            return "boolean"
        if pd.api.types.is_integer_dtype(column):
            return "long"
        if pd.api.types.is_float_dtype(column):
            return "double"
        if pd.api.types.is_datetime64_any_dtype(column):
            return "datetime"
        return "string"

    return {str(name): kind(frame[name]) for name in frame.columns}


def split_key(
    data: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    seed: int,
    content_hash: str,
    cv: int = 0,
) -> str:
    """Same settings and same bytes give the same key, wherever the data lives."""
    identity = {
        "version": PREPROCESS_VERSION,
        "content": content_hash,
        "target": data["target"],
        "drop": sorted(data.get("drop") or []),
        "test_size": data["test_size"],
        "task": data.get("task", "auto"),
        "preprocess": dict(preprocess),
        "seed": seed,
        "cv": cv,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def _read_source(data: Mapping[str, Any]) -> tuple[bytes | None, str]:
    """The input's bytes (None for a bundled data set) and the hash of its content."""
    path = data.get("path")
    if path is None:
        return None, _bundled_hash(data)
    shown = redact(path)
    try:
        raw = storage.read_bytes(path, retry=False)
    except Exception as err:  # whatever the filesystem raises: a denied bucket, no endpoint…
        unreachable = _connection_error(err)
        if unreachable is not None:  # fsspec's HTTP filesystem says "not found" for these too
            raise DataError(f"data.path {shown} cannot be reached: {unreachable}") from None
        if isinstance(err, FileNotFoundError):
            raise DataError(f"data.path {shown} does not exist") from None
        reason = first_line(err)
        raise DataError(f"data.path {shown} cannot be read: {reason}") from None
    if not raw.strip():
        raise DataError(f"data.path {redact(path)} is empty")
    return raw, hashlib.sha256(raw).hexdigest()


def _connection_error(err: BaseException) -> str | None:
    """The connection failure behind a read error, if that is what it was: a refused or
    unresolvable host (aiohttp's and botocore's own types among them)."""
    seen: BaseException | None = err
    while seen is not None:
        name = type(seen).__name__
        if isinstance(seen, ConnectionError) or name in (
            "ClientConnectorError",
            "EndpointConnectionError",
            "ConnectTimeoutError",
        ):
            text = str(seen).strip().splitlines()
            return text[0] if text else name
        seen = seen.__cause__ or seen.__context__
    return None


def _load_bundled(data: Mapping[str, Any]) -> pd.DataFrame:
    _bundled_files(data)
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def _bundled_hash(data: Mapping[str, Any]) -> str:
    """A bundled data set's content hash, from the files scikit-learn ships it in: a stored
    split is found again without importing scikit-learn (~2 s)."""
    digest = hashlib.sha256()
    for path in _bundled_files(data):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _bundled_files(data: Mapping[str, Any]) -> list[Path]:
    name = data.get("name")
    if name not in BUNDLED:
        raise DataError(f"data.path is not set and '{name}' is not a bundled data set ({BUNDLED})")
    spec = importlib.util.find_spec("sklearn")  # found, not imported
    assert spec is not None and spec.submodule_search_locations, "scikit-learn is installed"
    folder = Path(next(iter(spec.submodule_search_locations)), "datasets", "data")
    return [folder / f"{name}_data_raw.csv.gz", folder / f"{name}_target.csv.gz"]


def _parse(raw: bytes, data: Mapping[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """The table, and how it was read where that was not plain CSV with `.` decimals (said as
    the split's warnings)."""
    import pandas as pd

    path = str(data["path"])
    shown = redact(path)
    first_line_text = raw[:65536].decode("utf-8", "replace").partition("\n")[0]
    delimiter = _delimiter(first_line_text)
    said = [] if delimiter == "," else [f"data.path {shown} is read as separated by {delimiter!r}"]
    try:
        if path.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(io.BytesIO(raw)), []
        frame = pd.read_csv(io.BytesIO(raw), sep=delimiter)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = first_line(err)
        raise DataError(f"data.path {shown} is not a readable table: {reason}") from None
    except Exception as err:  # pyarrow raises its own types for a corrupt Parquet file
        raise DataError(f"data.path {shown} is not a readable table: {err}") from None
    # pandas renames a repeated column ("price", "price.1"): found in the header as written.
    header = next(csv.reader(io.StringIO(first_line_text), delimiter=delimiter), [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DataError(
            f"data.path {shown} has more than one column named {repeated[0]!r}: "
            "give each column a name of its own"
        )
    return frame, [*said, *_numbers_written_as_text(frame, european=delimiter == ";")]


# A header without a comma but with one of these is a table separated by it (a spreadsheet's
# export in a locale whose decimal mark is the comma writes `;`).
_DELIMITERS = (";", "\t", "|")
# Numbers as spreadsheets write them: 2,392.5 (thousands by comma), or 2.392,5 and 3,5 (the
# decimal comma of `;`-separated exports).
_THOUSANDS = re.compile(r"[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
_DECIMAL_COMMA = re.compile(r"[-+]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?")


def _delimiter(header: str) -> str:
    if "," in header:
        return ","
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _numbers_written_as_text(frame: pd.DataFrame, european: bool) -> list[str]:
    """Text columns whose every value is a number written with thousands separators (or, in a
    `;`-separated table, decimal commas) are turned into numbers, in place; one line each."""
    import pandas as pd

    said = []
    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column].dropna().astype(str).str.strip()
        if values.empty or not values.str.contains(",", regex=False).any():
            continue
        pattern, kind = (
            (_DECIMAL_COMMA, "decimal commas") if european else (_THOUSANDS, "thousands separators")
        )
        if not values.map(lambda v, p=pattern: p.fullmatch(v) is not None).all():
            continue
        example = values[values.str.contains(",", regex=False)].iloc[0]
        if european:
            numbers = values.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        else:
            numbers = values.str.replace(",", "", regex=False)
        frame[column] = pd.to_numeric(numbers).reindex(frame.index)
        said.append(
            f"column '{column}' has numbers written with {kind} ({example!r}): read as numbers"
        )
    return said


def _to_parquet(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _complete_meta(url: str) -> dict[str, Any] | None:
    """A stored split's meta.json, only when it is there and every file matches its checksum."""
    try:
        meta: dict[str, Any] = json.loads(storage.read_bytes(storage.join(url, storage.META)))
        if meta.get("version") != PREPROCESS_VERSION:
            return None
        whole = all(
            hashlib.sha256(storage.read_bytes(storage.join(url, name))).hexdigest() == digest
            for name, digest in meta["sha256"].items()
        )
    except (FileNotFoundError, ValueError, KeyError):
        return None
    return meta if whole else None


def preprocess_group(plan_url: str, group_id: str) -> StoredSplit:
    """One group of a stored plan; records where its split is for the trials that read it."""
    plan = Plan.from_json(storage.read_bytes(plan_url))
    group = plan.group(group_id)
    if group is None:
        raise DataError(f"group {group_id} is not in the plan {plan_url}")
    settings = plan.settings
    split = preprocess(
        group.data, group.preprocess, group.seed, settings.storage.root, settings.eval.cv
    )
    record_split(plan, group_id, split)
    return split


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steps.preprocess", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="data settings as JSON")
    source.add_argument("--plan", help="URL of a stored plan (with --group)")
    parser.add_argument("--group", help="preprocess group of the plan")
    parser.add_argument("--preprocess", default="{}", help="preprocess settings as JSON")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cv", type=int, default=0, help="CV folds to preprocess (eval.cv)")
    parser.add_argument("--storage-root")
    args = parser.parse_args(argv)
    if args.data and not args.storage_root:
        parser.error("--data needs --storage-root")
    if args.plan and not args.group:
        parser.error("--plan needs --group")
    try:
        if args.plan:
            split = preprocess_group(args.plan, args.group)
        else:
            data = {"drop": [], "test_size": 0.3, **json.loads(args.data)}
            split = preprocess(
                data, json.loads(args.preprocess), args.seed, args.storage_root, args.cv
            )
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Fault as err:  # the store or the disk: Argo's retry of the pod may get through
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(split)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
