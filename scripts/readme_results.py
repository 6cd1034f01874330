"""Write the README's results section from the JSON files that the scripts produce.

Sources: docs/models/<model>_{test,valid,photos_dev,fixtures_labeled}.json (scripts/release_model.py),
benchmarks/results/pipeline.json (benchmarks/bench_pipeline.py) and
benchmarks/results/detection_recall.json (benchmarks/detection_recall.py), benchmarks/results/video.json,
video_memory.json, outputs.json and batch.json (the other benchmarks).
Replaces the text between <!-- RESULTS --> and <!-- /RESULTS --> in README.md.

    python scripts/readme_results.py [--model fernet_s]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(p: str) -> dict:
    return json.loads((ROOT / p).read_text())


def _ray_sentence(r: dict) -> str:
    if "ray_2_worker" not in r:
        return ""
    one, two = r["ray_1_worker"], r["ray_2_worker"]
    return (f" On a local Ray cluster (`--engine ray`, [docs/scale.md](docs/scale.md)): 1 actor {one['images_per_s']:.1f} "
            f"images/s ({one['ratio_to_loop']:.2f}x), 2 actors {two['images_per_s']:.1f} images/s "
            f"({two['ratio_to_loop']:.2f}x), the actors' model loading included, the cluster's "
            f"{one['cluster_start_s']:.0f} s start-up not.")


def _fill_scale_doc(b: dict) -> None:
    """The throughput table of docs/scale.md, from the same results."""
    r = b["results"]
    names = {"loop_0.1": "plain loop (openfer 0.1's `analyze`)", "batch_1_worker": "`openfer analyze`, 1 process",
             "batch_2_worker": "`--workers 2`", "ray_1_worker": "`--engine ray --workers 1`",
             "ray_2_worker": "`--engine ray --workers 2`"}
    rows = ["| configuration | images/s | ratio to the loop |", "|---|---|---|"]
    rows += [f"| {label} | {r[k]['images_per_s']:.1f} | {r[k]['ratio_to_loop']:.2f}x |" for k, label in names.items() if k in r]
    note = ""
    if "ray_1_worker" in r:
        note = (f"\nThe local Ray cluster took {r['ray_1_worker']['cluster_start_s']:.1f} s to start (not in the figures); "
                "each run includes its actors' start-up and model loading. Commit "
                f"`{b['machine'].get('commit', '?')}`, {b['machine']['cpu']}, {b['machine']['logical_cores']} cores.\n")
    doc = ROOT / "docs/scale.md"
    text = doc.read_text()
    text = re.sub(r"<!-- SCALE -->.*?<!-- /SCALE -->", lambda m: "<!-- SCALE -->\n" + "\n".join(rows) + "\n" + note
                  + "<!-- /SCALE -->", text, flags=re.S)
    doc.write_text(text)


def peer_lines() -> list[str]:
    """The speed ratios against MediaPipe (benchmarks/bench_peers.py), first: absolute figures do not
    transfer between machines, a ratio measured in one run does better."""
    path = ROOT / "benchmarks/results/peers.json"
    if not path.exists():
        return []
    peers = json.loads(path.read_text())
    first = next(iter(peers["runs"].values()))
    m, mp, of = peers["machine"], first.get("mediapipe_worker") or {}, first.get("openfer_worker") or {}
    litert = of.get("ai-edge-litert")
    runtime = (f"the MediaPipe models and the `fast`/video int8 expression model on LiteRT (ai-edge-litert {litert}, "
               f"`openfer[litert]`), the default preset's float expression model and the full-range detector on ONNX "
               f"Runtime {of.get('onnxruntime', '?')}" if litert else f"ONNX Runtime {of.get('onnxruntime', '?')}")
    if of.get("simplejpeg"):
        runtime += f", JPEGs decoded by simplejpeg {of['simplejpeg']} (libjpeg-turbo; `openfer[fast]` has both)"
    lines = [
        f"Speed against MediaPipe, measured side by side (`benchmarks/bench_peers.py`: both sides as persistent "
        f"workers with their models loaded, timed runs alternating, decode included; {m['cpu']}, "
        f"{m['logical_cores']} cores, commit {m['commit']}, MediaPipe {mp.get('mediapipe', '?')}; openfer with "
        f"{runtime}). openfer runs its "
        "whole analysis, MediaPipe its face landmarks alone (FaceMesh in tracking mode for video, static "
        "image mode with 478 points for photos):",
        "",
        "| ratio | cores | value | target | met | spread of paired runs |",
        "|---|---|---|---|---|---|",
    ]
    for cores, run in peers["runs"].items():
        for name, r in run["ratios"].items():
            met = "–" if r["met"] is None else ("yes" if r["met"] else "no")
            lines.append(f"| {name} | {cores} | **{r['value']:.2f}** | {r['target'] or '–'} | {met} | "
                         f"{r['pairs_min']:.2f}-{r['pairs_max']:.2f} |")
    if any("onnxruntime" in name for run in peers["runs"].values() for name in run["ratios"]):
        lines += ["", "`openfer onnxruntime`: the same openfer with `runtime=\"onnxruntime\"` in the same run, what an "
                  "install without the `litert` extra runs (JPEGs through simplejpeg where it is installed); its ratio is the gain of the LiteRT runtime."]
    floors = {name: f for run in peers["runs"].values() for name, f in run.get("floors", {}).items()}
    if floors:
        lines += ["", "Model floors (one core, same run): the best ratio openfer's models allow, were everything around "
                  "them free (the CPU time inside the models' runs plus decoding, against MediaPipe's whole run). "
                  "Below a target, no work around the models reaches it; cheaper models must:", "",
                  "| path | openfer models + decode | MediaPipe | best ratio | target |", "|---|---|---|---|---|"]
        for name, f in floors.items():
            ours = f.get("openfer_models_plus_decode_ms_per_frame", f.get("openfer_models_plus_read_ms"))
            theirs = f.get("mediapipe_ms_per_frame", f.get("mediapipe_ms"))
            unit = " / frame" if name.startswith("video") else ""
            lines.append(f"| {name} | {ours:.1f} ms{unit} | {theirs:.1f} ms{unit} | **{f['best_ratio']:.2f}** | "
                         f"{f['target']} |")
    lines += ["", "Absolute figures of the same machine and other runs follow.", ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fernet_s")
    a = ap.parse_args()
    m = a.model
    test, valid = load(f"docs/models/{m}_test.json"), load(f"docs/models/{m}_valid.json")
    photos, fx = load(f"docs/models/{m}_photos_dev.json"), load(f"docs/models/{m}_fixtures_labeled.json")
    # the default preset's detector (full range); benchmarks/results/detection_recall.json has the short-range one
    bench, recall = load("benchmarks/results/pipeline.json"), load("benchmarks/results/detection_recall_full.json")
    mach = bench["machine"]
    heights = sorted({r["face_height_px"] for r in recall["results"]})
    cls2 = bench["threads"]["2"]["classify_batch256"]
    lines = [
        "## Results",
        "",
        f"Expression model `{m}` (trained from scratch here; card: `src/openfer/models/cards/{m}.md`, "
        "numbers from `scripts/release_model.py`):",
        "",
        "| data | protocol | n | accuracy | UAR | macro F1 | ECE |",
        "|---|---|---|---|---|---|---|",
        f"| FER+ FER2013Test | majority, face crops | {test['n']} | **{test['accuracy']:.2%}** | {test['uar']:.2%} | {test['macro_f1']:.2%} | {test['ece']:.3f} |",
        f"| FER+ FER2013Valid | majority, face crops | {valid['n']} | {valid['accuracy']:.2%} | {valid['uar']:.2%} | {valid['macro_f1']:.2%} | {valid['ece']:.3f} |",
        f"| photos_dev (real photos) | full pipeline, no face = error | {photos['n']} | {photos['accuracy']:.2%} | {photos['uar']:.2%} | {photos['macro_f1']:.2%} | – |",
        f"| labelled fixture photos | full pipeline | {fx['n']} | {fx['accuracy']:.2%} | {fx['uar']:.2%} | {fx['macro_f1']:.2%} | – |",
        "",
        f"photos_dev: faces found in {photos['face_found_rate']:.1%} of photos; its labels are noisy and skewed "
        "(1,131 neutral, 1,001 happiness, few others), so read UAR with care.",
        "",
        f"**The 89% target is not reached.** openfer set out to ship a default model at ≥ 89.0% on FER+ test "
        f"trained from scratch; `{m}` reaches {test['accuracy']:.2%}. ECE {test['ece']:.3f} after calibration "
        f"meets its target (≤ 0.03). Speed was set as ≥ 250 faces/s on 2 cores with mirror averaging: this run's "
        f"machine ({mach['cpu']}) gives {cls2['faces_per_second']:.0f} faces/s (the same graph measured 153 and "
        "272 on machines of earlier runs; machines here differ by 2x, which is why speed is compared within one "
        "run, as in the tables below). Every run of the campaign is in "
        "`docs/experiments.md`: three 30-epoch runs of this network on 2 CPU cores (plain, with "
        "photographic degradation, distilled from an ensemble of the first two) reach 86.3-86.6% on "
        "FER2013Valid, and the ensemble of the first two 86.9% valid / 87.2% test: +0.03 points on test "
        "for twice the compute, so there is no separate `accurate` preset. A first 15-minute GPU lease "
        "(runs 18-19; `scripts/gpu_campaign.py`) trained this network, one with 1.5x the channels (`fernet_m`, 2.2x the compute) and this "
        "network distilled online from two of those for 31-33 epochs each: `fernet_m` gains 0.2-0.5 points "
        "on FER2013Valid, and none of them beats the shipped head's accuracy/UAR trade-off. Every run was "
        "still improving at its last epoch, so what we think closes the gap is the same on longer schedules "
        "(100+ epochs) on a GPU.",
        "",
        "**Rare classes.** The shipped head is re-fitted on the network's frozen FER2013Train features "
        "(class-balanced re-training of the last layer plus logit adjustment, chosen on FER2013Valid; "
        "`scripts/rebalance_head.py`, runs 6-8 in `docs/experiments.md`): UAR on FER+ test "
        f"{test['uar']:.1%} instead of 65.5% at equal accuracy, disgust "
        f"{test['per_class']['disgust']['recall']:.0%} and contempt {test['per_class']['contempt']['recall']:.0%} "
        "recall (were 31% and 0%). The target of 75% UAR is not reached: contempt (15 test faces) stays "
        "mostly missed; what a retrain would need is in `docs/experiments.md`. Tight and loose re-crops of "
        "FER+ test and photos_dev, old head beside new: `docs/experiments.md` (framing robustness).",
        "",
        "Detection recall on small real faces (`benchmarks/detection_recall.py --detector full`, the default "
        "preset's detector: the five-person photo scaled and tiled 3x3, 45 faces; default `min_face` 30):",
        "",
        "| `min_face` | " + " | ".join(f"{h:g} px faces" for h in heights) + " |",
        "|---|" + "---|" * len(heights),
        *[f"| {mf:g} | " + " | ".join(
            next(f"{r['found']}/{r['faces']} (+{r['extra_detections']})" for r in recall["results"]
                 if r["min_face"] == mf and r["face_height_px"] == h) for h in heights) + " |"
          for mf in sorted({r["min_face"] for r in recall["results"]}, reverse=True)],
        "",
        "(found/45, (+extra detections))",
        "",
        *peer_lines(),
        f"Speed (`benchmarks/bench_pipeline.py`, median of {bench['settings']['repeats']} runs after "
        f"{bench['settings']['warmup']} warm-up runs; {mach['cpu']}, {mach['logical_cores']} cores, "
        f"onnxruntime {mach['onnxruntime']}, commit {mach['commit']}):",
        "",
        "| input | threads | detect | landmarks (Face Mesh v2) | blendshapes | expression | end-to-end | images/s "
        "| openfer 0.1's mesh (v1 + iris, no blendshapes), same run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t, res in bench["threads"].items():
        for name in ("frame_640x360_1face", "photo_1000x667_5faces"):
            r = res[name]
            v1 = r.get("v1_mesh_end_to_end")
            ratio = (f"{v1['median_ms']:.1f} ms (this version takes {r['end_to_end']['median_ms'] / v1['median_ms']:.2f}x "
                     "its time)" if v1 else "-")
            lines.append(
                f"| {name} | {t} | {r['detect']['median_ms']:.1f} ms | {r['landmarks']['median_ms']:.1f} ms | "
                f"{r['blendshapes']['median_ms']:.1f} ms | "
                f"{r['expression']['median_ms']:.1f} ms | {r['end_to_end']['median_ms']:.1f} ms | {r['end_to_end']['per_second']:.1f} "
                f"| {ratio} |"
            )
    lines += ["", "The `fast` preset (one detector pass, so only faces larger than ~15% of the image side; "
              "no mirror averaging):", "", "| input | threads | faces | end-to-end | images/s |",
              "|---|---|---|---|---|"]
    for t, res in bench["threads"].items():
        for name in ("frame_640x360_1face", "photo_1000x667_5faces"):
            r = res[name]
            lines.append(f"| {name} | {t} | {r['fast_preset_faces']} | {r['fast_preset_end_to_end']['median_ms']:.1f} ms | "
                         f"{r['fast_preset_end_to_end']['per_second']:.1f} |")
    for t, res in bench["threads"].items():
        lines.append("")
        lines.append(
            f"Expression classification alone, batches of 256 aligned faces, {t} thread(s): "
            f"{res['classify_batch256']['faces_per_second']:.0f} faces/s with mirror averaging (default), "
            f"{res['classify_batch256_noflip']['faces_per_second']:.0f} faces/s without."
        )
    clips = load("benchmarks/results/video.json")["clips"]
    one, five = clips["single_face.mp4"], clips["five_faces_pan.mp4"]
    d2 = bench["threads"]["2"]["frame_640x360_1face"]
    lines += [
        "",
        "Video (`benchmarks/bench_video.py`; decode + detection + face-mesh tracking + head pose + expression + "
        "blendshapes + AUs + valence/arousal + reasons + track ids; `VideoAnalyzer()` defaults: the `video` preset, a whole-frame "
        "detector pass every 10 frames and the small-face search every 30, the face mesh of frame t+1 running beside "
        "the expression of frame t on the two cores):",
        "",
        "| clip | faces/frame | default | one stage after the other | image preset (mirror) | detect every frame "
        "| openfer 0.1's mesh (v1, no blendshapes), same run | decode only |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (("single_face.mp4 (640x360)", one), ("five faces, 1000x667 (pan over the group photo)", five)):
        lines.append(
            f"| {name} | {r['default']['faces_per_frame']:g} | **{r['default']['frames_per_second']:.0f} frames/s** | "
            f"{r['no_pipeline']['frames_per_second']:.0f} | {r['image_preset']['frames_per_second']:.0f} | "
            f"{r['detect_every_frame']['frames_per_second']:.0f} | "
            + (f"{r['v1_mesh']['frames_per_second']:.0f} (ratio {r['default']['frames_per_second'] / r['v1_mesh']['frames_per_second']:.2f})"
               if "v1_mesh" in r else "-")
            + f" | {r['decode_only']['frames_per_second']:.0f} |"
        )
    mem = ROOT / "benchmarks/results/video_memory.json"
    if mem.exists():
        mm = json.loads(mem.read_text())
        lines += [
            "",
            f"Memory (`benchmarks/video_memory.py`): a {mm['settings']['minutes']:g}-minute clip "
            f"({mm['settings']['source_frames']} frames, every one decoded, {mm['analysed_frames']} analysed) "
            f"through `openfer video`'s job: peak RSS {mm['peak_rss_mib']:.0f} MiB, growth after the first "
            f"1000 analysed frames {mm['growth_after_first_1000_frames_mib']:.1f} MiB.",
        ]
    outs = ROOT / "benchmarks/results/outputs.json"
    if outs.exists():
        od = json.loads(outs.read_text())
        o, om = od["threads"]["2"], od.get("machine", {})
        lines += [
            "",
            "Cost of each output beyond the label (`benchmarks/bench_outputs.py`, 2 threads, default preset; "
            f"{om.get('cpu', 'machine not recorded')}, commit {om.get('commit', '?')}):",
            "",
            "| input | label only | + 52 blendshapes | + AUs and PSPI | + valence/arousal and reasons | occlusion saliency (`--explain --annotate`) |",
            "|---|---|---|---|---|---|",
        ]
        def added(ms: float) -> str:  # differences of medians under ~1 ms are within run-to-run noise
            return f"+{ms:.1f} ms" if ms >= 1.0 else "< 1 ms"

        for name in ("frame_640x360_1face", "photo_1000x667_5faces"):
            r = o[name]
            st = r.get("stage_ms")  # the stage timers where the run has them (less noisy than differences)
            bs = f"+{st['blendshapes']:.1f} ms" if st else added(r["added_ms"].get("blendshapes", 0.0))
            au = f"+{st['aus']:.1f} ms" if st else added(r["added_ms"]["aus"])
            lines.append(
                f"| {name} | {r['label_only']['median_ms']:.1f} ms | {bs} | {au} | "
                f"{added(r['added_ms']['explain'])} | +{r['added_ms']['saliency']:.0f} ms |"
            )
        if any(o[n].get("stage_ms") for n in o if isinstance(o[n], dict)):
            lines += ["", "Blendshapes and AUs: their stage timers in the default run; valence/arousal and reasons: "
                      "the difference of two variants' medians (no timer of their own)."]
    batch = ROOT / "benchmarks/results/batch.json"
    if batch.exists():
        b = json.loads(batch.read_text())
        r = b["results"]
        lines += [
            "",
            f"Batches (`benchmarks/bench_batch.py`, {b['images']} photos_dev photos of 256x256, {b['machine']['cpu']}, "
            f"{b['machine']['logical_cores']} cores, same run): a plain loop over `Analyzer.analyze` (openfer 0.1's "
            f"`analyze`) {r['loop_0.1']['images_per_s']:.1f} images/s; `openfer analyze` with its resumable work file "
            f"{r['batch_1_worker']['images_per_s']:.1f} images/s ({r['batch_1_worker']['ratio_to_loop']:.2f}x), with "
            f"`--workers 2` {r['batch_2_worker']['images_per_s']:.1f} images/s ({r['batch_2_worker']['ratio_to_loop']:.2f}x, "
            "the two workers' start-up and model loading included)." + _ray_sentence(r),
        ]
        _fill_scale_doc(b)
    service = ROOT / "benchmarks/results/service.json"
    if service.exists():
        sv = json.loads(service.read_text())
        ph, st = sv["photos"], sv["settings"]
        rss = ph["server_rss_mib"]
        ok = ph["statuses"].get("200", 0)
        jobs = "; ".join(f"{v['video']} {v['job_frames_per_s']:.1f} frames/s ({v['ratio_to_cli']:.2f}x `openfer video`)"
                         for v in sv["videos"])
        lines += [
            "",
            f"Service (`benchmarks/bench_service.py`, a real `openfer serve` on loopback, {sv['machine']['cpu']}, "
            f"{sv['machine']['logical_cores']} cores): {ph['requests']} photo requests (photos_dev, 256x256) from "
            f"{st['client_concurrency']} clients, {st['server_concurrency']} analyses at a time: "
            f"{ph['requests_per_s']:.1f} requests/s, latency p50 {ph['latency_ms']['p50']:.0f} ms, p95 "
            f"{ph['latency_ms']['p95']:.0f} ms, {ok} of {ph['requests']} answered 200, server memory "
            f"{rss['after_warmup']:.0f} MiB after the warm-up, {rss['half']:.0f} MiB at half way, {rss['end']:.0f} MiB "
            f"at the end. Video jobs, uploaded and polled: {jobs}.",
        ]
    lines += [
        "",
        f"In short, on 2 cores: a 640x360 one-face photo takes {d2['end_to_end']['median_ms']:.0f} ms with the default "
        f"preset (small-face search, 478 points, mirror-averaged expression: {d2['end_to_end']['per_second']:.0f} images/s) "
        f"and {d2['fast_preset_end_to_end']['median_ms']:.0f} ms with `--preset fast` "
        f"({d2['fast_preset_end_to_end']['per_second']:.0f} images/s). The small-face search is what costs "
        f"({d2['detect']['median_ms']:.0f} ms of detection); where the rest goes and what is next: `docs/speed.md`.",
    ]
    block = "\n".join(lines) + "\n"
    readme = ROOT / "README.md"
    text = readme.read_text()
    text = re.sub(
        r"<!-- RESULTS -->.*?(<!-- /RESULTS -->\n)?(?=\n## Layout)",
        f"<!-- RESULTS -->\n{block}<!-- /RESULTS -->\n",
        text,
        flags=re.S,
    )
    readme.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
