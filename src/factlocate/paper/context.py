"""What every report section shares: the run context, the `Section` record and small text helpers.

A section has a `compute` step, which needs the model and fills `DIR/<folder>/` through the
resumable runner it wraps, and a `render` step, which reads only those files and returns
blocks for the page (plotly figures or markdown). A section whose run is shown by another
(Figure 3 reads Figure 2's folder) has no compute step of its own. A section whose runner
keeps results one editor or one case at a time may also have a `partial` step: it renders
what the folder holds before the section is done (or returns nothing), so a page made while
a long run is stopped or still going shows the rows it has.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from factlocate.paper.settings import ReportSettings


class Context:
    """The settings, the output folder and the model, loaded only when a section has work to do."""

    def __init__(self, settings: ReportSettings, out: Path, progress: bool, loader: Callable):
        self.settings, self.out, self.progress, self._loader, self._model = settings, out, progress, loader, None

    @property
    def model(self):
        if self._model is None:
            self._model = self._loader(self.settings.model)
        return self._model

    def folder(self, name: str) -> Path:
        return self.out / name

    def with_settings(self, settings: ReportSettings) -> "Context":
        """The same folder and model loader under other settings (a section shown as a wider run left it)."""
        other = Context(settings, self.out, self.progress, self._loader)
        other._model = self._model
        return other


@dataclass(frozen=True)
class Section:
    key: str  # anchor on the page
    folder: str  # DIR/<folder> holds the run (and done.json once computed)
    title: str
    params: Callable[[ReportSettings], dict]  # the settings the section's results depend on
    command: Callable[[ReportSettings, Path], str]
    render: Callable[[Context], list]
    compute: Callable[[Context], None] | None = None
    paper: Callable[[], str] | None = None
    partial: Callable[[Context], list] | None = None  # render of an unfinished run; [] when it holds nothing
    # (params key, settings field) of the section's list of editors or runs: a finished run with a wider list,
    # and otherwise the same params, also answers a call (see `paper.build`)
    widens: tuple[str, str] | None = None


def q(text: str) -> str:
    return shlex.quote(text)


def md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
