"""Models read back from MLflow are data, never code, unless the user says so.

Anyone who can write to the tracking server can register a version, and a pickled model runs
whatever its writer put in it the moment it is loaded: so is a model that brings code of its own
(MLflow's `code_paths`, a custom pyfunc) or a skops file whose types the model itself declares
trusted. A model is loaded here only when it is a scikit-learn model stored with skops and made
of types this sweep trusts (scikit-learn's, NumPy's, SciPy's and `trust.modules`' classes; core.
trust), judged from the downloaded files before anything is loaded. `trust.pickled_models=true`
lets a pickle (or cloudpickle) be loaded: for a registry only the user's own jobs write to.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sweeper.core import faults
from sweeper.trial.fitting import skops_types

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

OPT_IN = "trust.pickled_models=true"


class Refused(Exception):
    """A model that loading would let run code: not loaded. Its text is one line: why."""


def load_model(
    model_uri: str,
    shown: str,
    tracking_uri: str,
    modules: Sequence[str] = (),
    pickles: bool = False,
) -> PyFuncModel:
    """The model at `model_uri` (`models:/name/3`, `runs:/…`) of the tracking server at
    `tracking_uri` as MLflow's pyfunc model, once its files show it cannot run code
    (`pickles`: a pickle may be loaded); `shown` names it in a refusal ("version 2")."""
    import mlflow
    import mlflow.artifacts
    import mlflow.pyfunc

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a few small files
    # MLflow resolves `models:/` URIs, and a version's own `models:/m-…` source inside it, through
    # the global tracking URI: passing one to download_artifacts reaches only the first step.
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="sweeper-model-") as folder:
        local = faults.retrying(
            "MLflow's artifact store",
            mlflow.artifacts.download_artifacts,
            artifact_uri=model_uri,
            dst_path=folder,
        )
        check(Path(local), shown, modules, pickles)
        loaded: PyFuncModel = mlflow.pyfunc.load_model(local)
        return loaded


def check(folder: Path, shown: str, modules: Sequence[str] = (), pickles: bool = False) -> None:
    """Refuse a downloaded MLflow model that loading could let run code."""
    import yaml

    try:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
        flavors = mlmodel["flavors"]
        pyfunc, sklearn = flavors["python_function"], flavors.get("sklearn")
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise Refused(f"{shown} is not an MLflow model (no readable MLmodel file)") from None
    loader = pyfunc.get("loader_module")
    if loader != "mlflow.sklearn" or not isinstance(sklearn, dict):
        raise Refused(
            f"{shown} is not a scikit-learn model (its loader is {loader}), and loading "
            "another kind runs its code"
        )
    brings_code = pyfunc.get("code") or sklearn.get("code")
    kind = str(sklearn.get("serialization_format", "pickle"))
    if kind != "skops" or brings_code:
        if pickles:
            return
        what = f"stored as a {kind} file" if kind != "skops" else "shipped with code of its own"
        raise Refused(
            f"{shown} is {what}, which would run its writer's code when loaded; not loaded "
            f"({OPT_IN} loads it, for a registry only you write to)"
        )
    # What MLflow's pyfunc loads must be the very file checked here.
    model_file = str(sklearn.get("pickled_model", ""))
    if pyfunc.get("model_path") != model_file or pyfunc.get("data") not in (None, model_file):
        raise Refused(f"{shown} names another model file for loading than the one it stores")
    data = _inside(folder, model_file, shown).read_bytes()
    try:
        _, foreign = skops_types(data, modules)
    except Exception as err:
        raise Refused(f"{shown} is not a readable skops file ({type(err).__name__})") from None
    if foreign:
        listed = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise Refused(
            f"{shown} holds types this sweep does not trust ({listed}); not loaded (add "
            "their package to trust.modules if you trust it)"
        )


def _inside(folder: Path, name: str, shown: str) -> Path:
    path = (folder / name).resolve()
    if not name or not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise Refused(f"{shown}: its model file {name!r} is not in the model's folder")
    return path
