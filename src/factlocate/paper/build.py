"""Run (or resume) every section of the report, then write DIR/index.html from the files alone.

A section is done once `DIR/<folder>/done.json` holds the parameters it ran with; a later
call with the same parameters neither loads the model nor runs anything for it. Nor does a call
whose parameters differ only in asking for fewer editors (or sequential runs) than the finished
run holds: every row it asks for is there, and the page keeps showing the finished run. A call whose list
holds entries the finished run lacks runs the section with both lists joined, so that no finished entry
drops out of done.json (its rows are reused, not recomputed). Its wall
time, summed over the calls that did work in its folder (a call with other settings, e.g.
more editors, adds its time to the earlier calls' whose results the runners reuse), is kept
in `DIR/<folder>/time.json`, rewritten every `TICK` seconds while the section runs, so the time of a
call that is killed before the section is done still counts when the next call finishes it.

Each section's folder is a `factlocate.runfolder.RunFolder` for its done marker and its clock (its
parameters are not checked the run-folder way: a finished section answers a call that asks for fewer
editors, and a call for more widens it). Folders written before the run folder (timing.json for finished
calls, elapsed.json for a call part way) are read and carried into time.json.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.io import read_json, write_json, write_text
from factlocate.paper import page, provenance
from factlocate.paper.sections import COMPUTE_ORDER, SECTIONS, Context, asdict, params_json
from factlocate.paper.settings import ReportSettings
from factlocate.runfolder import TIME, RunFolder


NOT_RUN = "No results yet: run the command above, or `factlocate report` for the whole page."
PARTIAL = ("**Partial results.** This section has not finished at these settings (its run was stopped or is "
           "still going); below is what its folder holds so far. The command above, or `factlocate report`, "
           "finishes it and reuses every result shown.")
TICK = 30.0  # seconds between writes of a running section's elapsed time


def _held(ctx: Context, section) -> dict | None:
    """The parameters a finished run in the section's folder ran with (its done.json), or None."""
    marker = RunFolder(ctx.folder(section.folder)).finished()
    return marker.get("params") if marker else None


def _widened(ctx: Context, section, held: dict | None) -> ReportSettings:
    """This call's settings, with the section's list of editors (or sequential runs) widened to hold a finished
    run's entries too, when that list is all the finished run's parameters differ in: the finished run's list
    if it holds every entry of the call's, else both lists joined, in the tables' order for editors (so that
    a call for a few new editors does not put their rows first) and the call's first for sequential runs.

    A run at the widened settings reuses the finished rows, and its done.json keeps naming them.
    `held` is the finished run's parameters (`_held`).
    """
    if section.widens is None or held is None:
        return ctx.settings
    wanted = params_json(section, ctx.settings)
    key, field = section.widens
    if not isinstance(held, dict) or key not in held or {**held, key: wanted[key]} != wanted:
        return ctx.settings
    new = [x for x in wanted[key] if x not in held[key]]
    if {_name(x) for x in new} & {_name(x) for x in held[key]}:  # the same editor at other settings: not a widening
        return ctx.settings
    if not new:  # the finished run holds every entry asked for: it is shown whole, in its own order
        return dataclasses.replace(ctx.settings, **{field: held[key]})
    joined = wanted[key] + [x for x in held[key] if x not in wanted[key]]
    return dataclasses.replace(ctx.settings, **{field: _table_order(field, joined)})


def _table_order(field: str, entries: list) -> list:
    """Editor names in the order of the field's default list (the paper's rows; others after); other lists as given."""
    default = ReportSettings.__dataclass_fields__[field].default
    if not all(isinstance(x, str) for x in default):  # sequential runs: (editor, edits, batch, log_every)
        return entries
    return sorted(entries, key=lambda x: default.index(x) if x in default else len(default))


def _name(entry) -> str:
    """An editor's name, or a sequential run's (its first field)."""
    return entry if isinstance(entry, str) else entry[0]


def _finished(ctx: Context, section) -> ReportSettings | None:
    """The settings of a finished run in the section's folder that answers this call, or None if none does.

    That is the call's own settings when the run's parameters equal the call's, and the call's settings with
    the run's list of editors (or runs) when that list is the only difference and holds every entry the call's does.
    """
    held = _held(ctx, section)
    if held is None:
        return None
    settings = _widened(ctx, section, held)
    return settings if held == params_json(section, settings) else None


def _legacy_seconds(folder: Path) -> float | None:
    """A folder written before time.json: its finished calls' time plus a call stopped part way."""
    parts = [read_json(folder / name)["seconds"] for name in ("timing.json", "elapsed.json") if (folder / name).exists()]
    return sum(parts) if parts else None


