"""What a report runs: one dataclass, validated, saved with the report and shown per section."""
from __future__ import annotations

from dataclasses import dataclass, field

from factlocate.errors import FactlocateError

CF_EDITORS = ("unedited", "rome", "memit", "alphaedit", "ft", "ft-l", "kn", "mend", "mend-cf", "ke", "ke-cf")
ZSRE_EDITORS = ("unedited", "rome", "memit", "alphaedit", "ft", "ft-l", "mend", "mend-zsre", "ke", "ke-zsre")
CURIE_EDITORS = ("rome", "memit", "alphaedit", "ft", "ft-l", "kn", "mend", "mend-cf", "ke", "ke-cf")
PORTABILITY_EDITORS = ("unedited", "rome", "memit", "alphaedit", "ft-l", "mend-cf", "ke-cf")
# (editor, edits, batch, batches between measurements)
SEQUENTIAL = (("memit", 1000, 100, 1), ("alphaedit", 1000, 100, 1), ("rome", 200, 1, 10))


def editor_subset(names: list[str] | tuple[str, ...]) -> dict:
    """The editor fields of `ReportSettings` cut down to `names` (in the tables' order).

    A run with a subset (say, the trained editors, whose checkpoints must be trained in the same
    session) leaves per-editor results that a later run with every editor reuses.
    """
    known = set(CF_EDITORS + ZSRE_EDITORS + CURIE_EDITORS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise FactlocateError(f"report: unknown editors {unknown}: choose from {', '.join(sorted(known))}")
    return {field: tuple(e for e in default if e in names) for field, default in
            (("counterfact_editors", CF_EDITORS), ("zsre_editors", ZSRE_EDITORS), ("curie_editors", CURIE_EDITORS))}


def load(path) -> "ReportSettings":
    """A committed settings file (YAML with `ReportSettings` fields; configs/report/<model>.yaml), validated."""
    from pathlib import Path

    import yaml

    path = Path(path)
    if not path.is_file():
        raise FactlocateError(f"report settings file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise FactlocateError(f"{path} is not valid YAML: {e}") from e
    unknown = set(values) - set(ReportSettings.__dataclass_fields__)
    if unknown:
        raise FactlocateError(f"{path}: unknown report settings {sorted(unknown)}")
    try:
        return ReportSettings(**values)
    except TypeError as e:
        raise FactlocateError(f"{path}: {e}") from e


@dataclass(frozen=True)
class ReportSettings:
    model: str
    facts: int = 100  # known facts for Figures 2 and 3
    facts_file: str | None = None  # a known-facts JSON (default: the shipped known_1000.json)
    samples: int = 10
    noise: str = "s3"
    window: int = 10
    seed: int = 1
    fig1_prompt: str | None = None  # Figure 1's fact (default: the first fact Figure 2 traced)
    fig1_subject: str | None = None
    sweep_editor: str = "rome"
    sweep_cases: int = 10
    sweep_layers: tuple[int, ...] | None = None  # None: every layer
    sweep_other_cases: int | None = None  # the key tokens other than the last subject's on this many (None: all)
    eval_cases: int = 100
    generation: bool = True  # GE in Table 2
    counterfact: str = "counterfact-sample"  # dataset specs, as for `factlocate eval --dataset`
    zsre: str = "zsre-sample"
    counterfact_editors: tuple[str, ...] = CF_EDITORS
    zsre_editors: tuple[str, ...] = ZSRE_EDITORS
    curie_editors: tuple[str, ...] = CURIE_EDITORS
    sequential: tuple[tuple[str, int, int, int], ...] = SEQUENTIAL
    sequential_dataset: str = "counterfact-sample"
    sequential_leave_out: str | None = None  # "DATASET:SPLIT" the sequential runs never edit (the dev cases)
    overrides: dict = field(default_factory=dict)  # {editor: {hyperparameter: value}}, e.g. for tiny models
    train: dict = field(default_factory=dict)  # {variant: data}, e.g. {"mend-cf": "cf:PATH"}: trained on the page
    tune: dict = field(default_factory=dict)  # {editor: dev cases}, e.g. {"ft-l": 20}: searched on the page (dev)
    generated_columns: bool = True  # Tables 1-2: success judged on greedy generations beside the teacher-forced
    portability: dict = field(default_factory=dict)  # {"counterfact"|"zsre": one-hop file}: Tables 1-2 portability
    portability_dataset: str | None = None  # CounterFact's one-hop file as a dataset: the portability section
    portability_editors: tuple[str, ...] = PORTABILITY_EDITORS

    def __post_init__(self):
        for name in ("facts", "samples", "window", "sweep_cases", "eval_cases"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise FactlocateError(f"report: {name} must be a positive integer, got {value!r}")
        if (self.fig1_prompt is None) != (self.fig1_subject is None):
            raise FactlocateError("report: give both fig1_prompt and fig1_subject, or neither")
        for name in ("counterfact_editors", "zsre_editors", "curie_editors", "portability_editors", "sequential"):
            object.__setattr__(self, name, tuple(tuple(x) if isinstance(x, list) else x for x in getattr(self, name)))
        if not all(isinstance(n, int) and n >= 2 for n in self.tune.values()):
            raise FactlocateError(f"report: tune maps editors to their number of dev cases (at least 2), got {self.tune!r}")
        if self.sweep_other_cases is not None and (not isinstance(self.sweep_other_cases, int)
                                                   or self.sweep_other_cases < 1):
            raise FactlocateError(f"report: sweep_other_cases must be a positive integer, "
                                  f"got {self.sweep_other_cases!r}")
        if self.sweep_layers is not None:
            object.__setattr__(self, "sweep_layers", tuple(self.sweep_layers))
        for entry in self.sequential:
            if len(entry) != 4 or not all(isinstance(v, int) and v >= 1 for v in entry[1:]):
                raise FactlocateError(f"report: sequential entries are (editor, edits, batch, log_every), got {entry}")
