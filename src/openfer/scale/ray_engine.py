"""Large jobs on a Ray cluster (``openfer analyze|video ... --engine ray``; needs ``openfer[ray]``).

* **Photos** go through Ray Data: the batch's list of inputs still to do becomes a dataset, and
  ``map_batches`` runs :func:`openfer.batch.analyze_item` in a pool of actors
  (``ray.data.ActorPoolStrategy``), each building one :class:`~openfer.pipeline.Analyzer` from the
  batch's :class:`~openfer.pipeline.AnalyzerOptions` once. Each actor writes the rows of each of its
  batches as one Parquet partition into the batch's work folder (``<work>/parts/``,
  :func:`openfer.batch.write_partition`) and returns only a reference per input; the driver,
  :func:`openfer.batch.run_batch` as in local mode, appends the references to the manifest, so a
  killed driver resumes with ``--resume``, and assembles the same JSON/CSV/Parquet from the
  partitions, in input order: the outputs are those of a local run. Without a work folder (no
  output file) the rows come back to the driver instead.
* **Videos** run as one Ray task per video (:func:`openfer.scale.videos.run_video_task`), at most
  one per worker at a time, each writing the per-video folder that local mode writes (resumable
  the same way).

Each actor or task asks Ray for ``cpus_per_worker`` CPUs (default 0.5) and runs ONNX Runtime with
``threads`` threads (default 1): a pool that reserved every CPU would leave none for Ray Data's own
tasks and hang on a small machine. The pool has one actor per CPU of the cluster unless
``workers`` says otherwise.

On a cluster every node needs openfer installed (the same version) and the inputs and outputs on a
path that every node sees at the same name (a shared file system): the actors read the images and
write the annotated images and the partitions themselves; the driver writes the manifest and the
tables.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..batch import BatchItem, BatchOutputs, ImageRow, RowRef
from ..errors import InputError
from ..extras import require
from .videos import VideoOutcome, VideoTask, run_video_task

__all__ = ["RayEngine"]

log = logging.getLogger("openfer")


class RayEngine:
    """Where the work runs: a Ray cluster at ``address`` (``"auto"``: the one this machine belongs to),
    or, with no address, a local one started for the job (``num_cpus``: its CPUs, default all) and
    stopped after it. Use as a context manager; the instance is the ``engine`` of
    :func:`openfer.batch.run_batch` and :func:`openfer.scale.videos.run_video_tasks`.

    >>> with RayEngine() as engine:                                   # doctest: +SKIP
    ...     run_batch(Analyzer(), ["photos/"], BatchOutputs(csv="out.csv"), engine=engine)
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        cpus_per_worker: float = 0.5,
        threads: int = 1,
        batch_size: int = 4,
        num_cpus: int | None = None,
    ) -> None:
        for name, value, lo in (("workers", workers, 1), ("threads", threads, 1), ("batch_size", batch_size, 1),
                                ("num_cpus", num_cpus, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lo):
                raise InputError(f"{name} must be an integer >= {lo}, got {value!r}")
        if isinstance(cpus_per_worker, bool) or not isinstance(cpus_per_worker, int | float) or not 0 < cpus_per_worker:
            raise InputError(f"cpus_per_worker must be a number > 0, got {cpus_per_worker!r}")
        self.address, self.workers, self.cpus_per_worker = address, workers, float(cpus_per_worker)
        self.threads, self.batch_size, self.num_cpus = threads, batch_size, num_cpus
        self._started = False
        self._ray: Any = None

    # ------------------------------------------------------------------ cluster

    def __enter__(self) -> RayEngine:
        ray = self._ray = require("ray", "ray", "--engine ray")
        require("ray.data", "ray", "--engine ray")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": logging.ERROR, "configure_logging": True}
            if self.address:
                _check_reachable(self.address)
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            try:
                ray.init(**kwargs)
            except ConnectionError as e:
                hint = ("" if os.environ.get("RAY_AUTH_MODE") else
                        " (a cluster started with `ray start` uses token authentication: set RAY_AUTH_MODE=token "
                        "and its token, RAY_AUTH_TOKEN or ~/.ray/auth_token, on this machine too)")
                raise InputError(f"cannot reach the Ray cluster at {self.address}: {e}{hint}") from None
            self._started = True
        _quiet_ray_data()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False

    def pool_size(self) -> int:
        """Actors in the pool: ``workers``, or one per CPU of the cluster."""
        if self.workers:
            return self.workers
        return max(1, math.floor(self._ray.cluster_resources().get("CPU", 1)))

    # ------------------------------------------------------------------ photos

    def __call__(
        self, analyzer: Any, items: list[BatchItem], outputs: BatchOutputs, work: Path | None = None
    ) -> Iterator[tuple[ImageRow | RowRef, list[str]]]:
        """For each item, in completion order: a :class:`~openfer.batch.RowRef` to the partition of
        ``work`` that an actor wrote its row into (the row itself without a work folder, or when the
        partition could not be written), and the messages of its unwritten annotated images."""
        if self._ray is None:
            raise RuntimeError("use RayEngine as a context manager: with RayEngine() as engine: ...")
        if not items:
            return
        import ray.data

        options = dataclasses.replace(analyzer.options, threads=self.threads)
        ds = ray.data.from_items([_item_dict(it) for it in items],
                                 override_num_blocks=min(len(items), 4 * self.pool_size()))
        ds = ds.map_batches(
            _AnalyzeActor,
            fn_constructor_kwargs={"options": options, "outputs": outputs,
                                   "work": None if work is None else os.fspath(work)},
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(self.pool_size(), len(items))),
            num_cpus=self.cpus_per_worker,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            for i in range(len(batch["index"])):
                unwritten = json.loads(batch["unwritten"][i])
                part = str(batch["part"][i])
                if part:
                    error = str(batch["error"][i])
                    yield RowRef(int(batch["index"][i]), str(batch["source"][i]), str(batch["status"][i]), part,
                                 int(batch["faces"][i]), error or None), unwritten
                else:
                    yield ImageRow.from_dict(json.loads(batch["row"][i])), unwritten

    # ------------------------------------------------------------------ videos

    def run_videos(self, tasks: list[VideoTask]) -> Iterator[VideoOutcome]:
        """Each task's outcome, one Ray task per video, in completion order."""
        if self._ray is None:
            raise RuntimeError("use RayEngine as a context manager: with RayEngine() as engine: ...")
        ray = self._ray
        remote = ray.remote(num_cpus=self.cpus_per_worker, max_retries=0)(_video_task)
        queue, pending, size = iter(tasks), {}, self.pool_size()
        try:
            while True:
                for t in queue:  # at most pool_size() videos at a time
                    pending[remote.remote(_with_threads(t, self.threads))] = t
                    if len(pending) >= size:
                        break
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as e:  # the task's process died (memory, a node lost)
                        yield VideoOutcome(task.index, task.source, task.out_dir,
                                           error=f"{task.source}: the Ray task failed: {_first_line(e)}")
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise


class _AnalyzeActor:
    """One analyzer per actor; each call analyses a batch of items (see :func:`openfer.batch.analyze_item`)
    and writes their rows as one partition of the work folder (if there is one)."""

    def __init__(self, options: Any, outputs: BatchOutputs, work: str | None) -> None:
        from ..pipeline import Analyzer

        self.analyzer = Analyzer(options)
        self.outputs = outputs
        self.work = None if work is None else Path(work)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from ..batch import analyze_item, write_partition
        from ..errors import OutputError

        done = [analyze_item(self.analyzer, _item_from(batch, i), self.outputs) for i in range(len(batch["index"]))]
        rows = [row for row, _ in done]
        part = ""
        if self.work is not None:
            try:
                part = write_partition(self.work, rows)
            except OutputError as e:  # full disk, a lost mount: the rows go back to the driver instead
                log.warning("%s", e)
        return {
            "index": [r.index for r in rows],
            "source": [r.source for r in rows],
            "status": [r.status for r in rows],
            "faces": [len(r.records) for r in rows],
            "error": [r.error or "" for r in rows],
            "part": [part] * len(rows),
            "row": ["" if part else json.dumps(r.to_dict(), allow_nan=True) for r in rows],
            "unwritten": [json.dumps(failed) for _, failed in done],
        }


def _item_dict(it: BatchItem) -> dict[str, Any]:
    return {"index": it.index, "source": it.source, "path": "" if it.path is None else os.fspath(it.path),
            "error": it.error or "", "annotation": "" if it.annotation is None else os.fspath(it.annotation)}


def _item_from(batch: dict[str, Any], i: int) -> BatchItem:
    path, annotation = str(batch["path"][i]), str(batch["annotation"][i])
    return BatchItem(int(batch["index"][i]), str(batch["source"][i]), Path(path) if path else None,
                     str(batch["error"][i]) or None, Path(annotation) if annotation else None)


def _video_task(task: VideoTask) -> VideoOutcome:
    return run_video_task(task)


def _with_threads(task: VideoTask, threads: int) -> VideoTask:
    if "threads" in task.overrides:
        return task
    return dataclasses.replace(task, overrides={**task.overrides, "threads": threads})


def _quiet_ray_data() -> None:
    """No progress bars or per-dataset log lines from Ray Data on the terminal (openfer shows its own)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "enable_operator_progress_bars"):
        ctx.enable_operator_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``HOST:PORT`` address that accepts no connection is an :class:`InputError` at once (Ray itself
    keeps retrying for minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise InputError(f"Ray address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379), auto or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
