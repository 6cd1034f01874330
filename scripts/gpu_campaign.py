"""Several expression-model runs in one short GPU lease (``openfer train --device cuda --train-only``).

The lent GPU machine has no FER+ folder and a 64 MiB limit on what travels, so the campaign reads
the compact pack ``ferplus_trainvalid_jpeg95.npz`` (FER2013Train + FER2013Valid as JPEG q95, see
``../shared/README.md``), unpacks it into the FER+ layout, and runs ``openfer train`` on it:

* phase 1, in parallel: ``fernet_s`` with the default recipe (the control: the shipped network's
  recipe on a longer schedule), ``fernet_s`` / ``fernet_m`` / ``fernet_xs`` with the logit-adjusted
  loss and the wide zoom range, and a second ``fernet_m`` (plain loss, zoom) as a second teacher;
* phase 2, in parallel: ``fernet_s`` and ``fernet_xs`` distilled online (``--teacher-run``) from the
  two ``fernet_m`` runs, with the logit-adjusted loss and zoom.

``--plan FILE.json`` runs another campaign (see :func:`load_plan`); a plan without phase-2 runs gives
phase 1 the whole deadline.

Each run gets a time budget (``--time-budget``: the epoch count is fixed after epoch 1 to what fits)
so that the whole campaign ends by ``--deadline`` seconds. While the runs train, their best weights
(``best.pt``, EMA) and logs are copied into ``--out`` every few seconds, so a lease cut short still
returns what was done: ``<run>.pt`` (a state dict over 15 MiB is split into ``<run>.a.pt``,
``<run>.b.pt``, ..., keys in order, at most 14 MiB of tensors each; weights beyond 63 MiB together with the logs, and the second teacher's, stay behind:
the tool returns at most 8 files and 64 MiB), and ``logs.tar`` with every run's ``config.json``,
``log.csv``, ``summary.json``, console log, the small runs' ``best.pt`` and the GPU load every 5 s. Bring them home with
``scripts/gpu_campaign.py --unpack OUT_FILES --runs runs/gpu``, then export each run on the lossless
PNGs with ``openfer train ../shared/datasets/ferplus --out runs/gpu/<run> --export-only``.

Validation during training (epoch selection) reads the JPEG-q95 FER2013Valid of the pack; every
reported figure is measured here afterwards on the PNGs. ``--smoke`` runs the same campaign on a few
hundred images and a short deadline (on the CPU, to check it before a lease).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ZOOM = ["--scale", "0.75", "1.35"]
LA = ["--logit-adjust", "1"]
# name -> (phase, arguments of openfer train)
RUNS: dict[str, tuple[int, list[str]]] = {
    "s_plain": (1, ["--arch", "fernet_s"]),
    "s_la": (1, ["--arch", "fernet_s", *LA, *ZOOM]),
    "m_la": (1, ["--arch", "fernet_m", *LA, *ZOOM]),
    "m_plain": (1, ["--arch", "fernet_m", *ZOOM, "--seed", "1"]),
    "xs_la": (1, ["--arch", "fernet_xs", *LA, *ZOOM]),
    "s_kd": (2, ["--arch", "fernet_s", *LA, *ZOOM]),
    "xs_kd": (2, ["--arch", "fernet_xs", *LA, *ZOOM]),
}
TEACHERS = ("m_la", "m_plain")  # phase 2's online teachers
SPLIT_BYTES = 15 * 2**20  # the device tool returns files of at most 16 MiB ...
RETURN_BYTES = 63 * 2**20  # ... and 64 MiB together: weights beyond this (6 MiB kept for logs.tar) stay behind
SMALL_IN_TAR = ("xs_la", "xs_kd")
NOT_RETURNED = ("m_plain",)  # a teacher only: its log comes back, its weights would pass the 64 MiB
SPLITS = {0: "FER2013Train", 1: "FER2013Valid"}


def load_plan(path: Path) -> None:
    """``--plan``: another campaign from a JSON file instead of the one above, e.g.
    ``{"runs": {"s_long": [1, ["--arch", "fernet_s", "--logit-adjust", "1"]]}, "teachers": [],
    "small_in_tar": [], "not_returned": []}`` (``runs`` required; the lists default to empty)."""
    global RUNS, TEACHERS, SMALL_IN_TAR, NOT_RETURNED
    plan = json.loads(path.read_text())
    runs = plan.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise SystemExit(f"{path}: a plan needs 'runs': {{name: [phase, [openfer train arguments]]}}")
    bad = [n for n, v in runs.items() if not (isinstance(v, list) and len(v) == 2 and v[0] in (1, 2)
                                              and all(isinstance(a, str) for a in v[1]))]
    if bad:
        raise SystemExit(f"{path}: run {bad[0]!r} is not [phase 1 or 2, [arguments as strings]]")
    RUNS = {n: (int(v[0]), list(v[1])) for n, v in runs.items()}
    TEACHERS = tuple(plan.get("teachers", ()))
    SMALL_IN_TAR = tuple(plan.get("small_in_tar", ()))
    NOT_RETURNED = tuple(plan.get("not_returned", ()))


def unpack(pack: Path, root: Path, limit: int = 0) -> None:
    """The pack as ``root/FER2013{Train,Valid}/`` PNGs with their ``label.csv``."""
    import cv2

    d = np.load(pack)
    offs, data, votes, split, names = d["offsets"], d["jpeg_bytes"], d["votes"], d["split"], d["names"]
    for code, folder in SPLITS.items():
        idx = np.flatnonzero(split == code)
        if limit:
            idx = idx[: limit if code == 0 else max(limit // 2, 64)]
        out = root / folder
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in idx:
            img = cv2.imdecode(data[offs[i] : offs[i + 1]], cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(out / names[i]), img)
            rows.append(f'{names[i]},"(0, 0, 48, 48)",' + ",".join(str(int(v)) for v in votes[i]))
        (out / "label.csv").write_text("\n".join(rows) + "\n")


def split_keys(state: dict, limit: int = SPLIT_BYTES - 2**20) -> list[list[str]]:
    """The state dict's keys in order, in consecutive groups of at most ``limit`` bytes of tensors
    (1 MiB under the file limit for pickling); a single larger tensor is an error."""
    groups: list[list[str]] = [[]]
    used = 0
    for k, t in state.items():
        size = t.numel() * t.element_size()
        if size > limit:
            raise ValueError(f"{k}: {size >> 20} MiB, more than one returned file holds")
        if groups[-1] and used + size > limit:
            groups.append([])
            used = 0
        groups[-1].append(k)
        used += size
    return groups


def sync(runs: Path, out: Path, seen: dict) -> None:
    """Copy each run's newest best weights and the logs into ``out`` (at most 8 files)."""
    import torch

    from openfer.io.tables import atomic_path

    used = 6 * 2**20  # room for logs.tar
    for name in RUNS:
        best = runs / name / "best.pt"
        if name in SMALL_IN_TAR or name in NOT_RETURNED or not best.is_file():
            continue
        used += best.stat().st_size
        if used > RETURN_BYTES:
            if seen.get(name) != "over":
                print(f"{name}: weights not returned (over {RETURN_BYTES >> 20} MiB together)", flush=True)
                seen[name] = "over"
            continue
        stamp = best.stat().st_mtime_ns
        if seen.get(name) == stamp:
            continue
        seen[name] = stamp
        if best.stat().st_size <= SPLIT_BYTES:
            with atomic_path(out / f"{name}.pt") as tmp:
                shutil.copyfile(best, tmp)
            continue
        st = torch.load(best, map_location="cpu", weights_only=False)
        for part, ks in zip("abcdefgh", split_keys(st["model"]), strict=False):
            piece = {**{k: v for k, v in st.items() if k != "model"}, "model": {k: st["model"][k] for k in ks}}
            with atomic_path(out / f"{name}.{part}.pt") as tmp:
                torch.save(piece, tmp)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(runs.rglob("*")):
            keep = path.suffix in (".json", ".csv", ".log", ".txt") or (
                path.name == "best.pt" and path.parent.name in SMALL_IN_TAR
            )
            if path.is_file() and keep:
                tar.add(path, arcname=str(path.relative_to(runs)))
    with atomic_path(out / "logs.tar") as tmp:
        tmp.write_bytes(buf.getvalue())


