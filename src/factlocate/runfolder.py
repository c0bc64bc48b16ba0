"""One resumable run folder, the layout every runner writes (evaluation, sequential editing, fact-set
tracing, key statistics' partial sums, editor training, the report's sections, the AlphaEdit scan):

    DIR/params.json        the parameters that made the run; a rerun with other ones is refused
    DIR/<group>/<key>.json one file per finished item, written atomically as soon as it is done
    DIR/time.json          compute seconds spent in the folder, summed over every session
    DIR/done.json          written once the whole run is complete (a rerun then returns at once)

    folder = RunFolder(out / "rome").open(params)            # or .open(params, overwrite=True)
    for key, case in folder.execute(items, run_one, pool=pool, task="eval_case", desc="rome"):
        ...                                                    # each result is already on disk
    folder.finish({"cases": len(items)})

`execute` runs `(key, payload)` items here (`run_one(payload)`), or on a Ray pool's workers
(`factlocate.distributed`, task `task` with the same payload); either way this process alone
writes the files, so a Ray run leaves the same folder as a local one and resumes the same way.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

from tqdm.auto import tqdm

from factlocate.errors import FactlocateError
from factlocate.io import read_json, to_jsonable, write_json

PARAMS, DONE, TIME = "params.json", "done.json", "time.json"


def plain(obj):
    """What `obj` reads back as from JSON (tuples become lists, tensors lists, ...)."""
    return json.loads(json.dumps(to_jsonable(obj), default=str))


@dataclass
class RunFolder:
    """A run's folder: its parameters, its items (`group/key.json`), its time and its done marker."""

    path: Path
    group: str = "cases"  # the default item group (a run may keep several: "final", "unedited", ...)
    prefix: str = ""  # item file names are f"{prefix}{key}.json"
    _opened: float | None = field(default=None, repr=False)
    _lock: ClassVar[threading.Lock] = threading.Lock()  # time.json is read, added to and rewritten under it

    def __post_init__(self):
        self.path = Path(self.path)

    # ---------------------------------------------------------------- parameters

    def open(self, params: dict, overwrite: bool | None = None, same: Callable[[dict, dict], bool] | None = None
             ) -> "RunFolder":
        """Write params.json, or check it against the run already in the folder.

        Other parameters are refused with a one-line error naming what changed; `overwrite=True`
        discards the old items instead (None: the command offers no --overwrite). `same(old, new)` replaces
        equality where old runs saved a field another way. The folder's clock starts here.
        """
        params = plain(params)
        path = self.path / PARAMS
        if path.exists() and not overwrite:
            old = read_json(path)
            if not (same(old, params) if same else old == params):
                changed = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
                hint = "" if overwrite is None else ", or --overwrite to discard them"
                raise FactlocateError(f"{self.path} holds results of a run with other parameters (different "
                                      f"{', '.join(changed) or 'settings'}); use another --out{hint}")
        if overwrite:
            for old in (self.path / self.group).glob("*.json"):
                old.unlink()
            (self.path / DONE).unlink(missing_ok=True)
        if not path.exists() or overwrite:  # an accepted old params.json is kept as it was written
            write_json(path, params)
        self._opened = time.time()
        return self

    def params(self) -> dict:
        return read_json(self.path / PARAMS)

    # ---------------------------------------------------------------- items

    def item_path(self, key, group: str | None = None) -> Path:
        return self.path / (group or self.group) / f"{self.prefix}{key}.json"

    def has(self, key, group: str | None = None) -> bool:
        return self.item_path(key, group).exists()

    def read(self, key, group: str | None = None):
        return read_json(self.item_path(key, group))

    def write(self, key, obj, group: str | None = None) -> Path:
        path = write_json(self.item_path(key, group), obj)
        self._tick()
        return path

    def todo(self, keys: Iterable, group: str | None = None) -> list:
        """The keys whose item is not on disk yet, in the given order."""
        return [k for k in keys if not self.has(k, group)]

    def items(self, group: str | None = None) -> list[Path]:
        return sorted((self.path / (group or self.group)).glob(f"{self.prefix}*.json"))

    def execute(self, items: list[tuple], run_one: Callable, *, pool=None, task: str | None = None,
                desc: str = "items", progress: bool = True, bar=None, group: str | None = None,
                keep: Callable | None = None) -> Iterator[tuple]:
        """Run `(key, payload)` items, here (`run_one(payload)`) or on `pool` (its `task`), writing each
        result as `key`'s item as it arrives; yield `(key, result)`. `bar` is a progress bar to advance
        instead of a new one. `keep(key, result) -> result` first stores what does not belong in the item's
        JSON (tensors, beside it) and returns the rest."""
        if pool is not None:
            if task is None:
                raise FactlocateError(f"{desc}: this run has no Ray task")
            stream = pool.map(task, items, desc=f"{desc} (ray)")
        else:
            stream = ((key, run_one(payload)) for key, payload in
                      (items if bar is not None else tqdm(items, desc=desc, disable=not progress or not items,
                                                          dynamic_ncols=True)))
        for key, result in stream:
            if keep is not None:
                result = keep(key, result)
            self.write(key, result, group)
            if bar is not None:
                bar.update()
            yield key, result

    # ---------------------------------------------------------------- time and completion

    def _tick(self) -> None:
        """Add the seconds since the last tick to time.json (a session's time survives an interruption).

        time.json also keeps the wall-clock time of its last tick, and a tick counts only from there: two
        clocks on one folder (a report section's, and the run it wraps writing its items) never count the
        same second twice."""
        with self._lock:
            if self._opened is None:
                return
            now = time.time()
            path = self.path / TIME
            old = read_json(path) if path.exists() else {}
            since = max(self._opened, old.get("mark", 0.0))
            write_json(path, {"seconds": old.get("seconds", 0.0) + max(0.0, now - since), "mark": now})
            self._opened = now

    def seconds(self) -> float:
        """Compute seconds spent in this folder so far, every session together."""
        self._tick()
        path = self.path / TIME
        return read_json(path)["seconds"] if path.exists() else 0.0

    @contextlib.contextmanager
    def clock(self, tick: float = 30.0):
        """Count wall time into time.json while one long step runs (every `tick` seconds, and at the end), so a
        call killed part way still counts; yields a reader of the folder's total seconds."""
        if self._opened is None:
            self._opened = time.time()
        stop = threading.Event()

        def ticker():
            while not stop.wait(tick):
                self._tick()

        thread = threading.Thread(target=ticker, daemon=True)
        thread.start()
        try:
            yield self.seconds
        finally:
            stop.set()
            thread.join()
            self._tick()
            self._opened = None  # the time after the step is not the step's

    @property
    def done(self) -> bool:
        return (self.path / DONE).exists()

    def finish(self, summary: dict | None = None) -> dict:
        """Mark the run complete: done.json holds `summary` and the folder's compute seconds."""
        marker = {**(summary or {}), "seconds": self.seconds()}
        write_json(self.path / DONE, marker)
        return marker

    def finished(self) -> dict | None:
        return read_json(self.path / DONE) if self.done else None
