"""The sweep-wide settings, typed once: structured configs that Hydra checks while it composes.

The dataclasses are the one place the defaults are written: `conf/config.yaml` pulls each in as
the schema of its group (`schema/argo@argo`, …; see `register_schemas`), so a wrong type or an
unknown key is refused by Hydra with the key named, before anything runs. Both executors read the
same `Settings` object; nothing reads `cfg.argo.*` by hand.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeper.core import storage
from sweeper.core.metrics import EVERY_METRIC, METRICS_OF, ProblemType, Ranking
from sweeper.core.text_enum import TextEnum
from sweeper.errors import SweeperError
from sweeper.safe_text import first_line

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# The groups every trial of a sweep must agree on.
SWEEP_WIDE = ("backend", "local", "argo", "storage", "mlflow", "sweep", "eval", "search", "trust")


class Backend(TextEnum):
    """Where trials run; `sweeper.executors.executor_for` maps each to its executor."""

    local = "local"
    argo = "argo"


# OmegaConf reads these annotations at run time: it knows Optional[...], not `X | None`.
@dataclass
class LocalSettings:
    workers: Optional[int] = None  # noqa: UP045  (None: one worker per core)


@dataclass
class ArgoSettings:
    server: Optional[str] = None  # noqa: UP045  (the Argo Server, e.g. https://argo.example:2746)
    namespace: str = "argo"
    image: str = "sweeper:latest"  # the step image built from docker/Dockerfile
    token: Optional[str] = None  # noqa: UP045  (or ARGO_TOKEN; never written anywhere)
    verify_ssl: bool = True
    render_to: Optional[str] = None  # noqa: UP045  (write the manifest here, contact no server)
    wait: bool = True  # watch the workflow until it ends
    watch_timeout: float = 86400.0  # seconds
    poll_seconds: float = 5.0
    schedule: Optional[str] = None  # noqa: UP045  (a cron expression: a CronWorkflow)
    # A WorkflowTemplate (the definition its parameter's default) for GitOps; with `schedule`,
    # a CronWorkflow that references it instead of holding the whole sweep.
    template: bool = False
    # Argo Events: an object landing under s3://bucket/prefix/ submits the WorkflowTemplate with
    # it as data.path (an EventSource on the bucket's S3-compatible notifications, and a Sensor).
    trigger: Optional[str] = None  # noqa: UP045
    # host:port of that S3-compatible server; by default argo.env's AWS_ENDPOINT_URL's.
    trigger_endpoint: Optional[str] = None  # noqa: UP045
    trigger_per_minute: int = 1  # sweeps the Sensor submits at most
    # A Secret whose key `url` is a webhook the exit hook tells of a failure or a new champion.
    notify: Optional[str] = None  # noqa: UP045
    rbac: bool = False  # also render the ServiceAccounts, Roles and RoleBindings the pods need
    name: Optional[str] = None  # noqa: UP045  (the CronWorkflow's; sweeper-<experiment>)
    timezone: Optional[str] = None  # noqa: UP045
    parallelism: Optional[int] = 20  # noqa: UP045  (pods at once; null: as many as fit)
    trials_per_pod: Any = "auto"  # a number, or auto: by estimated cost, <= ~1,000 train pods
    retries: int = 2  # of a pod the cluster lost, not of a failing trial
    active_deadline_seconds: Optional[int] = 86400  # noqa: UP045  (a hung run ends in a day)
    # Pod Security "restricted": the step image's user (docker/Dockerfile), a read-only root.
    run_as_user: int = 10001
    run_as_group: int = 10001
    read_only_root: bool = True
    pod_gc: Optional[str] = "OnPodSuccess"  # noqa: UP045  (failed pods stay for their logs)
    ttl_after_success: Optional[int] = 604800  # noqa: UP045  (seconds: the workflow is deleted)
    ttl_after_failure: Optional[int] = 1209600  # noqa: UP045
    # What the plan, preprocess and summary pods ask for (a trial's pod: `resources`).
    step_resources: Any = field(
        default_factory=lambda: {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"memory": "2Gi"},
        }
    )
    # What platform teams pass through to every pod.
    node_selector: Any = None  # {label: value}
    tolerations: list[Any] = field(default_factory=list)  # Kubernetes' toleration objects
    priority_class: Optional[str] = None  # noqa: UP045
    image_pull_secrets: list[str] = field(default_factory=list)
    service_account: Optional[str] = None  # noqa: UP045
    secrets: list[str] = field(default_factory=list)  # Secrets whose keys become the env
    # {NAME: value}. Typed Any: OmegaConf cannot replace an Optional[Dict] that is None from the
    # command line (`argo.env={A: b}` fails inside its merge); `environment` gives it typed.
    env: Any = None

    @property
    def environment(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.env or {}).items()}


@dataclass
class StorageSettings:
    """Preprocessed splits (`preprocess/<key>/`) and sweep records (`sweeps/<sweep_id>/`): a
    folder or any fsspec URL (s3://bucket/prefix: endpoint and credentials from AWS_*)."""

    root: str = "sweeper-store"


@dataclass
class MlflowSettings:
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "sweeper"
    # A registered model's name: each sweep's best becomes a version of it, `@challenger`, and
    # takes `@champion` when it beats the champion on tonight's test rows: better in a paired
    # bootstrap at `promote_level` and by more than `promote_margin` (in the metric's units).
    register_best: Optional[str] = None  # noqa: UP045
    promote_level: float = 0.05
    promote_margin: float = 0.0


@dataclass
class SweepOptions:
    rerun: bool = False  # train every trial again, even those already finished in MLflow
    # Hydra's output folder per trial (`<n>/.hydra/config.yaml`, `overrides.yaml`) for sweeps of
    # up to this many trials; a larger one writes one line per trial to `jobs.jsonl` instead.
    job_folders: int = 1000


@dataclass
class EvalSettings:
    """How trials are ranked: the CV mean of `metric` over `cv` folds of the training rows
    (0: `metric` on the test rows, the rows the winner is then reported on)."""

    cv: int = 5
    metric: str = "auto"  # the task's own: mse for a regression, accuracy for a classification
    # A configuration is marked tied with the best unless the paired test on their shared folds
    # finds it worse at this level (core.evidence).
    tie_level: float = 0.05
    # best: the best CV score wins; simplest: the simplest configuration of the best's model
    # within one standard error of it (each model config's `simpler` says what is simpler).
    choose: str = "best"
    # Stop a trial's CV after a fold once its folds so far are worse than the best finished
    # trial's on the same folds at `tie_level` (the same paired test): stopped, never the best.
    early_stop: bool = False


class SearchKind(TextEnum):
    """How the grid's configurations are searched: all of them in full, or halving."""

    grid = "grid"
    halving = "halving"


@dataclass
class SearchSettings:
    """`conf/search/`: how much each configuration of the grid is trained (sweeper.search).

    grid: every configuration in full. halving: successive halving, as scikit-learn's
    HalvingGridSearchCV: every configuration starts on `min_resources`, the best 1/`factor` of
    each rung go on with `factor` times more, up to `max_resources`, where a configuration is
    trained and scored like any grid trial. `resource`: `rows`, the training rows each CV fold
    fits on (a stratified sample for a classification), or `budget`, each model config's own
    budget parameter (its `budget:`, e.g. n_estimators). `min_resources` null: as few as leave
    one configuration (or `factor`) at the last rung; `max_resources` null: every fold's
    training rows, or the model config's own value of its budget parameter."""

    kind: str = SearchKind.grid  # text in the config: Hydra's per-job YAML has no enums
    resource: str = "rows"
    factor: int = 3
    min_resources: Optional[int] = None  # noqa: UP045
    max_resources: Optional[int] = None  # noqa: UP045


@dataclass
class TrustSettings:
    """What the sweep lets run besides scikit-learn (core.trust): `modules`, packages whose
    classes model configs may name (xgboost, lightgbm, your own); `pickled_models`, whether a
    registered model stored as a pickle may be loaded to be compared (loading one runs any code
    its writer put in it)."""

    modules: list[str] = field(default_factory=list)
    pickled_models: bool = False


@dataclass
class Settings:
    """The whole sweep's settings, as every trial agreed on them."""

    backend: Backend = Backend.local
    local: LocalSettings = field(default_factory=LocalSettings)
    argo: ArgoSettings = field(default_factory=ArgoSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    sweep: SweepOptions = field(default_factory=SweepOptions)
    eval: EvalSettings = field(default_factory=EvalSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)

    @classmethod
    def of(cls, cfg: DictConfig | dict[str, Any]) -> Settings:
        """From a composed config (already typed by Hydra), checked once."""
        typed = OmegaConf.structured(cls)
        chosen = {key: cfg[key] for key in SWEEP_WIDE if key in cfg}
        try:
            merged = OmegaConf.merge(typed, chosen)
        except OmegaConfBaseException as err:  # `backend`, or a plan file edited by hand
            key = getattr(err, "full_key", None) or "sweep settings"
            raise SweeperError(f"{key}: {first_line(err)}") from None
        settings = OmegaConf.to_object(merged)
        assert isinstance(settings, cls)
        settings.check()
        return settings

    def resolved(self) -> Settings:
        """With a local storage.root made absolute, so worker processes and later sweeps (and
        `mlflow ui` started elsewhere) agree on it."""
        root = StorageSettings(storage.absolute(self.storage.root))
        return dataclasses.replace(self, storage=root)

    def check(self) -> None:
        root = self.storage.root
        if storage.is_local(root) and storage.absolute(root) in ("/", str(Path.home())):
            raise SweeperError(
                f"storage.root={root} is {storage.absolute(root)} itself: give "
                "the store a folder of its own (storage.root=sweeper-store)"
            )
        workers = self.local.workers
        if workers is not None and workers < 1:
            raise SweeperError(
                f"local.workers={workers} must be at least 1 (or null: one per core)"
            )
        if self.argo.run_as_user < 1 or self.argo.run_as_group < 1:
            raise SweeperError(
                "argo.run_as_user and argo.run_as_group must be a user other "
                "than root (the image's is 10001)"
            )
        per_pod = self.argo.trials_per_pod
        if per_pod != "auto" and (
            not isinstance(per_pod, int) or isinstance(per_pod, bool) or per_pod < 1
        ):
            raise SweeperError(f"argo.trials_per_pod={per_pod} must be at least 1, or auto")
        if self.eval.cv == 1 or self.eval.cv < 0:
            raise SweeperError(f"eval.cv={self.eval.cv} must be 0 (no folds) or at least 2")
        if not 0 < self.mlflow.promote_level < 1 or self.mlflow.promote_margin < 0:
            raise SweeperError(
                f"mlflow.promote_level={self.mlflow.promote_level} must be between 0 and 1, and "
                f"mlflow.promote_margin={self.mlflow.promote_margin} at least 0"
            )
        if self.eval.choose not in ("best", "simplest"):
            raise SweeperError(f"eval.choose={self.eval.choose} is not one of best, simplest")
        if self.eval.choose == "simplest" and not self.eval.cv:
            raise SweeperError(
                "eval.choose=simplest needs CV folds to measure a standard error (eval.cv=0)"
            )
        if self.eval.early_stop and self.eval.cv < 2:
            raise SweeperError(
                "eval.early_stop=true stops CV between folds: eval.cv must be at least 2"
            )
        if self.eval.early_stop and self.backend != Backend.local:
            raise SweeperError(
                f"eval.early_stop runs on backend=local only (backend={self.backend})"
            )
        if not 0 < self.eval.tie_level < 1:
            raise SweeperError(f"eval.tie_level={self.eval.tie_level} must be between 0 and 1")
        self._check_search()
        bad = [m for m in self.trust.modules if not _MODULE.fullmatch(str(m))]
        if bad:
            raise SweeperError(f"trust.modules: {bad[0]!r} is not a module name (e.g. xgboost)")
        if self.eval.metric not in ("auto", *EVERY_METRIC):
            raise SweeperError(
                f"eval.metric={self.eval.metric} is not one of "
                + "; ".join(f"{task}: {', '.join(names)}" for task, names in METRICS_OF.items())
            )

    def _check_search(self) -> None:
        search = self.search
        if search.kind not in tuple(SearchKind):
            raise SweeperError(f"search.kind={search.kind} is not one of grid, halving")
        if search.kind != SearchKind.halving:
            return
        if search.resource not in ("rows", "budget"):
            raise SweeperError(f"search.resource={search.resource} is not one of rows, budget")
        if search.factor < 2:
            raise SweeperError(f"search.factor={search.factor} must be at least 2")
        low, high = search.min_resources, search.max_resources
        if (low is not None and low < 1) or (high is not None and high < 1):
            raise SweeperError("search.min_resources and search.max_resources must be at least 1")
        if low is not None and high is not None and low > high:
            raise SweeperError(
                f"search.min_resources={low} is more than search.max_resources={high}"
            )
        if self.eval.cv < 2:
            raise SweeperError(
                "search=halving ranks configurations by CV: eval.cv must be at least 2"
            )

    def portable(self) -> dict[str, Any]:
        """What a plan file records: everything but the submitting side's own settings
        (`argo.token` in particular must not travel)."""
        record = dataclasses.asdict(self)
        record["backend"] = self.backend.value
        del record["argo"], record["local"]
        return record

    def ranking(self, task: ProblemType = ProblemType.regression) -> Ranking:
        """How trials of a `task` are ranked (the task is the data's: known once it is read)."""
        return Ranking.of(self.eval.metric, self.eval.cv, task)

    @property
    def register_best(self) -> str | None:
        return self.mlflow.register_best or None


def config_dir() -> str:
    """The config tree: inside the package when installed from a wheel, beside it in a checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "conf"
    return str(packaged if packaged.is_dir() else package.parent / "conf")


def register_schemas() -> None:
    """Puts the settings' dataclasses in Hydra's ConfigStore as `schema/<group>`, which
    `conf/config.yaml` pulls in with their defaults. Called by whatever composes the config (the
    app, a plan pod, a test), not by importing this module; storing again replaces the same."""
    store = ConfigStore.instance()
    for name, node in (
        ("local", LocalSettings),
        ("argo", ArgoSettings),
        ("storage", StorageSettings),
        ("mlflow", MlflowSettings),
        ("sweep", SweepOptions),
        ("eval", EvalSettings),
        ("search", SearchSettings),
        ("trust", TrustSettings),
    ):
        store.store(group="schema", name=name, node=node, provider="sweeper")
