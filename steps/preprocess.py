"""The shared preprocess step: read a table once, clean and split it, store it by content key.

    python -m steps.preprocess --data '{"path": "s3://b/sales.csv", "target": "sales"}' \
        --preprocess '{"scale": "standard"}' --seed 42 --storage-root s3://b/sweeps
    python -m steps.preprocess --plan s3://b/sweeps/sweeps/<sweep_id>/plan.json --group <id>

prints the stored split (`<storage-root>/preprocess/<key>/`) as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweeper.core import storage
from sweeper.core.records import TARGET_COLUMN, Plan, StoredSplit
from sweeper.core.splits import record_split
from sweeper.errors import DataError

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

# Part of every key: bump it when the transformation changes so old splits are not reused.
PREPROCESS_VERSION = 4  # 4: rare levels grouped (max_categories); what was done is in meta.json
BUNDLED = ("diabetes",)
SMALL_TEST_SET = 20  # rows: fewer, and test scores are too noisy to trust; said aloud


@dataclass(frozen=True)
class _Prepared:
    train: pd.DataFrame  # transformed features and the target
    test: pd.DataFrame
    raw_test: pd.DataFrame  # the test rows as the data has them
    transformer: ColumnTransformer  # fitted on the training rows
    report: dict[str, int]  # records.SPLIT_REPORT's counts
    warnings: tuple[str, ...]


def preprocess(
    data: Mapping[str, Any], preprocess: Mapping[str, Any], seed: int, storage_root: str
) -> StoredSplit:
    """Store the train/test split of `data` under a key of the settings and the data's content.

    An identical split stored earlier (same settings, same bytes) is reused, not recomputed.
    """
    raw, bundled, content_hash = _read_source(data)
    key = split_key(data, preprocess, seed, content_hash)
    url = storage.split_url(storage.absolute(storage_root), key)
    stored = _complete_meta(url)
    if stored is not None:
        return StoredSplit(url, key, True, stored["report"], tuple(stored["warnings"]))

    frame = _parse(raw, data) if raw is not None else bundled
    prepared = _transform(frame, data, preprocess, seed)
    train, test, raw_test, transformer = (prepared.train, prepared.test, prepared.raw_test,
                                          prepared.transformer)  # fmt: skip
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
    for name, content in tables.items():
        storage.write_bytes_atomic(storage.join(url, name), content)
    meta = {
        "version": PREPROCESS_VERSION,
        "key": key,
        "content_sha256": content_hash,
        "source": storage.redact(data.get("path")) or data.get("name"),
        "target": data["target"],
        "inputs": [c for c in raw_test.columns if c != TARGET_COLUMN],
        "features": features,
        "n_train": len(train),
        "n_test": len(test),
        "report": prepared.report,
        "warnings": list(prepared.warnings),
        "preprocess": dict(preprocess),
        "seed": seed,
        "sha256": {name: hashlib.sha256(content).hexdigest() for name, content in tables.items()},
    }
    storage.write_bytes_atomic(storage.join(url, storage.META), json.dumps(meta, indent=2).encode())
    return StoredSplit(url, key, False, prepared.report, prepared.warnings)


def split_key(
    data: Mapping[str, Any], preprocess: Mapping[str, Any], seed: int, content_hash: str
) -> str:
    """Same settings and same bytes give the same key, wherever the data lives."""
    identity = {
        "version": PREPROCESS_VERSION,
        "content": content_hash,
        "target": data["target"],
        "drop": sorted(data.get("drop") or []),
        "test_size": data["test_size"],
        "preprocess": dict(preprocess),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def _read_source(data: Mapping[str, Any]) -> tuple[bytes | None, pd.DataFrame | None, str]:
    """The input's bytes (or a bundled data set's frame) and the hash of its content."""
    path = data.get("path")
    if path is None:
        frame = _load_bundled(data)
        content = pd.util.hash_pandas_object(frame).to_numpy().tobytes()
        return None, frame, hashlib.sha256(content).hexdigest()
    shown = storage.redact(path)
    try:
        raw = storage.read_bytes(path)
    except Exception as err:  # whatever the filesystem raises: a denied bucket, no endpoint…
        unreachable = _connection_error(err)
        if unreachable is not None:  # fsspec's HTTP filesystem says "not found" for these too
            raise DataError(f"data.path {shown} cannot be reached: {unreachable}") from None
        if isinstance(err, FileNotFoundError):
            raise DataError(f"data.path {shown} does not exist") from None
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"data.path {shown} cannot be read: {reason}") from None
    if not raw.strip():
        raise DataError(f"data.path {storage.redact(path)} is empty")
    return raw, None, hashlib.sha256(raw).hexdigest()


def _connection_error(err: BaseException) -> str | None:
    """The connection failure behind a read error, if that is what it was: a refused or
    unresolvable host (aiohttp's and botocore's own types among them)."""
    seen: BaseException | None = err
    while seen is not None:
        name = type(seen).__name__
        if isinstance(seen, ConnectionError) or name in (
            "ClientConnectorError", "EndpointConnectionError", "ConnectTimeoutError",
        ):  # fmt: skip
            text = str(seen).strip().splitlines()
            return text[0] if text else name
        seen = seen.__cause__ or seen.__context__
    return None


def _load_bundled(data: Mapping[str, Any]) -> pd.DataFrame:
    name = data.get("name")
    if name != "diabetes":
        raise DataError(f"data.path is not set and '{name}' is not a bundled data set ({BUNDLED})")
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def _parse(raw: bytes, data: Mapping[str, Any]) -> pd.DataFrame:
    path = str(data["path"])
    shown = storage.redact(path)
    try:
        if path.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(io.BytesIO(raw))
        return pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"data.path {shown} is not a readable table: {reason}") from None
    except Exception as err:  # pyarrow raises its own types for a corrupt Parquet file
        raise DataError(f"data.path {shown} is not a readable table: {err}") from None


def _transform(
    frame: pd.DataFrame, data: Mapping[str, Any], preprocess: Mapping[str, Any], seed: int
) -> _Prepared:
    """The transformed train and test tables, the raw test rows (input columns and target), the
    transformer fitted on the training rows, and what was done to the data."""
    from sklearn.model_selection import train_test_split

    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    shown = storage.redact(data.get("path")) or data.get("name")
    if frame.empty:
        raise DataError(f"data.path {shown} has no rows (columns: {columns})")
    rows_in = len(frame)
    target = data["target"]
    drop = list(data.get("drop") or [])
    missing = [c for c in drop if c not in columns]
    if missing:
        raise DataError(f"data.drop names columns that do not exist: {missing}; columns: {columns}")
    if target not in columns:
        raise DataError(f"data.target '{target}' is not a column; columns: {columns}")
    if not pd.api.types.is_numeric_dtype(frame[target]) or pd.api.types.is_bool_dtype(
        frame[target]
    ):
        raise DataError(
            f"data.target '{target}' is not numeric (dtype {frame[target].dtype}); "
            "a regression target must be a number"
        )
    frame = frame.drop(columns=drop).dropna(subset=[target])
    if frame.empty:
        raise DataError(f"data.target '{target}' is missing in every row")
    y = frame.pop(target).astype("float64")
    if frame.shape[1] == 0:
        raise DataError(f"no feature columns are left after dropping {drop} and the target")
    test_size = _test_size(data["test_size"], len(frame))

    X_train, X_test, y_train, y_test = train_test_split(
        frame, y, test_size=test_size, random_state=seed
    )
    # Fitted on the training rows only, so nothing about the test rows leaks into the trials.
    transformer = _transformer(X_train, preprocess).fit(X_train)
    features = [str(f) for f in transformer.get_feature_names_out()]
    train = _as_table(transformer.transform(X_train), features, y_train)
    test = _as_table(transformer.transform(X_test), features, y_test)
    raw_test = X_test.assign(**{TARGET_COLUMN: y_test.to_numpy()})
    report = {
        "rows_in": rows_in,
        "rows_dropped_missing_target": rows_in - len(frame),
        "rows_train": len(train),
        "rows_test": len(test),
        "columns_in": X_train.shape[1],
        "features_out": len(features),
    }
    warnings = [*_grouped_levels(X_train, preprocess)]
    if len(test) < SMALL_TEST_SET:
        warnings.append(
            f"the test set has only {len(test)} rows (data.test_size={data['test_size']}): its "
            "scores are noisy; more rows or a larger data.test_size give ones to trust"
        )
    return _Prepared(train, test, raw_test, transformer, report, tuple(warnings))


def _test_size(value: Any, rows: int) -> float | int:
    """scikit-learn's rule, said before any split: a fraction in (0, 1) or a number of rows,
    leaving at least one row on each side."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    fraction = number and isinstance(value, float)
    n_test = math.ceil(value * rows) if fraction else value
    if not number or (fraction and not 0 < value < 1) or not 1 <= n_test < rows:
        raise DataError(
            f"data.test_size={value} must be a fraction between 0 and 1 or a number of rows, "
            f"leaving rows to train on and to test on (the data has {rows} rows with a target)"
        )
    return value  # type: ignore[no-any-return]


