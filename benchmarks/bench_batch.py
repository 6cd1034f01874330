"""Batch throughput: images/s of ``openfer analyze`` on photos_dev images with 1 and 2 worker
processes, and on a local Ray cluster (``--engine ray``) with 1 and 2 actors, against a plain loop
over ``Analyzer.analyze`` (what ``openfer analyze`` was in 0.1), in the same run on the same images.

Usage: python benchmarks/bench_batch.py [--images 500] [--data ../shared/datasets/photos_dev]
           [--out benchmarks/results/batch.json] [--no-ray]

Every configuration writes a CSV through the batch layer (the resumable work file included), with
ONNX Runtime threads split between the workers (1 worker: 2 threads, 2 workers: 1 thread each on a
2-core machine). Model loading is included for the batch runs (each worker loads its own models) and
reported separately; the plain loop is timed after a 10-image warm-up. The batch runs go after it,
so they find the images in the file cache too. The Ray runs (skipped with a message when ``ray`` is
not installed) start one local cluster of all the machine's CPUs; its start-up is reported apart
(``cluster_start_s``), the actors' model loading is inside each run's time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import machine  # noqa: E402

from openfer.batch import BatchOutputs, run_batch  # noqa: E402
from openfer.io.tables import write_json  # noqa: E402
from openfer.pipeline import Analyzer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos_dev")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "batch.json")
    ap.add_argument("--no-ray", dest="ray", action="store_false", help="skip the Ray runs")
    a = ap.parse_args()
    paths = sorted((a.data / "images").rglob("*.jpg"))[: a.images]
    if len(paths) < a.images:
        raise SystemExit(f"{a.data}: only {len(paths)} images")
    results = {}
    t = time.perf_counter()
    loop = Analyzer(threads=0)
    load = time.perf_counter() - t
    for p in paths[:10]:  # warm-up (ONNX Runtime's first runs, file cache), as the batch runs get from the loop
        loop.analyze(p)
    t = time.perf_counter()
    faces = sum(len(loop.analyze(p).faces) for p in paths)
    dt = time.perf_counter() - t
    results["loop_0.1"] = {"seconds": round(dt, 2), "images_per_s": round(len(paths) / dt, 2),
                           "model_load_s": round(load, 2), "faces": faces}
    print(f"plain loop: {len(paths) / dt:.2f} images/s")
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            s = run_batch(loop, [str(p) for p in paths], BatchOutputs(csv=str(Path(tmp) / "r.csv")), workers=workers)
            dt = time.perf_counter() - t
        results[f"batch_{workers}_worker"] = {"seconds": round(dt, 2), "images_per_s": round(len(paths) / dt, 2),
                                             "faces": s.faces, "failed": s.failed}
        print(f"batch, {workers} worker(s): {len(paths) / dt:.2f} images/s")
    if a.ray:
        results.update(_ray_runs(loop, paths))
    base = results["loop_0.1"]["images_per_s"]
    for v in results.values():
        v["ratio_to_loop"] = round(v["images_per_s"] / base, 3)
    write_json({"images": len(paths), "data": str(a.data), "machine": machine(), "results": results}, a.out)
    print(f"wrote {a.out}")


def _ray_runs(analyzer: Analyzer, paths: list[Path]) -> dict:
    import os

    try:
        import ray.data  # noqa: F401
    except ImportError:
        print("ray runs skipped: ray[data] is not installed (pip install 'openfer[ray]')")
        return {}
    from openfer.scale.ray_engine import RayEngine

    out = {}
    cores = os.cpu_count() or 1
    t = time.perf_counter()
    with RayEngine():
        start = time.perf_counter() - t
        for workers in (1, 2):
            with RayEngine(workers=workers, threads=max(1, cores // workers)) as engine, \
                    tempfile.TemporaryDirectory() as tmp:  # joins the running cluster
                t = time.perf_counter()
                s = run_batch(analyzer, [str(p) for p in paths], BatchOutputs(csv=str(Path(tmp) / "r.csv")), engine=engine)
                dt = time.perf_counter() - t
            out[f"ray_{workers}_worker"] = {"seconds": round(dt, 2), "images_per_s": round(len(paths) / dt, 2),
                                           "faces": s.faces, "failed": s.failed, "cluster_start_s": round(start, 2),
                                           "threads_per_worker": engine.threads}
            print(f"ray, {workers} worker(s): {len(paths) / dt:.2f} images/s")
    return out


if __name__ == "__main__":
    main()
