"""Typed, validated configuration (TOML).

Every problem is collected and reported at once, each with its key path, before
any Spark work starts. Identifiers (column and table names) are checked against
a strict pattern so that they can never carry SQL; values that end up in Delta
``replaceWhere`` predicates (model names, dates) are validated the same way.

``--set section.key=value`` overrides are parsed as TOML values (``0.5``,
``[0.1, 0.5]``, ``true``); anything that does not parse is taken as a string.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clfeval.core.alerts import AlertRule
from clfeval.core.binary import EXTRA_CURVES, OperatingPoints, ThresholdPolicy
from clfeval.core.bins import BinLayout, make_layout
from clfeval.core.expressions import NAMES, CustomMetric, ExpressionError, parse_expression
from clfeval.errors import ConfigError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")
MAX_CLASSES = 200
MAX_LABELS = 500
MAX_THRESHOLDS = 100
GRANULARITY_NAME = re.compile(r"^(day|week|month|rolling_([2-9]|[1-9][0-9]|[1-3][0-9][0-9]))$")
PREFIX = re.compile(r"^[A-Za-z0-9_]*$")


@dataclass(frozen=True)
class InputConfig:
    path: str | None = None
    table: str | None = None
    model_name_column: str = "model_name"
    model_version_column: str = "model_version"
    event_time_column: str = "event_time"
    label_column: str = "label"
    score_column: str = "score"
    probabilities_column: str = "probabilities"
    predicted_class_column: str | None = None
    weight_column: str | None = None
    date_partition_column: str | None = None
    models: tuple[str, ...] = ()
    filter: str | None = None
    id_column: str | None = None  # joins the [labels] table


@dataclass(frozen=True)
class LabelsConfig:
    """Optional table of (late) labels, joined to the predictions by id."""

    path: str | None = None
    table: str | None = None
    id_column: str = "id"
    label_column: str = "label"

    @property
    def enabled(self) -> bool:
        return self.path is not None or self.table is not None


@dataclass(frozen=True)
class TaskConfig:
    type: str = "binary"
    positive_label: str | int | bool = 1
    negative_labels: tuple[str | int | bool, ...] = ()
    classes: tuple[str | int, ...] = ()
    top_k: tuple[int, ...] = ()
    probability_tolerance: float = 1e-3
    #: Keep the per-true-class split of each class's histogram for one-vs-one
    #: (Hand & Till) AUC: states grow with K² x bins instead of K x bins.
    one_vs_one: bool = False
    #: Multilabel: the label names, 2..MAX_LABELS (scores in this order when an array).
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class BinsConfig:
    layout: str = "logit"
    count: int = 960
    logit_min: float = -12.0
    logit_max: float = 12.0


@dataclass(frozen=True)
class MetricsConfig:
    thresholds: tuple[float, ...] = (0.5,)
    f_beta: float = 2.0
    confidence_level: float = 0.95
    cost_fp: float = 1.0
    cost_fn: float = 1.0
    recall_floor: float = 0.8
    fpr_cap: float = 0.05
    calibration_bins: int = 10
    custom: tuple[CustomMetric, ...] = ()
    partial_auc_max_fpr: tuple[float, ...] = ()
    extra_curves: tuple[str, ...] = ()
    budgets: tuple[float, ...] = ()
    decile_table: bool = False
    recall_at_fpr: tuple[float, ...] = ()
    precision_at_recall: tuple[float, ...] = ()
    specificity_at_sensitivity: tuple[float, ...] = ()
    # The console notes binned values whose guaranteed bounds are wider (0: never).
    max_bound_width: float = 0.02


@dataclass(frozen=True)
class SlicesConfig:
    segment_columns: tuple[str, ...] = ()
    crosses: tuple[tuple[str, ...], ...] = ()
    min_slice_size: int = 0
    max_values: int = 0


@dataclass(frozen=True)
class OutputConfig:
    path: str = "clfeval_output"
    catalog_schema: str | None = None
    table_prefix: str = ""
    quarantine: bool = False
    granularities: tuple[str, ...] = ("day",)
    drift: bool = False
    drift_baseline: str | None = None


@dataclass(frozen=True)
class RunConfig:
    max_reject_fraction: float = 0.05
    timezone: str = "UTC"
    # Incremental runs with no earlier successful run: the N days ending today
    # (run.timezone); 0 = every day in the input.
    initial_lookback_days: int = 0
    # Attempts of a write phase that lost a race with a concurrent run.
    max_attempts: int = 6
    # A 'running' row older than this (or of a dead process on this host) is
    # marked 'abandoned' by the next run.
    stale_after_hours: float = 24.0


@dataclass(frozen=True)
class SourceConfig:
    """``[[sources]]`` of a merge: one place whose stored states are added up, the
    output tables of a clfeval run there (its ``output.path`` or
    ``output.catalog_schema``, and ``output.table_prefix``). ``name`` is the
    place's value of the ``source`` slice column."""

    name: str = ""
    path: str | None = None
    catalog_schema: str | None = None
    table_prefix: str = ""