def launch(name: str, data: Path, runs: Path, budget: float, device: str, epochs: int,
           extra: list[str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "openfer.cli", "train", str(data), "--out", str(runs / name),
            "--train-only", "--device", device, "--epochs", str(epochs), "--time-budget", f"{budget:.0f}",
            "--threads", "2", *RUNS[name][1], *extra]
    (runs / name).mkdir(parents=True, exist_ok=True)
    logf = open(runs / name / "console.log", "w")  # noqa: SIM115 - closed with the process
    print(f"[{time.strftime('%H:%M:%S')}] start {name}: budget {budget:.0f}s: {' '.join(args[3:])}", flush=True)
    return subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)


def wait_all(procs: dict, runs: Path, out: Path, seen: dict, every: float) -> None:
    while any(p.poll() is None for p in procs.values()):
        time.sleep(every)
        sync(runs, out, seen)
    for name, p in procs.items():
        print(f"[{time.strftime('%H:%M:%S')}] {name} exit {p.returncode}", flush=True)
        tail = (runs / name / "console.log").read_text().strip().splitlines()[-3:]
        print("   " + "\n   ".join(tail), flush=True)


TRAVEL_LIMIT = 64 * 2**20  # what the device tool sends: the working tree and carried folders


def tree_size(root: Path, pack: Path) -> int:
    """``--tree-size``: print what a device call would send (git's tracked and untracked-not-ignored
    files, plus the carried pack) against the 64 MiB limit and, when over, the packaged models that
    training does not need and a device call can leave out of the index; returns 0 if it fits."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                            capture_output=True, check=True).stdout.split(b"\0")
    files = [root / f.decode() for f in listed if f]
    tree = sum(f.stat().st_size for f in files if f.is_file())
    carried = pack.stat().st_size if pack.is_file() else 0
    print(f"tree {tree / 2**20:.1f} MiB + pack {carried / 2**20:.1f} MiB = {(tree + carried) / 2**20:.1f} MiB "
          f"(limit {TRAVEL_LIMIT >> 20} MiB)")
    if tree + carried <= TRAVEL_LIMIT:
        return 0
    models = [f for f in files if f.is_file() and f.parent.name == "models" and f.suffix in (".onnx", ".tflite")]
    spare = sum(f.stat().st_size for f in models)
    rel = " ".join(str(f.relative_to(root)) for f in models)
    print(f"over: the packaged models ({spare / 2**20:.1f} MiB; --train-only needs none) can stay behind for the "
          f"call: git rm -q --cached {rel}, list them in .git/info/exclude, and after the call git reset -q "
          "and take them out of .git/info/exclude again")
    return 0 if tree + carried - spare <= TRAVEL_LIMIT else 1


def bring_home(files: Path, runs: Path) -> None:
    """``--unpack``: the returned files as run folders under ``runs`` (split weights joined)."""
    import torch

    runs.mkdir(parents=True, exist_ok=True)
    with tarfile.open(files / "logs.tar") as tar:
        tar.extractall(runs, filter="data")
    for name in RUNS:
        whole, parts = files / f"{name}.pt", sorted(files.glob(f"{name}.?.pt"))
        dst = runs / name / "best.pt"
        if whole.is_file():
            shutil.copyfile(whole, dst)
        elif parts:
            pieces = [torch.load(p, map_location="cpu", weights_only=False) for p in parts]
            model = {k: v for piece in pieces for k, v in piece["model"].items()}
            torch.save({**pieces[0], "model": model}, dst)
        if dst.is_file():
            print(f"{runs / name}: best.pt", json.loads((runs / name / "config.json").read_text())["epochs"],
                  "epochs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", type=Path, default=Path("gpu/ferplus_trainvalid_jpeg95.npz"))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_out")))
    ap.add_argument("--work", type=Path, default=Path("/tmp/campaign"))
    ap.add_argument("--deadline", type=float, default=500.0, help="seconds for the whole campaign")
    ap.add_argument("--phase1", type=float, default=0.5, help="fraction of the deadline for phase 1")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=150, help="most epochs per run (the budget lowers it)")
    ap.add_argument("--smoke", action="store_true", help="a few hundred images (a check before a lease)")
    ap.add_argument("--tree-size", action="store_true", help="what a device call would send, against its limit")
    ap.add_argument("--plan", type=Path, help="a campaign from a JSON file (see load_plan) instead of RUNS")
    ap.add_argument("--unpack", type=Path, help="bring home: the files a lease returned")
    ap.add_argument("--runs", type=Path, default=Path("runs/gpu"), help="with --unpack: where the run folders go")
    a = ap.parse_args(argv)
    if a.tree_size:
        return tree_size(Path(__file__).resolve().parent.parent, a.pack)
    if a.plan:
        load_plan(a.plan)
    if a.unpack:
        bring_home(a.unpack, a.runs)
        return 0
    t0 = time.time()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    data, runs = a.work / "ferplus", a.work / "runs"
    a.out.mkdir(parents=True, exist_ok=True)
    unpack(a.pack, data, limit=512 if a.smoke else 0)
    print(f"unpacked in {time.time() - t0:.0f}s", flush=True)
    runs.mkdir(parents=True, exist_ok=True)
    if shutil.which("nvidia-smi"):  # GPU load every 5 s, for the next campaign's planning (in logs.tar)
        subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,utilization.gpu,memory.used", "--format=csv",
                          "-l", "5"], stdout=open(runs / "gpu_load.txt", "w"), stderr=subprocess.DEVNULL)  # noqa: SIM115
    extra = ["--batch-size", "32"] if a.smoke else []
    seen: dict = {}
    every = 2.0 if a.smoke else 10.0
    # phase 1 gets the whole deadline when the plan has no phase 2
    end1 = a.deadline * a.phase1 if any(ph == 2 for ph, _ in RUNS.values()) else a.deadline - 15
    p1 = {n: launch(n, data, runs, end1 - (time.time() - t0), a.device, a.epochs, extra)
          for n, (ph, _) in RUNS.items() if ph == 1}
    wait_all(p1, runs, a.out, seen, every)
    teachers = [str(runs / t) for t in TEACHERS
                if t in p1 and p1[t].returncode == 0 and (runs / t / "best.pt").is_file()]
    phase2 = [n for n, (ph, _) in RUNS.items() if ph == 2]
    if phase2 and (teachers or not TEACHERS):
        budget = a.deadline - (time.time() - t0) - 15
        teach = ["--teacher-run", *teachers] if teachers else []
        p2 = {n: launch(n, data, runs, budget, a.device, a.epochs, [*extra, *teach]) for n in phase2}
        wait_all(p2, runs, a.out, seen, every)
    elif phase2:
        print("no teacher finished: phase 2 skipped", flush=True)
    sync(runs, a.out, seen)
    print(f"campaign done in {time.time() - t0:.0f}s; out: {sorted(p.name for p in a.out.iterdir())}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
