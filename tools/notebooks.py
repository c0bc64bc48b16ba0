"""Execute the example notebooks and write HTML copies of them (`make notebooks`; developers only).

    python -m tools.notebooks --out results/notebooks [--only rome] [--model gemma-3-270m]
                              [--screenshots examples/img] [--force]

Each notebook in `examples/` runs top to bottom in a fresh `python3` kernel of
this interpreter (the project's venv) via nbclient; the executed notebook and an
HTML copy (plotly figures embedded, readable offline without Jupyter) land in
`--out`. A notebook whose HTML is newer than its source and was made with the
same model is skipped, so an interrupted run resumes; `--force` redoes all.
`--model` sets FACTLOCATE_NOTEBOOK_MODEL for the kernels (see `factlocate.notebooks`).

With `--screenshots DIR`, the figure of each notebook's cell tagged
`readme-figure` is rendered to `DIR/<notebook>.png` by a headless Chromium
(Debian: `apt-get install chromium`); the README shows those PNGs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.notebooks import MODEL_ENV

NOTEBOOKS = ("causal_trace", "rome", "compare_editors")
KERNEL = "python3"
FIGURE_TAG = "readme-figure"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# The plotly JSON for tools plus self-contained HTML (plotly.js inlined once) for nbconvert.
PLOTLY_RENDERER = "plotly_mimetype+notebook"


# ---------------------------------------------------------------- running notebooks


def examples_dir() -> Path:
    """The `examples/` folder of the source checkout."""
    folder = Path(__file__).resolve().parents[1] / "examples"
    if not folder.is_dir():
        raise FactlocateError(f"no examples folder at {folder}: run from a source checkout")
    return folder


def notebook_path(name: str) -> Path:
    path = examples_dir() / f"{name}.ipynb"
    if not path.exists():
        raise FactlocateError(f"notebook {path.name} not found; choose from {', '.join(NOTEBOOKS)}")
    return path


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    """Set environment variables (inherited by the kernel) for the duration of a block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(path: str | Path, model: str | None = None, timeout: int = 3600, progress: bool = True):
    """Run a notebook top to bottom in a fresh kernel; return the executed notebook.

    `model` sets FACTLOCATE_NOTEBOOK_MODEL for the kernel. A cell that raises
    stops the run with nbclient's CellExecutionError (the partly executed
    notebook is attached as `error.notebook`).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    env = {
        "PLOTLY_RENDERER": PLOTLY_RENDERER,
        "TOKENIZERS_PARALLELISM": "false",
        # tqdm.auto falls back to text bars without ipywidgets; keep its notice out of the pages.
        "PYTHONWARNINGS": "ignore:IProgress not found",
    }
    if model:
        env[MODEL_ENV] = model
    bar = tqdm(total=n_code, desc=path.stem, unit="cell", disable=not progress, file=sys.stdout)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
        coalesce_streams=True,  # one output per stream, progress bars collapsed to their last state
        on_cell_executed=lambda **_: bar.update(1),
    )
    try:
        with _environ(env):
            client.execute()
    except CellExecutionError as e:
        e.notebook = nb
        raise
    finally:
        bar.close()
    return nb


def to_html(nb, path: str | Path) -> Path:
    """Write an executed notebook as a standalone HTML page (atomically)."""
    from nbconvert import HTMLExporter

    from factlocate.io import write_text

    body, _ = HTMLExporter().from_notebook_node(nb)
    return write_text(path, body)


def _save_notebook(nb, path: Path) -> Path:
    import nbformat

    from factlocate.io import write_text

    return write_text(path, nbformat.writes(nb))


# ---------------------------------------------------------------- README screenshots


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise FactlocateError("no headless Chromium found for --screenshots: apt-get install chromium")


def tagged_figure(nb, tag: str = FIGURE_TAG):
    """The plotly figure shown by the (first) code cell tagged `tag`, or None."""
    import plotly.io as pio

    for cell in nb.cells:
        if cell.cell_type != "code" or tag not in cell.metadata.get("tags", []):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME in data:
                return pio.from_json(_json_text(data[PLOTLY_MIME]))
    return None


def _json_text(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def screenshot(fig, png: str | Path, width: int | None = None, height: int | None = None) -> Path:
    """Render a plotly figure to a PNG with headless Chromium (no network needed)."""
    from factlocate.io import atomic_path

    width = int(width or fig.layout.width or 1100)
    height = int(height or fig.layout.height or 500)
    png = Path(png)
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "figure.html"
        fig.write_html(html, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
        shot = Path(tmp) / "figure.png"
        cmd = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp}/profile", f"--screenshot={shot}",
            f"--window-size={width},{height}", "--virtual-time-budget=5000", html.as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not shot.exists():
            raise FactlocateError(f"chromium failed to render {png.name}: {done.stderr.strip()[-300:]}")
        with atomic_path(png) as out:
            shutil.copyfile(shot, out)
    return png


# ---------------------------------------------------------------- command line


def _up_to_date(index: dict, name: str, source: Path, html: Path, model: str) -> bool:
    entry = index.get(name)
    return (
        entry is not None
        and entry.get("model") == model
        and entry.get("ok")
        and html.exists()
        and html.stat().st_mtime >= source.stat().st_mtime
    )


def run(out: str | Path, only: list[str] | None = None, model: str | None = None,
        screenshots: str | Path | None = None, force: bool = False) -> dict:
    """Execute the notebooks named in `only` (default all) into `out`; return the index."""
    from nbclient.exceptions import CellExecutionError

    from factlocate.io import read_json, write_json

    out = Path(out)
    names = list(only or NOTEBOOKS)
    index_path = out / "index.json"
    index = read_json(index_path) if index_path.exists() else {}
    label = model or os.environ.get(MODEL_ENV) or "notebook default"
    for i, name in enumerate(names, 1):
        source, html = notebook_path(name), out / f"{name}.html"
        if not force and not screenshots and _up_to_date(index, name, source, html, label):
            print(f"[{i}/{len(names)}] {name}: up to date, {html}")
            continue
        print(f"[{i}/{len(names)}] {name}: running on {label}", flush=True)
        start = time.perf_counter()
        try:
            nb, error = execute(source, model=model), None
        except CellExecutionError as e:
            nb, error = e.notebook, str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        seconds = round(time.perf_counter() - start, 1)
        _save_notebook(nb, out / f"{name}.ipynb")
        to_html(nb, html)
        index[name] = {"model": label, "ok": error is None, "seconds": seconds, "error": error,
                       "html": html.name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(index_path, index)
        status = "ok" if error is None else f"FAILED: {error}"
        print(f"[{i}/{len(names)}] {name}: {status} in {seconds:.0f} s, {html}", flush=True)
        if screenshots and error is None:
            fig = tagged_figure(nb)
            if fig is None:
                print(f"    no cell tagged {FIGURE_TAG!r} with a plotly figure in {name}")
            else:
                print(f"    screenshot {screenshot(fig, Path(screenshots) / f'{name}.png')}")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/notebooks", help="folder for executed notebooks and HTML")
    parser.add_argument("--only", default=",".join(NOTEBOOKS), help="comma-separated notebook names")
    parser.add_argument("--model", default=None, help=f"override the notebooks' model (sets {MODEL_ENV})")
    parser.add_argument("--screenshots", default=None, help="render each notebook's key figure to PNGs here")
    parser.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    args = parser.parse_args(argv)
    try:
        only = [n.strip().removesuffix(".ipynb") for n in args.only.split(",") if n.strip()]
        for n in only:
            notebook_path(n)
        index = run(args.out, only, args.model, args.screenshots, args.force)
    except FactlocateError as e:
        print(f"factlocate: error: {e}", file=sys.stderr)
        return 2
    failed = [n for n in only if not index.get(n, {}).get("ok")]
    if failed:
        print(f"factlocate: error: notebooks failed: {', '.join(failed)} (see their HTML)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
