"""What a sweep lets run: the classes its configs name, and nothing read back from a store.

Configs name classes, not calls. Every `_target_` of a model config, nested ones included (an
ensemble's `estimator`, a pipeline's steps), must name a class with scikit-learn's estimator
interface, from scikit-learn or from a module the user lists in `trust.modules` (xgboost, their
own package). The module is judged by its name before it is imported, so a config cannot make a
sweep import (and so run) anything else; functions, `_partial_` and Hydra's other switches are
refused before anything is instantiated. The sweeping process checks the names, and every
process that builds a model (a worker, a pod) checks them again, with the classes themselves.

Models read back from MLflow are data: see `loadable_types`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sweeper.core.settings import TrustSettings

SCIKIT_LEARN = "sklearn"
# What skops may load besides the classes of trusted modules: scikit-learn's, NumPy's and SciPy's.
DATA_MODULES = ("sklearn", "numpy", "scipy")
# Hydra's instantiation switches a model config may use: positional arguments and how nested
# values are converted. `_partial_` (a callable instead of an estimator), `_recursive_` and
# anything else are refused.
_SWITCHES = frozenset({"_target_", "_args_", "_convert_"})
# scikit-learn's estimator interface, which the model itself has (and predicts).
_INTERFACE = ("fit", "get_params", "set_params")


class Untrusted(ValueError):
    """A config names something other than a trusted estimator class."""


def trusted_module(module: str, modules: Sequence[str] = ()) -> bool:
    """Whether `module` is scikit-learn's or lies in one of the user's `trust.modules`."""
    return any(module == top or module.startswith(f"{top}.") for top in (SCIKIT_LEARN, *modules))


def check_names(model: Mapping[str, Any], modules: Sequence[str] = ()) -> None:
    """Refuse a model config whose targets are not named in trusted modules, that uses a
    switch other than `_target_`, `_args_` and `_convert_`, or that holds an interpolation
    (`${…}`, which instantiating would resolve, `${oc.create:…}` included): without importing
    anything."""
    for where, text in _texts(model, "model"):
        if "${" in text:
            raise Untrusted(
                f"{where} holds an interpolation ({text[:60]}), which instantiating the model "
                "would resolve: a model config's values are plain data"
            )
    for where, node in _nodes(model, "model"):
        for key in node:
            switch = isinstance(key, str) and key.startswith("_") and key.endswith("_")
            if switch and key not in _SWITCHES:
                raise Untrusted(
                    f"{where}.{key} is refused: a model config names classes "
                    "and their values (_target_, _args_), not calls"
                )
        if "_target_" in node:
            _check_name(node["_target_"], where, modules)


SCALARS = (str, int, float, bool, type(None))  # a flat model config's values (fast to test)


class NameCheck:
    """`check_names` for the many model configs of one sweep. Most of them are flat (a class
    and its values) and differ in their values only: a flat config's names (its target, its
    keys) are checked once per shape, and each config's text values for interpolations."""

    def __init__(self, modules: Sequence[str] = ()) -> None:
        self.modules = modules
        self._shapes: set[tuple[str, ...]] = set()

    def __call__(self, model: Mapping[str, Any]) -> None:
        flat = all(isinstance(v, SCALARS) for v in model.values())
        shape = (str(model.get("_target_")), *map(str, model)) if flat else None
        if shape is None or shape not in self._shapes:
            check_names(model, self.modules)
            if shape is not None:
                self._shapes.add(shape)
            return
        for key, value in model.items():
            if isinstance(value, str) and "${" in value:
                check_names({key: value}, self.modules)  # raises, saying where


def check_classes(model: Mapping[str, Any], modules: Sequence[str] = ()) -> type:
    """`check_names`, then import each target and check that it is a class of a trusted module
    (a nested one: a kernel, a splitter, a pipeline's step); the model's own, an estimator
    that predicts."""
    check_names(model, modules)
    for where, node in _nodes(model, "model"):
        if "_target_" in node and where != "model":
            trusted_class(node["_target_"], where, modules)
    return estimator_class(model.get("_target_"), "model", modules)


def estimator_class(target: object, where: str = "model", modules: Sequence[str] = ()) -> type:
    """The class a trusted `_target_` names, if it is a scikit-learn estimator that predicts."""
    cls = trusted_class(target, where, modules)
    missing = [m for m in (*_INTERFACE, "predict") if not callable(getattr(cls, m, None))]
    if missing:
        raise Untrusted(
            f"{where}._target_ {target} is not a scikit-learn estimator "
            f"(it has no {', '.join(missing)})"
        )
    return cls


def trusted_class(target: object, where: str, modules: Sequence[str] = ()) -> type:
    """The class a trusted `_target_` names: imported only once its name is trusted, and
    defined in a trusted module itself (not a name a trusted module merely imported)."""
    from hydra.utils import get_class

    name = _check_name(target, where, modules)
    try:
        cls = get_class(name)
    except Exception:
        raise ValueError(f"{where}._target_ {name} is not a class that can be imported") from None
    if not isinstance(cls, type) or not trusted_module(cls.__module__, modules):
        raise Untrusted(
            f"{where}._target_ {name} is refused: it is defined in "
            f"{getattr(cls, '__module__', '?')}, not in a trusted module"
        )
    return cls


def loadable_types(types: Sequence[str], modules: Sequence[str] = ()) -> list[str]:
    """Of the types skops data holds (and does not trust by itself), those outside scikit-learn,
    NumPy, SciPy and the user's `trust.modules`: data holding any of them is not loaded."""
    trusted = (*DATA_MODULES, *modules)
    return [t for t in types if not any(t == m or t.startswith(f"{m}.") for m in trusted)]


def pod_arguments(trust: TrustSettings) -> list[str]:
    """The sweep's trust settings as a pod's command line (`add_arguments`): a pod takes them
    from its manifest, which the user submitted, never from a plan in storage, which anyone
    who can write the bucket could widen."""
    listed = [word for module in trust.modules for word in ("--trust-module", module)]
    return [*listed, *(["--trust-pickled-models"] if trust.pickled_models else [])]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="a package whose classes model configs may name (trust.modules)",
    )
    parser.add_argument(
        "--trust-pickled-models",
        action="store_true",
        help="load a registered pickle to compare it (trust.pickled_models)",
    )


def from_arguments(args: argparse.Namespace) -> TrustSettings:
    return TrustSettings(list(args.trust_module), bool(args.trust_pickled_models))


def _check_name(target: object, where: str, modules: Sequence[str]) -> str:
    if not isinstance(target, str) or not target.strip():
        raise Untrusted(f"{where}._target_ must name an estimator class, not {target!r}")
    module = target.rpartition(".")[0]
    if not trusted_module(module, modules):
        listed = ", ".join(modules) if modules else "none"
        raise Untrusted(
            f"{where}._target_={target} is refused: a model config may name classes of "
            f"scikit-learn or of the modules in trust.modules (now: {listed}); add its package "
            "there if you trust it"
        )
    return target


def _texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every text in a config, keys included, with its dotted place."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _texts(key, where)
            yield from _texts(inner, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            yield from _texts(inner, f"{where}.{i}")


def _nodes(value: Any, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping in a config, with its dotted place (`model.estimator`, `model.steps.0.1`)."""
    if isinstance(value, Mapping):
        yield where, value
        for key, inner in value.items():
            if isinstance(inner, Mapping | list | tuple):
                yield from _nodes(inner, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            yield from _nodes(inner, f"{where}.{i}")