# Task settings that only decide what is derived from the states, not the states.
DERIVE_ONLY_TASK_KEYS = ("top_k",)

# The slice column a merge adds: the value is the [[sources]] name.
SOURCE_COLUMN = "source"


@dataclass(frozen=True)
class Config:
    input: InputConfig = field(default_factory=InputConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    bins: BinsConfig = field(default_factory=BinsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    slices: SlicesConfig = field(default_factory=SlicesConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    run: RunConfig = field(default_factory=RunConfig)
    alerts: tuple[AlertRule, ...] = ()
    sources: tuple[SourceConfig, ...] = ()

    def layout(self) -> BinLayout:
        """The fixed bin layout; operating thresholds are edges of it."""
        if self.bins.layout == "logit":
            lo, hi = self.bins.logit_min, self.bins.logit_max
        else:
            lo, hi = 0.0, 1.0
        transform = "logit" if self.bins.layout == "logit" else "identity"
        n = self.metrics.calibration_bins
        calibration_edges = tuple(k / n for k in range(1, n))
        return make_layout(
            transform, self.bins.count, lo, hi, self.metrics.thresholds + calibration_edges
        )

    def operating_points(self) -> OperatingPoints:
        """The fixed operating points of ``[metrics]`` (``decile_table`` adds the
        budgets 0.1, 0.2, ..., 1.0)."""
        m = self.metrics
        deciles = tuple(k / 10 for k in range(1, 11)) if m.decile_table else ()
        return OperatingPoints(
            tuple(sorted(set(m.budgets) | set(deciles))),
            m.recall_at_fpr,
            m.precision_at_recall,
            m.specificity_at_sensitivity,
        )

    def threshold_policy(self) -> ThresholdPolicy:
        m = self.metrics
        return ThresholdPolicy(m.cost_fp, m.cost_fn, m.recall_floor, m.fpr_cap)

    def slices_to_compute(self) -> list[tuple[str, ...]]:
        """Overall, each segment column alone, then each configured cross."""
        out: list[tuple[str, ...]] = [()]
        out += [(c,) for c in self.slices.segment_columns]
        out += [tuple(c) for c in self.slices.crosses]
        return out

    def finest_segments(self) -> tuple[str, ...]:
        """Every segment column any slice uses: the grain of the one scan."""
        seen: dict[str, None] = {}
        for s in self.slices_to_compute():
            for c in s:
                seen[c] = None
        return tuple(seen)

    def positive_label_text(self) -> str:
        return label_text(self.task.positive_label)

    def class_texts(self) -> tuple[str, ...]:
        """Multiclass: the class names in the order of the probability vector."""
        return tuple(label_text(v) for v in self.task.classes)

    def negative_label_texts(self) -> tuple[str, ...]:
        return tuple(label_text(v) for v in self.task.negative_labels)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not self.sources:  # an evaluation's hashes stay what they were before merges
            del d["sources"]
        return d

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the whole config."""
        return _sha256(self.to_dict())

    def results_fingerprint(self) -> str:
        """sha256 of the settings that decide the stored results (input, labels,
        task, bins, metrics, slices, granularities): an incremental run continues
        only from a run with the same value. Where the tables live, alert rules
        and run settings are left out, so moving an output folder or adding a
        rule does not force a full recompute."""
        d = self.to_dict()
        keep = {k: d[k] for k in ("input", "labels", "task", "bins", "metrics", "slices")}
        keep["granularities"] = d["output"]["granularities"]
        if self.sources:
            keep["sources"] = d["sources"]
        return _sha256(keep)

    def state_settings(self) -> dict[str, Any]:
        """The settings that decide whether stored states of two places add up:
        the task (type, labels, classes), the bin layout (bins, thresholds and
        calibration bins: ``layout_id``) and the slices. Recorded in ``runs``;
        a merge compares them across its sources."""
        d = self.to_dict()
        task = {k: v for k, v in d["task"].items() if k not in DERIVE_ONLY_TASK_KEYS}
        # As JSON has it (lists, not tuples): the form runs.state_settings is read back in.
        return json.loads(
            json.dumps(
                {
                    "task": task,
                    "layout_id": self.layout().layout_id,
                    "bins": d["bins"],
                    "thresholds": d["metrics"]["thresholds"],
                    "calibration_bins": d["metrics"]["calibration_bins"],
                    "slices": d["slices"],
                },
                default=str,
            )
        )


def _sha256(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def label_text(value: object) -> str:
    """Canonical text of a label, as Spark casts it to string (bools as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


SECTIONS: dict[str, type] = {
    "input": InputConfig,
    "labels": LabelsConfig,
    "task": TaskConfig,
    "bins": BinsConfig,
    "metrics": MetricsConfig,
    "slices": SlicesConfig,
    "output": OutputConfig,
    "run": RunConfig,
}


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# A value that starts like a TOML string, array or inline table must parse as one:
# a missing closing quote would otherwise become a literal text such as '"/data'.
_TOML_OPENERS = ('"', "'", "[", "{")


def _parse_override_value(text: str) -> Any:
    """The TOML value of ``text``, or ``text`` itself when it is bare text
    (``input.path=/data/p``); ValueError for a malformed quoted or bracketed value."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if text.startswith(_TOML_OPENERS):
            raise ValueError(str(exc)) from None
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str], problems: list[str]) -> None:
    """Apply ``section.key=value`` overrides in place; bad ones become problems."""
    for item in overrides:
        if "=" not in item:
            problems.append(f"--set {item!r}: expected section.key=value")
            continue
        path, text = item.split("=", 1)
        parts = path.strip().split(".")
        if len(parts) != 2 or not all(parts):
            problems.append(f"--set {item!r}: key must be section.key, e.g. input.path")
            continue
        section, key = parts
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            problems.append(f"{section}: expected a table")
            continue
        try:
            raw[section][key] = _parse_override_value(text.strip())
        except ValueError as exc:
            problems.append(f"--set {item!r}: the value is not valid TOML ({exc})")


def _check_type(path: str, value: Any, annotation: str, problems: list[str]) -> Any:
    """Coerce and check one value against its field's annotation (as written in source)."""

    def is_num(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    kind = annotation.replace(" ", "")
    if kind in ("str", "str|None"):
        if value is None and kind.endswith("None"):
            return None
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {value!r}")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer, got {value!r}")
        return value
    if kind == "float|None" and value is None:
        return None
    if kind in ("float", "float|None"):
        if not is_num(value):
            problems.append(f"{path}: expected a number, got {value!r}")
            return value
        return float(value)
    if kind == "str|int":
        if not isinstance(value, str | int) or isinstance(value, bool):
            problems.append(f"{path}: expected a string or an integer, got {value!r}")
        return value
    if kind == "str|int|bool":
        if not isinstance(value, str | int | bool):
            problems.append(f"{path}: expected a string, integer or boolean, got {value!r}")
        return value
    if kind.startswith("tuple["):
        if not isinstance(value, list | tuple):
            problems.append(f"{path}: expected a list, got {value!r}")
            return ()
        inner = kind[len("tuple[") : -len(",...]")]
        return tuple(_check_type(f"{path}[{i}]", v, inner, problems) for i, v in enumerate(value))
    return value


def parse_config(raw: dict[str, Any]) -> Config:
    """Validate a raw dict (from TOML) into a Config, or raise ConfigError with every problem."""
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for section_name, section_value in raw.items():
        if section_name in ("alerts", "sources"):
            continue
        if section_name not in SECTIONS:
            problems.append(
                f"{section_name}: unknown section{_did_you_mean(section_name, list(SECTIONS))}"
            )
            continue
        if not isinstance(section_value, dict):
            problems.append(f"{section_name}: expected a table of keys")
            continue
        cls = SECTIONS[section_name]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in section_value.items():
            path = f"{section_name}.{key}"
            if key not in fields:
                problems.append(f"{path}: unknown key{_did_you_mean(key, list(fields))}")
                continue
            before = len(problems)
            if path == "metrics.custom":
                checked = _parse_custom_metrics(value, problems)
            else:
                checked = _check_type(path, value, str(fields[key].type), problems)
            if len(problems) == before:  # a bad value keeps its default: report, go on
                values[key] = checked
        sections[section_name] = values
    alerts = _parse_alerts(raw.get("alerts", []), problems)
    sources = _parse_sources(raw.get("sources", []), problems)
    config = Config(
        **{name: SECTIONS[name](**vals) for name, vals in sections.items()},
        alerts=alerts,
        sources=sources,
    )
    problems.extend(_semantic_problems(config))
    if problems:
        raise ConfigError(problems)
    return config


CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _parse_custom_metrics(raw: Any, problems: list[str]) -> tuple[CustomMetric, ...]:
    """``[[metrics.custom]]``: each a ``name``, an ``expression`` (parsed by
    ``core.expressions``, never evaluated as Python) and optionally ``optimize``."""
    if not isinstance(raw, list):
        problems.append("metrics.custom: expected a list of tables ([[metrics.custom]])")
        return ()
    out: list[CustomMetric] = []
    for n, item in enumerate(raw):
        path = f"metrics.custom[{n}]"
        if not isinstance(item, dict):
            problems.append(f"{path}: expected a table with name and expression")
            continue
        unknown = sorted(set(item) - {"name", "expression", "optimize"})
        for key in unknown:
            problems.append(f"{path}.{key}: unknown key (name, expression, optimize)")
        name, text, optimize = item.get("name"), item.get("expression"), item.get("optimize")
        if not isinstance(name, str) or not CUSTOM_NAME.match(name):
            problems.append(
                f"{path}.name: {name!r} must be lower-case letters, digits and '_' "
                "(at most 63, starting with a letter)"
            )
            continue
        if name in NAMES or name in BUILT_IN_METRICS or any(m.name == name for m in out):
            problems.append(f"{path}.name: {name!r} is already a metric's name")
            continue
        if optimize not in (None, "max", "min"):
            problems.append(f'{path}.optimize: {optimize!r} must be "max" or "min"')
            continue
        try:
            expression = parse_expression(text)
        except ExpressionError as exc:
            problems.append(f"{path}.expression ({name}): {exc}")
            continue
        out.append(CustomMetric(name, expression, optimize))
    return tuple(out)


# Metric names clfeval writes itself: a custom metric may not take one.
BUILT_IN_METRICS = frozenset(
    {
        "f_beta",
        "cohen_kappa",
        "lr_plus",
        "lr_minus",
        "diagnostic_odds_ratio",
        "gini",
        "ks_statistic",
        "pr_auc",
        "prevalence",
        "ece",
        "mce",
        "brier_reliability",
        "brier_resolution",
        "brier_uncertainty",
        "support",
        "rejected_rows",
        "label_coverage",
        "below_min_slice_size",
    }
)


BASELINE = re.compile(r"^(previous_window|window:\d{4}-\d{2}-\d{2}|champion:[A-Za-z0-9_.:\-]+)$")


def _table_list_items(
    section: str, raw: list, cls: type, expected: str, problems: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """The checked keys of each table of ``[[section]]`` (fields of dataclass
    ``cls``), with its path for messages; problems named by ``section[n].key``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    items = []
    for n, item in enumerate(raw):
        path = f"{section}[{n}]"
        if not isinstance(item, dict):
            problems.append(f"{path}: expected {expected}")
            continue
        values = {}
        for key, value in item.items():
            if key not in fields:
                problems.append(f"{path}.{key}: unknown key{_did_you_mean(key, list(fields))}")
                continue
            before = len(problems)
            checked = _check_type(f"{path}.{key}", value, str(fields[key].type), problems)
            if len(problems) == before:
                values[key] = checked
        items.append((path, values))
    return items


def _parse_alerts(raw: Any, problems: list[str]) -> tuple[AlertRule, ...]:
    """``[[alerts]]``: a list of rule tables, each checked like a section."""
    if not isinstance(raw, list):
        problems.append("alerts: expected a list of tables ([[alerts]])")
        return ()
    rules = []
    for path, values in _table_list_items("alerts", raw, AlertRule, "a table of keys", problems):
        rule = AlertRule(**values)
        if not rule.name or not MODEL_NAME.match(rule.name):
            problems.append(f"{path}.name: give a name of letters, digits and _ . : -")
        if not rule.metric or not MODEL_NAME.match(rule.metric):
            problems.append(f"{path}.metric: give a metric name, e.g. 'roc_auc'")
        if not BASELINE.match(rule.baseline):
            problems.append(
                f"{path}.baseline: {rule.baseline!r} must be 'previous_window', "
                "'window:YYYY-MM-DD' or 'champion:<model version>'"
            )
        if rule.change not in ("absolute", "relative"):
            problems.append(f"{path}.change: {rule.change!r} must be 'absolute' or 'relative'")
        if all(v is None for v in (rule.min_value, rule.max_value, rule.max_drop, rule.max_rise)):
            problems.append(f"{path}: set at least one of min_value, max_value, max_drop, max_rise")
        if not GRANULARITY_NAME.match(rule.granularity):
            problems.append(f"{path}.granularity: {rule.granularity!r} is not a granularity")
        rules.append(rule)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        problems.append("alerts: rule names must be unique")
    return tuple(rules)


def _parse_sources(raw: Any, problems: list[str]) -> tuple[SourceConfig, ...]:
    """``[[sources]]``: a list of tables, each checked like a section."""
    if not isinstance(raw, list):
        problems.append("sources: expected a list of tables ([[sources]])")
        return ()
    expected = "a table with name and path (or catalog_schema)"
    items = _table_list_items("sources", raw, SourceConfig, expected, problems)
    return tuple(SourceConfig(**values) for _, values in items)


def source_location(source: SourceConfig) -> str:
    """A source's place as a comparable text (local paths absolute)."""
    where = source.catalog_schema or _normalized_location(source.path or "")
    return f"{where} (table prefix {source.table_prefix!r})"


def _merge_problems(c: Config) -> list[str]:
    """A merge config: named, distinct [[sources]], no input of its own, and
    ``source`` first in any cross that uses it."""
    p: list[str] = []
    if c.input.path is not None or c.input.table is not None or c.labels.enabled:
        p.append(
            "input / labels: a merge reads the stored states of its [[sources]]; "
            "remove input.path, input.table and [labels]"
        )
    seen_names: dict[str, int] = {}
    seen_places: dict[str, int] = {}
    for n, s in enumerate(c.sources):
        path = f"sources[{n}]"
        if not s.name or not MODEL_NAME.match(s.name):
            p.append(f"{path}.name: {s.name!r}: give a name of letters, digits and _ . : -")
        elif s.name in seen_names:
            p.append(f"{path}.name: {s.name!r} is also the name of sources[{seen_names[s.name]}]")
        else:
            seen_names[s.name] = n
        if (s.path is None) == (s.catalog_schema is None):
            p.append(f"{path}: set exactly one of path or catalog_schema (where its tables are)")
            continue
        if s.catalog_schema is not None and not SCHEMA_NAME.match(s.catalog_schema):
            p.append(f"{path}.catalog_schema: {s.catalog_schema!r} is not a [catalog.]schema name")
        if not PREFIX.match(s.table_prefix):
            p.append(f"{path}.table_prefix: {s.table_prefix!r} may only hold letters, digits, _")
        place = source_location(s)
        if place in seen_places:
            p.append(
                f"{path} ({s.name}): {place} is listed twice (also sources[{seen_places[place]}]); "
                "its states would be counted twice"
            )
        else:
            seen_places[place] = n
        central = SourceConfig(
            path=c.output.path if c.output.catalog_schema is None else None,
            catalog_schema=c.output.catalog_schema,
            table_prefix=c.output.table_prefix,
        )
        if place == source_location(central):
            p.append(f"{path} ({s.name}): {place} is the merge's own output; give another place")
    for n, cross in enumerate(c.slices.crosses):
        if SOURCE_COLUMN in cross and cross[0] != SOURCE_COLUMN:
            p.append(f"slices.crosses[{n}]: put {SOURCE_COLUMN!r} first in a cross that uses it")
    return p


def _task_problems(c: Config) -> list[str]:
    t = c.task
    p: list[str] = []
    if t.type not in ("binary", "multiclass", "multilabel"):
        p.append(f"task.type: {t.type!r} must be 'binary', 'multiclass' or 'multilabel'")
    if t.type != "multilabel" and t.labels:
        p.append("task.labels: only used with task.type = 'multilabel'")
    if t.type == "multilabel":
        return p + _multilabel_problems(c)
    if t.type != "multiclass":
        for key in ("classes", "top_k", "one_vs_one"):
            if getattr(t, key):
                p.append(f"task.{key}: only used with task.type = 'multiclass'")
        return p
    texts = [label_text(v) for v in t.classes]
    if not 3 <= len(texts) <= MAX_CLASSES:
        p.append(
            f"task.classes: a multiclass task needs 3 to {MAX_CLASSES} classes, got {len(texts)}"
        )
    seen: set[str] = set()
    for n, text in enumerate(texts):
        if text in seen:
            p.append(f"task.classes[{n}]: {text!r} is listed twice")
        seen.add(text)
    for n, k in enumerate(t.top_k):
        if not 1 <= k < max(len(texts), 2):
            p.append(f"task.top_k[{n}]: {k} must lie in [1, number of classes)")
    if not 0.0 < t.probability_tolerance <= 0.5:
        p.append(f"task.probability_tolerance: {t.probability_tolerance} must lie in (0, 0.5]")
    return p


def _multilabel_problems(c: Config) -> list[str]:
    t = c.task
    p = [
        f"task.{key}: only used with task.type = 'multiclass'"
        for key in ("classes", "top_k", "one_vs_one")
        if getattr(t, key)
    ]
    if not 2 <= len(t.labels) <= MAX_LABELS:
        p.append(
            f"task.labels: a multilabel task needs 2 to {MAX_LABELS} labels, got {len(t.labels)}"
        )
    seen: set[str] = set()
    for n, label in enumerate(t.labels):
        if not label:
            p.append(f"task.labels[{n}]: a label may not be empty")
        elif label in seen:
            p.append(f"task.labels[{n}]: {label!r} is listed twice")
        seen.add(label)
    if c.labels.enabled:
        p.append("labels: a [labels] table is not supported with task.type = 'multilabel'")
    return p


def _labels_problems(c: Config) -> list[str]:
    p: list[str] = []
    lab = c.labels
    if lab.path is not None and lab.table is not None:
        p.append("labels: set at most one of labels.path or labels.table")
    if lab.table is not None and not QUALIFIED_NAME.match(lab.table):
        p.append(f"labels.table: {lab.table!r} is not a valid [catalog.]schema.table name")
    for key in ("id_column", "label_column"):
        value = getattr(lab, key)
        if not IDENTIFIER.match(value):
            p.append(f"labels.{key}: {value!r} is not a plain column name ([A-Za-z_][A-Za-z0-9_]*)")
    if lab.enabled and c.input.id_column is None:
        p.append("input.id_column: needed with a [labels] table (the column both tables share)")
    return p


def _semantic_problems(c: Config) -> list[str]:
    p: list[str] = []
    i = c.input
    if c.sources:
        p.extend(_merge_problems(c))
    elif (i.path is None) == (i.table is None):
        p.append("input: set exactly one of input.path or input.table")
    if i.table is not None and not QUALIFIED_NAME.match(i.table):
        p.append(f"input.table: {i.table!r} is not a valid [catalog.]schema.table name")
    for key in (
        "model_name_column",
        "model_version_column",
        "event_time_column",
        "label_column",
        "score_column",
        "probabilities_column",
        "predicted_class_column",
        "weight_column",
        "date_partition_column",
        "id_column",
    ):
        value = getattr(i, key)
        if value is not None and not IDENTIFIER.match(value):
            p.append(f"input.{key}: {value!r} is not a plain column name ([A-Za-z_][A-Za-z0-9_]*)")
    p.extend(_labels_problems(c))
    if i.filter is not None and (
        not i.filter.strip()
        or ";" in i.filter
        or "\n" in i.filter
        or re.search(r"\bselect\b", i.filter, re.IGNORECASE)
    ):
        p.append(
            "input.filter: must be one non-empty Spark SQL boolean expression over the "
            "input's columns (no ';', no line breaks, no subqueries)"
        )
    for n, model in enumerate(i.models):
        if not MODEL_NAME.match(model):
            p.append(f"input.models[{n}]: {model!r} may only hold letters, digits and _ . : -")
    p.extend(_task_problems(c))
    pos = label_text(c.task.positive_label)
    if pos in {label_text(v) for v in c.task.negative_labels}:
        p.append(f"task.negative_labels: contains the positive label {pos!r}")
    b = c.bins
    if b.layout not in ("logit", "uniform"):
        p.append(f"bins.layout: {b.layout!r} must be 'logit' or 'uniform'")
    if not 10 <= b.count <= 100_000:
        p.append(f"bins.count: {b.count} must be between 10 and 100000")
    if not -30.0 <= b.logit_min < b.logit_max <= 30.0:
        p.append("bins.logit_min / bins.logit_max: need -30 <= logit_min < logit_max <= 30")
    m = c.metrics
    if not m.thresholds:
        p.append("metrics.thresholds: give at least one operating threshold")
    for n, t in enumerate(m.thresholds):
        if not 0.0 < t <= 1.0:
            p.append(f"metrics.thresholds[{n}]: {t} must lie in (0, 1] (the bin range)")
    for name in m.extra_curves:
        if name not in EXTRA_CURVES:
            p.append(f"metrics.extra_curves: {name!r} is not one of {', '.join(EXTRA_CURVES)}")
    if m.max_bound_width < 0:
        p.append(f"metrics.max_bound_width: {m.max_bound_width} must be >= 0 (0: no note)")
    for key in (
        "partial_auc_max_fpr",
        "budgets",
        "recall_at_fpr",
        "precision_at_recall",
        "specificity_at_sensitivity",
    ):
        for n, limit in enumerate(getattr(m, key)):
            if not 0 < limit <= 1:
                p.append(f"metrics.{key}[{n}]: {limit} must lie in (0, 1]")
    if len(set(m.thresholds)) != len(m.thresholds):
        p.append("metrics.thresholds: duplicate thresholds")
    if len(m.thresholds) > MAX_THRESHOLDS:
        p.append(
            f"metrics.thresholds: {len(m.thresholds)} thresholds, at most {MAX_THRESHOLDS} "
            "(every threshold is a bin edge, a confusion matrix and metric rows per group)"
        )
    if not 0.5 <= m.confidence_level < 1.0:
        p.append(f"metrics.confidence_level: {m.confidence_level} must lie in [0.5, 1)")
    if not 2 <= m.calibration_bins <= 100:
        p.append(f"metrics.calibration_bins: {m.calibration_bins} must be between 2 and 100")
    if m.cost_fp < 0 or m.cost_fn < 0:
        p.append("metrics.cost_fp / metrics.cost_fn: costs must be >= 0")
    if not 0.0 <= m.recall_floor <= 1.0:
        p.append(f"metrics.recall_floor: {m.recall_floor} must lie in [0, 1]")
    if not 0.0 <= m.fpr_cap <= 1.0:
        p.append(f"metrics.fpr_cap: {m.fpr_cap} must lie in [0, 1]")
    if not m.f_beta > 0:
        p.append(f"metrics.f_beta: {m.f_beta} must be > 0")
    s = c.slices
    for n, col in enumerate(s.segment_columns):
        if not IDENTIFIER.match(col):
            p.append(f"slices.segment_columns[{n}]: {col!r} is not a plain column name")
    if s.min_slice_size < 0:
        p.append(f"slices.min_slice_size: {s.min_slice_size} must be >= 0")
    if s.max_values < 0:
        p.append(f"slices.max_values: {s.max_values} must be >= 0 (0: no cap)")
    if len(set(s.segment_columns)) != len(s.segment_columns):
        p.append("slices.segment_columns: duplicate columns")
    for n, cross in enumerate(s.crosses):
        if len(cross) < 2:
            p.append(f"slices.crosses[{n}]: a cross needs at least two columns")
        if len(set(cross)) != len(cross):
            p.append(f"slices.crosses[{n}]: repeats a column")
        for col in cross:
            if not IDENTIFIER.match(col):
                p.append(f"slices.crosses[{n}]: {col!r} is not a plain column name")
    o = c.output
    if o.catalog_schema is not None and not SCHEMA_NAME.match(o.catalog_schema):
        p.append(f"output.catalog_schema: {o.catalog_schema!r} is not a [catalog.]schema name")
    for n, g in enumerate(o.granularities):
        if not GRANULARITY_NAME.match(g):
            p.append(
                f"output.granularities[{n}]: {g!r} must be 'day', 'week', 'month' or "
                "'rolling_N' (N days, 2..399)"
            )
    if o.drift_baseline is not None and (
        not BASELINE.match(o.drift_baseline) or o.drift_baseline == "previous_window"
    ):
        p.append(
            f"output.drift_baseline: {o.drift_baseline!r} must be 'window:YYYY-MM-DD' or "
            "'champion:<model version>' (the previous window is always compared)"
        )
    if "day" not in o.granularities:
        p.append("output.granularities: must include 'day' (rollups are sums of days)")
    if len(set(o.granularities)) != len(o.granularities):
        p.append("output.granularities: duplicate granularities")
    if not PREFIX.match(o.table_prefix):
        p.append(f"output.table_prefix: {o.table_prefix!r} may only hold letters, digits and _")
    if not o.path:
        p.append("output.path: must not be empty")
    p += _nesting_problems(c)
    r = c.run
    if r.initial_lookback_days < 0:
        p.append(f"run.initial_lookback_days: {r.initial_lookback_days} must be >= 0 (0: all days)")
    if not r.stale_after_hours > 0:
        p.append(f"run.stale_after_hours: {r.stale_after_hours} must be > 0")
    if not 1 <= r.max_attempts <= 20:
        p.append(f"run.max_attempts: {r.max_attempts} must be between 1 and 20")
    if not 0.0 <= r.max_reject_fraction <= 1.0:
        p.append(f"run.max_reject_fraction: {r.max_reject_fraction} must lie in [0, 1]")
    try:
        ZoneInfo(r.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        p.append(f"run.timezone: {r.timezone!r} is not a known IANA time zone")
    return p


def _normalized_location(path: str) -> str:
    """A path as a comparable location: local paths absolute, no trailing slash."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", path)
    if scheme is None or scheme.group(1).lower() == "file":
        local = path.split(":", 1)[1] if scheme else path
        return "file:" + str(Path(local).expanduser().resolve())
    return path.rstrip("/")


def _nesting_problems(c: Config) -> list[str]:
    """The output folder must not be, contain or lie inside an input table: a
    routine VACUUM of the predictions would delete the output tables' files."""
    if c.output.catalog_schema or not c.output.path:
        return []
    out = _normalized_location(c.output.path)
    problems = []
    for key, path in (("input.path", c.input.path), ("labels.path", c.labels.path)):
        if not path:
            continue
        inp = _normalized_location(path)
        if out == inp or out.startswith(inp + "/") or inp.startswith(out + "/"):
            problems.append(
                f"output.path: {c.output.path!r} and {key} {path!r} are the same folder or one "
                "lies inside the other; put the output tables outside the input table "
                "(VACUUM of the input would delete them)"
            )
    return problems


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a TOML file (or start from defaults), apply overrides, validate."""
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"--config: file {str(path)!r} does not exist"]) from None
        except IsADirectoryError:
            raise ConfigError(
                [f"--config: {str(path)!r} is a directory, not a TOML file"]
            ) from None
        except UnicodeDecodeError:
            raise ConfigError([f"--config: {str(path)!r} is not a text (UTF-8) file"]) from None
        except OSError as exc:
            raise ConfigError([f"--config: {str(path)!r} cannot be read: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"--config: {path} is not valid TOML: {exc}"]) from None
    apply_overrides(raw, overrides or [], problems)
    if problems:
        raise ConfigError(problems)
    return parse_config(raw)