def _grouped_levels(X: pd.DataFrame, preprocess: Mapping[str, Any]) -> list[str]:
    """A warning for each text column with more levels than `preprocess.max_categories`."""
    limit = preprocess.get("max_categories")
    if limit is None:
        return []
    found = []
    for column in X.columns:
        if pd.api.types.is_numeric_dtype(X[column]):
            continue
        levels = X[column].nunique()
        if levels > limit:
            found.append(
                f"column '{column}' has {levels} levels in the training rows: the {limit - 1} "
                f"most frequent are kept and the rest grouped as one "
                f"(preprocess.max_categories={limit})"
            )
    return found


def _transformer(X: pd.DataFrame, preprocess: Mapping[str, Any]) -> ColumnTransformer:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    scalers = {"standard": StandardScaler, "minmax": MinMaxScaler, "none": None}
    scale = preprocess.get("scale", "standard")
    if scale not in scalers:
        raise DataError(f"preprocess.scale '{scale}' is not one of {list(scalers)}")
    max_categories = preprocess.get("max_categories")
    if max_categories is not None and (not isinstance(max_categories, int) or max_categories < 2):
        raise DataError(
            f"preprocess.max_categories={max_categories} must be at least 2 (or null: every level)"
        )
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]

    numeric_steps: list[Any] = [SimpleImputer(strategy=preprocess.get("impute_numeric", "median"))]
    if scalers[scale] is not None:
        numeric_steps.append(scalers[scale]())
    categorical_steps = [
        SimpleImputer(
            strategy=preprocess.get("impute_categorical", "most_frequent"), fill_value="missing"
        ),
        # Rarer levels beyond max_categories become one "infrequent" feature, as do levels
        # the training rows never had.
        OneHotEncoder(
            handle_unknown="infrequent_if_exist" if max_categories else "ignore",
            max_categories=max_categories,
            sparse_output=False,
        ),
    ]
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(*numeric_steps), numeric),
            ("categorical", make_pipeline(*categorical_steps), categorical),
        ],
        verbose_feature_names_out=False,
    )


def _as_table(values: Any, features: Sequence[str], y: pd.Series) -> pd.DataFrame:
    table = pd.DataFrame(values, columns=list(features), dtype="float64")
    table[TARGET_COLUMN] = y.to_numpy()
    return table


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
    split = preprocess(group.data, group.preprocess, group.seed, plan.settings.storage.root)
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
            split = preprocess(data, json.loads(args.preprocess), args.seed, args.storage_root)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(split)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
