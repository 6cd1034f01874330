"""What one batch driver can keep up with: the manifest, the resume state and the final tables.

The analysis itself runs elsewhere (worker processes, Ray actors), so this measures the driver alone:
an engine that hands :func:`openfer.batch.run_batch` rows that are already analysed, as fast as it
takes them, in two forms:

* ``rows``: the engine yields each row (local mode, and what the Ray engine did before its actors
  wrote partitions): the driver encodes it into the manifest;
* ``partitions``: the rows were written beforehand, four per Parquet partition, as Ray actors write
  them (:func:`openfer.batch.write_partition`; not timed: on a cluster the actors do it), and the
  engine yields a :class:`~openfer.batch.RowRef` per input: the driver logs only the reference.

For each: rows/s through the driver's loop (manifest appends, progress), rows/s of the final
assembly (JSON and CSV, read back from the manifest or the partitions), and the driver's peak Python
memory per row (``tracemalloc``, a separate run). The rows are real: the default preset's rows of the
bundled photos (``tests/assets/photos``), repeated under distinct names.

Usage: python benchmarks/bench_driver.py [--rows 20000] [--out benchmarks/results/driver.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench_pipeline import machine

from openfer.batch import BatchOutputs, ImageRow, RowRef, analyze_item, plan_batch, run_batch, write_partition
from openfer.io.tables import write_json
from openfer.pipeline import Analyzer

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "assets" / "photos"


def real_rows(analyzer: Analyzer) -> list[ImageRow]:
    plan = plan_batch([str(PHOTOS)], BatchOutputs(), recursive=True)
    return [analyze_item(analyzer, it, BatchOutputs())[0] for it in plan.items]


class Feed:
    """An engine that yields prepared rows, or references to the partitions that already hold them."""

    def __init__(self, template: list[ImageRow], parts: list[str] | None) -> None:
        self.template, self.parts = template, parts
        self.loop_start = self.loop_end = 0.0

    def row(self, it) -> ImageRow:  # noqa: ANN001 - a BatchItem
        return dataclasses.replace(self.template[it.index % len(self.template)], index=it.index, source=it.source)

    def __call__(self, analyzer, items, outputs, work):  # noqa: ANN001, ANN204
        self.loop_start = time.perf_counter()
        for it in items:
            if self.parts is None:
                yield self.row(it), []
            else:
                r = self.template[it.index % len(self.template)]
                yield RowRef(it.index, it.source, r.status, self.parts[it.index], len(r.records), r.error), []
        self.loop_end = time.perf_counter()


def run(template: list[ImageRow], n: int, partitions: bool, memory: bool) -> dict:
    analyzer = Analyzer(threads=1)
    with tempfile.TemporaryDirectory(prefix="openfer-driver-") as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for i in range(n):  # empty files: the feed never reads them, the plan only lists them
            (inputs / f"img{i:06d}.jpg").touch()
        out = BatchOutputs(json=str(Path(tmp) / "o.json"), csv=str(Path(tmp) / "o.csv"))
        parts = None
        if partitions:  # what the actors write on a cluster: not timed, not in the driver's memory
            plan = plan_batch([str(inputs)], out)
            probe = Feed(template, None)
            parts = []
            for i in range(0, n, 4):
                name = write_partition(plan.work, [probe.row(it) for it in plan.items[i:i + 4]])
                parts += [name] * len(plan.items[i:i + 4])
        feed = Feed(template, parts)
        if memory:
            tracemalloc.start()
        summary = run_batch(analyzer, [str(inputs)], out, engine=feed)
        end = time.perf_counter()
        peak = tracemalloc.get_traced_memory()[1] if memory else 0
        if memory:
            tracemalloc.stop()
        assert summary.finished and summary.images == n, summary
        size = Path(out.json).stat().st_size + Path(out.csv).stat().st_size
    if memory:
        return {"peak_bytes_per_row": round(peak / n)}
    return {"loop_rows_per_s": round(n / (feed.loop_end - feed.loop_start)),
            "assembly_rows_per_s": round(n / (end - feed.loop_end)), "output_mb": round(size / 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "driver.json"))
    args = ap.parse_args()
    template = real_rows(Analyzer(threads=1))
    sizes = [len(json.dumps(r.to_dict())) for r in template]
    result = {"machine": machine(), "rows": args.rows, "template_rows": len(template),
              "mean_row_json_bytes": round(sum(sizes) / len(sizes))}
    for mode, partitions in (("rows", False), ("partitions", True)):
        result[mode] = {**run(template, args.rows, partitions, memory=False),
                        **run(template, args.rows, partitions, memory=True)}
        print(mode, result[mode], flush=True)
    write_json(result, args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