def _seconds(ctx: Context, section) -> float | None:
    """The section's wall time, every call that did work in its folder together (None: none has)."""
    folder = ctx.folder(section.folder)
    if (folder / TIME).exists():
        return read_json(folder / TIME)["seconds"]
    return _legacy_seconds(folder)


def _carry_legacy_time(folder: Path) -> None:
    legacy = _legacy_seconds(folder)
    if legacy is not None and not (folder / TIME).exists():
        write_json(folder / TIME, {"seconds": legacy})
    for name in ("timing.json", "elapsed.json"):
        (folder / name).unlink(missing_ok=True)


def compute(ctx: Context, log=print, only: tuple[str, ...] | None = None) -> list[str]:
    """Run every section (or those in `only`) that is not done; return the keys of those that ran."""
    by_key = {s.key: s for s in SECTIONS}
    ran = []
    for key in COMPUTE_ORDER:
        section = by_key[key]
        if section.compute is None or _finished(ctx, section) is not None or (only is not None and key not in only):
            continue
        log(f"factlocate report: {section.title}")
        folder, wide = ctx.folder(section.folder), _widened(ctx, section, _held(ctx, section))
        _carry_legacy_time(folder)  # earlier calls, finished with other settings or stopped part way
        run = RunFolder(folder)
        with run.clock(TICK):
            section.compute(ctx.with_settings(wide))
        run.finish({"params": params_json(section, wide)})
        ran.append(key)
    if ran:  # this call made numbers: record what with
        provenance.record(ctx.out, ctx.model, ctx.settings)
    return ran


def _blocks(ctx: Context, section, done: bool) -> list:
    if done:
        return section.render(ctx)
    shown = section.partial(ctx) if section.partial else []
    return [PARTIAL, *shown] if shown else [NOT_RUN]


def total_time(ctx: Context) -> str:
    """The page's total wall time: every section's, training included, and which sections have not finished."""
    computed = [section for section in SECTIONS if section.compute is not None]  # each folder once (Figure 3
    total = sum(_seconds(ctx, section) or 0.0 for section in computed)  # is drawn from Figure 2's runs)
    open_ = [section.key for section in computed if _finished(ctx, section) is None]
    tail = (f"; not finished: {', '.join(open_)} (counted as far as they ran)" if open_ else
            "; every section has finished")
    return (f"Total wall time, every section's summed (training and tuning included): {total:,.0f} s "
            f"({total / 3600:.1f} h){tail}.")


def render(ctx: Context, settings_file: str | None = None) -> str:
    s = ctx.settings
    command = (f"factlocate report --settings {settings_file} --out {ctx.out}" if settings_file else
               f"factlocate report --model {s.model} --out {ctx.out}")
    intro = (f"The experiments of Meng et al. 2022 (ROME) remade on **{s.model}** with factlocate, each section "
             f"beside the paper's own numbers for GPT-2 XL and GPT-J. The whole page: `{command}` (resumable: a "
             "rerun only fills what is missing). Every section gives its settings, the command that makes it "
             "alone, and its wall time on the machine that ran it.")
    intro = "\n\n".join([intro, total_time(ctx), *provenance.lines(ctx.out)])
    settings_text = Path(settings_file).read_text(encoding="utf-8") if settings_file else None
    parts = []
    for section in SECTIONS:
        shown = _finished(ctx, section)  # a finished run's settings (maybe wider than this call's), else None
        done, here = shown is not None, ctx.with_settings(shown) if shown is not None else ctx
        parts.append(dict(key=section.key, title=section.title, settings=section.params(here.settings),
                          command=section.command(here.settings, ctx.out), finished=done,
                          seconds=_seconds(ctx, section),
                          paper=section.paper() if section.paper else None,
                          blocks=_blocks(here, section, done)))
    return page.page(f"factlocate: the ROME paper on {s.model}", intro, parts, settings_text)


def build(settings: ReportSettings, out: str | Path, progress: bool = True, loader=None, log=print,
          only: tuple[str, ...] | None = None, settings_file: str | None = None) -> Path:
    """Compute what is missing (only the sections keyed in `only`, if given) and write DIR/index.html.

    `settings_file` names the committed file the settings came from: the page shows it and its command."""
    from factlocate.models import load_model

    unknown = sorted(set(only or ()) - set(COMPUTE_ORDER))
    if unknown:
        raise FactlocateError(f"report: unknown sections {unknown}: choose from {', '.join(COMPUTE_ORDER)}")
    out = Path(out)
    ctx = Context(settings, out, progress, loader or load_model)
    write_json(out / "settings.json", asdict(settings))
    compute(ctx, log, only)
    path = out / "index.html"
    write_text(path, render(ctx, settings_file))
    return path
