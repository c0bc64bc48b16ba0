"""Spreading work over Ray actors: the one execution layer behind `--ray` on trace-facts, eval, sweep and stats.

    with workers(RayOptions(address=None), model_spec) as pool:      # a local Ray instance
        for key, result in pool.map("trace_fact", items):            # items: (key, payload) pairs
            write(key, result)                                        # the driver alone writes files

Each worker is a Ray actor that loads the model once and runs named tasks
(`TASKS`, below) on the items the driver hands it. Ray's `ActorPool` does the
handing out; factlocate has no scheduler, queue or RPC of its own. An actor that
dies (killed, out of memory) is restarted by Ray, which loads the model again and
retries the item it was running, so the run still gets every result. Every task
seeds itself from its item (the fact, the case id, the run's seed), never from the
worker or the order, so a Ray run gives the single-process results.

Without Ray installed, `--ray` fails with a one-line error naming `pip install factlocate[ray]`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tqdm.auto import tqdm

from factlocate.errors import FactlocateError

LOCAL = "local"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: `address` None/"local" starts a local instance, "auto" or host:port joins one."""

    address: str | None = None
    workers: int | None = None  # default: as many as the cluster's CPUs (or GPUs) allow
    cpus_per_worker: int = 1
    gpus_per_worker: float | None = None  # default: 1 where the cluster has GPUs, else 0
    verbose: bool = False

    def __post_init__(self):
        if self.cpus_per_worker < 1:
            raise FactlocateError("--cpus-per-worker must be at least 1")
        if self.workers is not None and self.workers < 1:
            raise FactlocateError("--workers must be at least 1")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise FactlocateError("--gpus-per-worker must be >= 0")


def _ray():
    try:
        import ray
    except ImportError as e:
        raise FactlocateError("--ray needs Ray: pip install 'factlocate[ray]'") from e
    return ray


# ---------------------------------------------------------------- tasks run on the workers


def _task_trace_fact(worker, payload):
    from factlocate.tracing.facts import FactSetSpec, trace_or_skip
    from factlocate.tracing.noise import resolve_noise

    spec = FactSetSpec(**payload["spec"])
    noise = resolve_noise(worker.model, spec.run.noise, sigma=payload["sigma"])
    return trace_or_skip(worker.model, payload["fact"], spec, noise, payload.get("partners"))


def _task_eval_case(worker, payload):
    """One evaluation case. The editor's `prepare` (AlphaEdit's projections) runs once per actor and
    (editor, hyperparameters), as in a single-process run, not once per case; a worker keeps only the latest."""
    from factlocate import editors
    from factlocate.evaluation.runner import PreCache, prepared, run_case
    from factlocate.identity import identity

    model, hparams = worker.model, payload["hparams"]
    module = editors.get(payload["editor"]) if payload["editor"] else None
    key = (payload["editor"], repr(hparams))
    if key not in worker.prepared:
        worker.prepared.clear()  # one run's work at a time: AlphaEdit's projections are d_mlp² per layer
        worker.prepared[key] = prepared(module, model, hparams)
    cache = PreCache(identity(model).key, payload["dataset"], payload["params"]) if payload["pre_cache"] else None
    return run_case(model, payload["record"], module, hparams, payload["params"], cache,
                    payload.get("reference"), worker.prepared[key])


def _task_info(worker, payload):
    from factlocate.identity import identity

    return {"n_layers": int(worker.model.cfg.n_layers), "identity": identity(worker.model),
            "prepared": [editor for editor, _ in worker.prepared]}


def _task_noise(worker, payload):
    from factlocate.tracing.noise import resolve_noise

    return resolve_noise(worker.model, payload["noise"], subjects=payload["subjects"]).describe()


def _task_stats_plan(worker, payload):
    from factlocate.editors.keyvalue.key_stats_ray import plan

    return plan(worker.model, **payload)


def _task_stats_shard(worker, payload):
    from factlocate.editors.keyvalue.key_stats_ray import shard_texts

    return shard_texts(worker.model, payload["layers"], payload["texts"], payload["dtype"], payload["max_len"])


TASKS: dict[str, Callable] = {
    "info": _task_info,
    "noise": _task_noise,
    "trace_fact": _task_trace_fact,
    "eval_case": _task_eval_case,
    "stats_plan": _task_stats_plan,
    "stats_shard": _task_stats_shard,
}


class _Worker:
    """A Ray actor: the model, loaded once, the editors' once-per-run work (`prepared`), and the tasks.

    Each task is called as task(worker, payload)."""

    def __init__(self, model_spec: str, threads: int):
        import torch

        from factlocate.models import load_model

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        torch.set_num_threads(threads)
        logging.getLogger("factlocate").setLevel(logging.ERROR)  # the driver reports checks once
        self.model = load_model(model_spec)
        self.prepared: dict = {}  # (editor, repr(hparams)) -> compute_edit options on the unedited weights; one entry

    def run(self, task: str, key, payload):
        return key, TASKS[task](self, payload)

    def pid(self) -> int:
        return os.getpid()


# ---------------------------------------------------------------- the driver's side


class Pool:
    """Actors holding one model each; `map` hands them items through Ray's ActorPool."""

    def __init__(self, actors: list, ray, start_seconds: float = 0.0):
        from ray.util import ActorPool

        self.actors, self.ray, self.start_seconds = actors, ray, start_seconds
        self._pool = ActorPool(actors)

    def map(self, task: str, items: Iterable[tuple], desc: str = "items",
            on_result: Callable | None = None) -> Iterator[tuple]:
        """Yield (key, result) for every (key, payload) item as it finishes, with one progress bar."""
        items = list(items)
        bar = tqdm(total=len(items), desc=desc, unit="item", dynamic_ncols=True)
        try:
            for key, value in self._pool.map_unordered(lambda a, item: a.run.remote(task, *item), items):
                bar.update()
                if on_result is not None:
                    on_result(key, value, self)
                yield key, value
        finally:
            bar.close()

    def info(self) -> dict:
        """The model's layer count and identity, as one worker sees it."""
        return self.ray.get(self.actors[0].run.remote("info", "info", {}))[1]

    def pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])


@contextlib.contextmanager
def workers(options: RayOptions, model_spec: str) -> Iterator[Pool]:
    """Start (or join) Ray, create the actors, and shut a local instance down afterwards."""
    ray = _ray()
    local = options.address in (None, LOCAL)
    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=options.verbose,
                      logging_level=logging.INFO if options.verbose else logging.ERROR)
        if local:
            kwargs["num_cpus"] = os.cpu_count()
        else:
            kwargs["address"] = options.address
        try:
            ray.init(**kwargs)
        except ConnectionError as e:
            raise FactlocateError(f"cannot join the Ray cluster at {options.address}: {e}") from e
        started = True
    try:
        resources = ray.cluster_resources()
        gpus = options.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        n = options.workers or _fit(resources, options.cpus_per_worker, gpus)
        actor = ray.remote(_Worker).options(num_cpus=options.cpus_per_worker, num_gpus=gpus,
                                            max_restarts=-1, max_task_retries=-1)
        start = time.perf_counter()
        actors = [actor.remote(model_spec, options.cpus_per_worker) for _ in range(n)]
        pool = Pool(actors, ray)
        ray.get([a.pid.remote() for a in actors])  # wait until every model is loaded
        pool.start_seconds = time.perf_counter() - start
        yield pool
    finally:
        if started:
            ray.shutdown()


def _fit(resources: dict, cpus: int, gpus: float) -> int:
    if gpus > 0:
        return max(1, int(resources.get("GPU", 0) // gpus))
    return max(1, int(resources.get("CPU", 1) // cpus))
