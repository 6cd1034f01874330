"""Build openfer's reference face: the mean neutral 3D face mesh of FER2013Train.

MediaPipe's canonical_face_model.obj is not in the mediapipe wheel, so openfer derives its own
reference from data: the face mesh is run on neutral-labelled FER2013Train crops (majority
protocol), each mesh is normalised (centroid, scale) and aligned by generalised Procrustes
analysis on rigid points, the mean is made left-right symmetric, and it is put in a head frame:

* X: normal of the symmetry plane (towards the image's right for a frontal face),
* Y: from chin (152) to forehead (10), made orthogonal to X (up),
* Z: X x Y (towards the camera); units: inter-ocular distance (outer corners 33-263) = 1.

Head pose (yaw 0, pitch 0, roll 0) is defined as this frame. The same mesh is the population
neutral reference for action units. Writes ``src/openfer/models/mean_face.npy`` and updates its
sha256 in ``models.toml``.

Usage: python scripts/build_mean_face.py --ferplus ../shared/datasets/ferplus [--n 3000] [--mesh facemesh]
       python scripts/build_mean_face.py --mesh facemesh_v2 --out /tmp/mean_face_v2.npy   # a candidate only

The shipped reference was built with Face Mesh v1 (``--mesh facemesh``, the default here, so that a rerun
reproduces it); ``--out`` writes a candidate elsewhere and leaves ``models.toml`` alone
(``scripts/compare_pose_reference.py`` measures what a v2-built reference would change).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from openfer.components.landmarks import FaceMesh
from openfer.core.pose import RIGID_INDEX as RIGID
from openfer.core.pose import landmarks_to_pose_frame, umeyama_3d
from openfer.eval.datasets import load_gray_stack, read_ferplus
from openfer.runtime.onnx import write_registry_block
from openfer.train.template import mesh_on_crops

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "openfer" / "models" / "mean_face.npy"


def mirror_pairs(mesh: np.ndarray) -> np.ndarray:
    """Index of each vertex's mirror image across the x = 0 plane (nearest neighbour)."""
    mirrored = mesh * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(mesh[:, None] - mirrored[None], axis=-1)
    return d.argmin(1)


def generalized_procrustes(shapes: np.ndarray, iters: int = 10) -> np.ndarray:
    shapes = shapes - shapes.mean(1, keepdims=True)
    shapes /= np.sqrt((shapes**2).sum((1, 2), keepdims=True))
    mean = shapes[0].copy()
    for _ in range(iters):
        aligned = []
        for s in shapes:
            r, sc, t = umeyama_3d(s[RIGID], mean[RIGID])
            aligned.append(sc * s @ r.T + t)
        aligned = np.stack(aligned)
        new = np.median(aligned, 0)
        new -= new.mean(0)
        new /= np.sqrt((new**2).sum())
        mean = new
    return mean


def head_frame(mean: np.ndarray) -> np.ndarray:
    # symmetry plane: first roughly level the face so mirror pairs can be found
    x = mean[263] - mean[33]
    x /= np.linalg.norm(x)
    y = mean[10] - mean[152]
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    m = (mean - mean[RIGID].mean(0)) @ np.stack([x, y, z]).T
    for _ in range(3):  # refine X as the mean direction between mirror pairs, then symmetrise
        pairs = mirror_pairs(m)
        sym = (m + m[pairs] * np.array([-1.0, 1.0, 1.0])) / 2
        x = np.array([1.0, 0, 0])
        y = sym[10] - sym[152]
        y[0] = 0
        y /= np.linalg.norm(y)
        z = np.cross(x, y)
        m = sym @ np.stack([x, y, z]).T
    if m[1, 2] < m[RIGID, 2].mean():  # nose tip must point towards the camera (+Z)
        raise RuntimeError("head frame has the nose behind the face: check the landmark frame")
    return m / np.linalg.norm(m[263] - m[33])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferplus", default=str(ROOT.parent / "shared" / "datasets" / "ferplus"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mesh", choices=("facemesh", "facemesh_v2"), default="facemesh",
                    help="face mesh the reference is built from (the shipped one: facemesh, v1)")
    ap.add_argument("--out", type=Path, default=OUT, help="write here instead (a candidate: models.toml untouched)")
    a = ap.parse_args()
    tr = read_ferplus(a.ferplus, "train")
    neutral = tr.subset(tr.labels == 0)
    rng = np.random.default_rng(a.seed)
    pick = np.sort(rng.choice(len(neutral), size=min(a.n, len(neutral)), replace=False))
    crops = load_gray_stack(neutral.subset(np.isin(np.arange(len(neutral)), pick)))
    lm, sc = mesh_on_crops(crops, FaceMesh(iris=False, model=a.mesh))
    ok = sc >= 0.5
    shapes = landmarks_to_pose_frame(lm[ok][:, :468])
    mean = head_frame(generalized_procrustes(shapes))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, mean.astype(np.float32))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    if out.resolve() != OUT.resolve():
        print(json.dumps({"candidate": str(out), "mesh": a.mesh, "faces_used": int(ok.sum()), "sha256": digest}))
        return
    write_registry_block("mean_face", {
        "file": "mean_face.npy", "sha256": digest,
        "source": f"openfer: mean neutral face mesh of {int(ok.sum())} FER2013Train crops (majority label neutral), seed {a.seed}",
        "license": "MIT (openfer); derived from FER2013 images (research use) with MediaPipe face mesh (Apache-2.0)",
    }, writer="scripts/build_mean_face.py", toml=OUT.parent / "models.toml")
    print(json.dumps({"faces_used": int(ok.sum()), "faces_tried": int(len(ok)), "sha256": digest}))


if __name__ == "__main__":
    main()
