"""JPEG decoding: OpenCV's ``cv2.imdecode`` against libjpeg-turbo's TurboJPEG API (``simplejpeg``, the
``jpeg`` extra), which :func:`openfer.io.images.decode_image` uses where it is installed. Both must give
the same pixels bit for bit; the script counts the files where they do not and times both.

    python benchmarks/jpeg_decode.py [--dev DIR] [--repeats 200] [--out benchmarks/results/jpeg_decode.json]

Files: the fixture photos (``tests/assets``, every ``.jpg``, ``bad/`` included), every JPEG of
photos_dev (``--dev``; skipped when absent), and re-encodings of ``single_face.jpg`` at 1x, 2x and 4x
in 4:2:0, 4:2:2 and 4:4:4 chroma subsampling, progressive, with restart markers and grey, plus a CMYK
one (Pillow, where installed). Parity: ``cv2.imdecode(..., IMREAD_COLOR_RGB)`` against
``simplejpeg.decode_jpeg(..., "RGB")``, and through ``decode_image`` with and without simplejpeg
(EXIF orientation included). Timing: the median of ``--repeats`` decodes of each timed file (the
fixture photos and the re-encodings), in this process, one OpenCV thread, first in the fresh process,
then the fixture photos again after the parity pass (OpenCV's time moves with the allocator's state:
after ~2,300 decodes of all sizes it is closer to simplejpeg's); and the whole of photos_dev once per
decoder. A file simplejpeg refuses (strict: libjpeg's warnings raise) is counted: ``decode_image``
gives it to OpenCV, whose messages it reports.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from openfer.io import images
from openfer.io.tables import write_json

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "datasets" / "photos_dev" / "images"


def opencv(data: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)


def turbo(data: bytes) -> np.ndarray | None:
    try:
        return images._simplejpeg.decode_jpeg(data, "RGB")
    except ValueError:
        return None


def median_ms(f, data: bytes, repeats: int) -> float:
    for _ in range(10):
        f(data)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(data)
        ts.append(time.perf_counter() - t)
    return round(float(np.median(ts)) * 1000, 3)


def variants() -> dict[str, bytes]:
    photo = cv2.imread(str(ROOT / "tests" / "assets" / "photos" / "single_face.jpg"))
    out = {}
    for scale in (1, 2, 4):
        img = photo if scale == 1 else cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        size = f"{img.shape[1]}x{img.shape[0]}"
        for s, code in (("4:2:0", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420), ("4:2:2", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422),
                        ("4:4:4", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)):
            out[f"{size} {s}"] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, code])[1].tobytes()
        out[f"{size} progressive"] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
        out[f"{size} restarts"] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])[1].tobytes()
        out[f"{size} grey"] = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))[1].tobytes()
    try:
        from PIL import Image

        b = io.BytesIO()
        Image.fromarray(photo[:, :, ::-1]).convert("CMYK").save(b, "JPEG")
        out["572x562 CMYK (Pillow)"] = b.getvalue()
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "jpeg_decode.json")
    a = ap.parse_args()
    if images._simplejpeg is None:
        sys.exit("simplejpeg is not installed: pip install 'openfer[jpeg]'")
    cv2.setNumThreads(1)
    fixtures = {str(p.relative_to(ROOT)): p.read_bytes() for p in sorted((ROOT / "tests" / "assets").rglob("*.jpg"))}
    dev = {p.name: p.read_bytes() for p in sorted(a.dev.glob("*.jpg"))} if a.dev.is_dir() else {}
    made = variants()
    timed = {}
    for name, data in {**{k: v for k, v in fixtures.items() if "/photos/" in k}, **made}.items():
        h, w = opencv(data).shape[:2]
        o, t = median_ms(opencv, data, a.repeats), median_ms(turbo, data, a.repeats)
        timed[name] = {"size": f"{w}x{h}", "bytes": len(data), "opencv_ms": o, "simplejpeg_ms": t,
                       "opencv_over_simplejpeg": round(o / t, 2)}
        print(f"{name:45s} {w}x{h}  opencv {o:7.3f} ms  simplejpeg {t:7.3f} ms  x{o / t:.2f}")
    parity = {"files": 0, "same": 0, "different": [], "refused_by_simplejpeg": [], "opencv_failed": []}
    api = {"files": 0, "same": 0, "different": []}
    for name, data in {**fixtures, **{f"photos_dev/{k}": v for k, v in dev.items()}, **made}.items():
        if not data:
            continue
        parity["files"] += 1
        ref, got = opencv(data), turbo(data)
        if got is None:
            parity["refused_by_simplejpeg"].append(name)
        elif ref is None:
            parity["opencv_failed"].append(name)
        elif ref.shape == got.shape and np.array_equal(ref, got):
            parity["same"] += 1
        else:
            parity["different"].append(name)
        try:
            fast = images.decode_image(data, name)
        except Exception:  # a file the decoder rejects: rejected the same way below, or a difference
            fast = None
        saved, images._simplejpeg = images._simplejpeg, None
        try:
            slow = images.decode_image(data, name)
        except Exception:
            slow = None
        finally:
            images._simplejpeg = saved
        api["files"] += 1
        if (fast is None and slow is None) or (fast is not None and slow is not None and np.array_equal(fast, slow)):
            api["same"] += 1
        else:
            api["different"].append(name)
    after = {}  # the photos again, after ~2,300 decodes of all sizes: the allocator's state moves OpenCV's time
    for name, data in fixtures.items():
        if "/photos/" in name and "/labeled/" not in name:
            o, t = median_ms(opencv, data, a.repeats), median_ms(turbo, data, a.repeats)
            after[name] = {"opencv_ms": o, "simplejpeg_ms": t, "opencv_over_simplejpeg": round(o / t, 2)}
            print(f"after the parity pass: {name:45s} opencv {o:7.3f} ms  simplejpeg {t:7.3f} ms  x{o / t:.2f}")
    whole = {}
    if dev:
        for label, f in (("opencv", opencv), ("simplejpeg", turbo)):
            t = time.perf_counter()
            for data in dev.values():
                f(data)
            whole[f"{label}_s"] = round(time.perf_counter() - t, 3)
    import simplejpeg

    result = {
        "about": __doc__.splitlines()[0],
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "opencv": cv2.__version__, "simplejpeg": simplejpeg.__version__},
        "parity_raw": parity,
        "parity_decode_image": api,
        "timing_median_ms": timed,
        "timing_after_parity_median_ms": after,
        "photos_dev_whole": {"files": len(dev), **whole},
    }
    print(f"parity: {parity['same']} of {parity['files']} the same pixels, different {len(parity['different'])}, "
          f"refused by simplejpeg {parity['refused_by_simplejpeg']}; decode_image with and without simplejpeg: "
          f"{api['same']} of {api['files']} the same")
    write_json(result, a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
