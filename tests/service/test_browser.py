"""The web page of ``openfer serve`` in a real browser: Debian's Chromium driven by Playwright against a
real ``openfer serve`` on loopback (marker ``browser``; ``.ci/run`` installs Chromium and runs them).

Photos (the table of multi_face.jpg's five faces, the JSON and CSV downloads), a video job to its end
(the progress bar, the plot, the annotated video playing), refused uploads (one clear line each), the
webcam mode with Chromium's fake camera playing a fixture video (live boxes and labels, at most two
requests a second and one in flight) and a refused camera. Each step leaves a screenshot in
``tests/artifacts/browser/`` (``OPENFER_ARTIFACTS`` to put them elsewhere).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import PHOTOS
from jobs_helpers import LONG, SHORT, free_port

pytestmark = pytest.mark.browser
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("OPENFER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("OPENFER_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts" / "browser"))
MAX_BODY = 300_000        # multi_face.jpg (139 KB) passes, a 299,950-byte photo is refused by the server
MAX_VIDEO = 1_000_000     # single_face.mp4 (208 KB) passes, WolfgangLanger_Pexels.mp4 (1.6 MB) does not
PHONE = {"width": 390, "height": 844}

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


# The service mounted under a path prefix (as behind a reverse proxy at https://host/openfer/): the
# mount sets the ASGI root_path, so the app sees /openfer/v1/... with root_path /openfer.
_PREFIXED = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from openfer.service import ServiceConfig, create_app

port, data, prefix, max_body, max_video = sys.argv[1:]
inner = create_app(ServiceConfig(data=data, max_body_bytes=int(max_body), max_video_bytes=int(max_video)))
outer = Starlette(routes=[Mount(prefix, app=inner)], lifespan=lambda app: inner.router.lifespan_context(inner))
uvicorn.run(outer, host="127.0.0.1", port=int(port), log_level="warning")
"""


@contextlib.contextmanager
def _serve(data: Path, api_key: str = "", prefix: str = ""):
    """A real ``openfer serve`` on a free loopback port with small upload limits: yields its base URL
    (with ``prefix``, e.g. ``"/openfer"``: the same app mounted there by uvicorn, base URL ``.../openfer/``)."""
    port = free_port()
    log_path = data.parent / f"{data.name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    command = (["-c", _PREFIXED, str(port), str(data), prefix, str(MAX_BODY), str(MAX_VIDEO)] if prefix else
               ["-m", "openfer.cli", "serve", "--port", str(port), "--data", str(data),
                "--max-body", str(MAX_BODY), "--max-video-bytes", str(MAX_VIDEO)])
    p = subprocess.Popen([sys.executable, *command], stdout=log, stderr=subprocess.STDOUT,
                         env={**os.environ, "OPENFER_API_KEY": api_key})
    base = f"http://127.0.0.1:{port}{prefix}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "readyz", timeout=2) as r:
                    if json.loads(r.read())["status"] == "ready":
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert p.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield base
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with _serve(tmp_path_factory.mktemp("browser-data")) as base:
        yield base


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory) -> Path:
    """single_face.mp4 as a Y4M file: what Chromium's fake camera plays (in a loop)."""
    import cv2

    path = tmp_path_factory.mktemp("camera") / "single_face.y4m"
    cap = cv2.VideoCapture(str(SHORT))
    frames = []
    while len(frames) < 60:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    h, w = bgr.shape[:2] if frames else (0, 0)
    assert len(frames) == 60 and (w, h) == (640, 360)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + frame)
    return path


@pytest.fixture(scope="module")
def browser(fake_camera):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=[
            *ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_camera}", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


class Page:
    """A fresh browser context on the page, collecting the console's errors (a CSP violation is one)."""

    def __init__(self, browser, base: str, viewport: dict | None = None, init_script: str | None = None) -> None:
        self.context = browser.new_context(viewport=viewport or {"width": 1200, "height": 900}, accept_downloads=True)
        if init_script:
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(base)
        self.page.wait_for_selector("#server.ok", timeout=30_000)

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self, expected_errors: int = 0) -> None:
        try:
            assert len(self.errors) == expected_errors, self.errors
        finally:
            self.context.close()


@pytest.fixture
def open_page(browser, server):
    pages: list[Page] = []

    def make(**kw) -> Page:
        pages.append(Page(browser, server, **kw))
        return pages[-1]

    yield make
    for p in pages:
        p.context.close()


def test_photos_table_and_downloads(open_page, server):
    p = open_page()
    page = p.page
    page.set_input_files("#photo-input", [str(PHOTOS / "multi_face.jpg"), str(PHOTOS / "no_face_landscape.jpg")])
    page.wait_for_function("() => document.querySelectorAll('#photo-results article').length === 2", timeout=60_000)
    card = page.locator("#photo-results article").first
    assert card.locator("h3").inner_text() == "multi_face.jpg: 5 faces"
    rows = card.locator("table.faces tbody tr")
    assert rows.count() == 5
    cells = [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(5)]
    classes = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert [c[0] for c in cells] == ["0", "1", "2", "3", "4"]  # numbered left to right, as on the image
    labels = [c[1].split()[0] for c in cells]
    assert set(labels) <= set(classes) and "happiness" in labels
    assert all(c[4] and c[4].split()[0] in classes for c in cells)  # a reason per face, starting with its label
    assert card.locator("img").evaluate("img => img.naturalWidth") == 1000  # the annotated image, full size
    assert page.locator("#photo-results article").nth(1).inner_text().endswith("No face was found in this image.")
    assert page.inner_text("#photo-status") == "2 photo(s) analysed, 5 face(s) in all."
    assert page.locator("#photo-results article").nth(1).locator("img").evaluate("i => i.clientWidth") <= 360
    p.shot("1_photos")

    with page.expect_download() as dl:
        page.click("#photo-json")
    doc = json.loads(Path(dl.value.path()).read_text())
    assert dl.value.suggested_filename == "openfer-photos.json"
    assert [im["source"] for im in doc["images"]] == ["multi_face.jpg", "no_face_landscape.jpg"]
    assert [f["label"] for f in doc["images"][0]["faces"]] == labels and doc["images"][1]["faces"] == []
    assert doc["classes"] == list(classes) and "annotated_jpeg" not in doc["images"][0]
    with page.expect_download() as dl:
        page.click("#photo-csv")
    table = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert [(r["source"], r["face"], r["label"]) for r in table] == (
        [("multi_face.jpg", str(i), lab) for i, lab in enumerate(labels)] + [("no_face_landscape.jpg", "", "")])
    assert float(table[0]["x1"]) == pytest.approx(doc["images"][0]["faces"][0]["x1"])

    page.set_viewport_size(PHONE)  # a phone-sized window: nothing wider than the screen
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    card.scroll_into_view_if_needed()
    p.shot("2_photos_phone")
    p.close()


def test_video_job_runs_to_the_end_with_plot_and_playing_video(open_page):
    p = open_page()
    page = p.page
    page.click("#tab-video")
    page.set_input_files("#video-input", str(SHORT))
    page.fill("#opt-every", "3")
    page.check("input[name=parquet]")
    page.evaluate("""() => { window.seen = []; new MutationObserver(() => seen.push(
        document.getElementById('job-detail').textContent)).observe(document.getElementById('job-detail'),
        {childList: true, characterData: true, subtree: true}); }""")
    page.click("#video-submit")
    page.wait_for_function("() => document.getElementById('job-detail').textContent.startsWith('Running: frames')",
                           timeout=30_000)
    p.shot("3_video_running")
    page.wait_for_function("() => document.getElementById('job-detail').textContent.startsWith('Done')",
                           timeout=60_000)
    assert page.inner_text("#job-detail").startswith("Done: 24 frames analysed in ")
    bar = page.eval_on_selector("#job-progress", "b => [b.value, b.max]")
    assert bar == [24, 24]
    seen = page.evaluate("() => seen")
    assert any(s.startswith("Running: frames ") and "/ 24" in s for s in seen), seen  # live progress
    page.wait_for_function("() => { const i = document.querySelector('#job-plots img'); "
                           "return i && i.complete && i.naturalWidth > 0; }", timeout=20_000)
    links = page.eval_on_selector_all("#job-downloads a", "as => as.map(a => a.textContent)")
    assert links == ["timeline.csv", "timeline.parquet", "summary.json", "captions.txt", "annotated.webm",
                     "plots/track-0.png"]
    assert page.inner_text("#job-captions").startswith("track 0:")
    summary = page.locator("#job-summary tbody tr td").all_inner_texts()
    assert summary[0] == "track 0" and summary[2] == "24" and summary[3] == "happiness"

    video = page.locator("#job-video")
    assert video.evaluate("v => v.src").endswith("/annotated.webm")
    video.evaluate("v => new Promise((ok, no) => { if (v.readyState >= 2) ok(); v.onloadeddata = ok; "
                   "v.onerror = () => no(new Error('cannot play: ' + (v.error && v.error.message))); })")
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [640, 360]
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.getElementById('job-video').currentTime > 0.5", timeout=15_000)
    assert not page.is_visible("#job-video-note")  # no "cannot play" note
    timeline = page.request.get(page.eval_on_selector("#job-downloads a", "a => a.href"))
    assert timeline.status == 200 and timeline.text().count("\n") == 25  # header + 24 frames with a face
    page.locator("#job-plots").scroll_into_view_if_needed()
    p.shot("4_video_done")
    p.close()


def test_refused_uploads_show_one_clear_line(open_page, tmp_path):
    p = open_page()
    page = p.page
    big = tmp_path / "big.jpg"  # under the limit on its own, over it with the form's framing: the server's 413
    big.write_bytes((PHOTOS / "multi_face.jpg").read_bytes() * 3)
    with open(big, "r+b") as f:
        f.truncate(MAX_BODY - 50)
    page.set_input_files("#photo-input", str(big))
    page.wait_for_function("() => document.getElementById('photo-error').textContent !== ''", timeout=30_000)
    assert page.inner_text("#photo-error") == "big.jpg is too large for this server (the limit is 293 KiB)."
    p.shot("5_photo_too_large")

    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image\n" * 10)
    page.click("#photo-clear")
    page.set_input_files("#photo-input", str(notes))
    page.wait_for_function("() => document.getElementById('photo-error').textContent !== ''", timeout=30_000)
    line = page.inner_text("#photo-error")
    assert line.startswith("notes.jpg: ") and "\n" not in line and len(line) < 200, line

    page.click("#tab-video")
    page.set_input_files("#video-input", str(LONG))
    page.click("#video-submit")
    page.wait_for_function("() => document.getElementById('video-error').textContent !== ''", timeout=10_000)
    assert page.inner_text("#video-error") == "WolfgangLanger_Pexels.mp4 is too large for this server (the limit is 977 KiB)."
    assert page.is_hidden("#job")
    p.shot("6_video_too_large")
    p.close(expected_errors=2)  # the browser logs the two refused requests (413, 400)


def test_webcam_shows_live_faces_at_a_modest_rate(open_page):
    p = open_page()
    page = p.page
    calls: list[tuple[str, float]] = []
    page.on("request", lambda r: r.url.endswith("/v1/analyze") and calls.append(("start", time.monotonic())))
    page.on("requestfinished", lambda r: r.url.endswith("/v1/analyze") and calls.append(("end", time.monotonic())))
    page.click("#tab-webcam")
    page.click("#cam-start")
    page.wait_for_function("() => Number((/Live: (\\d+) frame/.exec(document.getElementById('cam-status')"
                           ".textContent) || [0, 0])[1]) >= 3", timeout=30_000)
    status = page.inner_text("#cam-status")
    assert "1 face" in status, status
    assert page.locator("#cam-faces li").first.inner_text().startswith("face 0: ")
    painted = page.eval_on_selector("#cam-overlay", """c => { const d = c.getContext('2d')
        .getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
        return [c.width, c.height, n]; }""")
    assert painted[:2] == [640, 360] and painted[2] > 500  # a box and its label drawn over the picture
    p.shot("7_webcam_live")
    page.click("#cam-stop")
    assert page.inner_text("#cam-status").startswith("Camera off after ")
    starts = [t for k, t in calls if k == "start"]
    assert len(starts) >= 3
    assert (len(starts) - 1) / (starts[-1] - starts[0]) <= 2.2  # at most ~2 requests a second
    in_flight = peak = 0
    for kind, _ in calls:
        in_flight += 1 if kind == "start" else -1
        peak = max(peak, in_flight)
    assert peak == 1  # never more than one request in flight
    p.close()


def test_a_refused_camera_is_one_clear_line(open_page):
    refuse = """navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"""
    p = open_page(init_script=refuse, viewport=PHONE)
    page = p.page
    page.click("#tab-webcam")
    page.click("#cam-start")
    page.wait_for_function("() => document.getElementById('cam-error').textContent !== ''", timeout=10_000)
    assert page.inner_text("#cam-error") == ("Camera access was refused: allow the camera for this page in the "
                                             "browser's site settings, then press Start camera again.")
    assert page.is_hidden("#cam-stage") and page.is_enabled("#cam-start")
    p.shot("8_webcam_refused_phone")
    p.close()


def test_a_server_with_an_api_key_asks_for_it_once(browser, tmp_path_factory):
    with _serve(tmp_path_factory.mktemp("keyed-data"), api_key="s3cret") as base:
        p = Page(browser, base)
        page = p.page
        assert page.get_attribute("#key-box", "open") == ""  # GET /limits said a key is needed
        page.set_input_files("#photo-input", str(PHOTOS / "single_face.jpg"))
        page.wait_for_function("() => document.getElementById('photo-error').textContent !== ''", timeout=30_000)
        assert page.inner_text("#photo-error") == ("This server needs an API key: enter it under “API key” above, "
                                                   "then try again.")
        assert page.evaluate("() => document.activeElement.id") == "api-key"
        page.keyboard.type("s3cret")
        page.keyboard.press("Enter")
        page.set_input_files("#photo-input", str(PHOTOS / "single_face.jpg"))
        page.wait_for_function("() => document.querySelectorAll('#photo-results table.faces').length === 1",
                               timeout=30_000)
        assert page.inner_text("#photo-error") == "" and page.locator("table.faces tbody tr").count() == 1
        stored = page.evaluate("() => [sessionStorage.getItem('openfer-api-key'), localStorage.length]")
        assert stored == ["s3cret", 0]  # kept for this tab only
        p.close(expected_errors=1)  # the browser logs the 401


PREFIX = "/openfer"
_COUNT_BLOBS = """window.liveBlobs = new Set();
    const create = URL.createObjectURL.bind(URL), revoke = URL.revokeObjectURL.bind(URL);
    URL.createObjectURL = (o) => { const u = create(o); liveBlobs.add(u); return u; };
    URL.revokeObjectURL = (u) => { liveBlobs.delete(u); revoke(u); };"""


def _run_video_job(page, every: int = 12) -> str:
    """A video job of SHORT through the page (plots and annotated video on), to its shown results:
    the plot loaded and the video playable. Returns the job id."""
    before = page.evaluate("() => location.hash")
    page.click("#tab-video")
    page.set_input_files("#video-input", str(SHORT))
    page.fill("#opt-every", str(every))
    page.click("#video-submit")
    page.wait_for_function("before => location.hash !== before && document.getElementById('job-detail')"
                           ".textContent.startsWith('Done')", arg=before, timeout=60_000)
    job_id = page.evaluate("() => location.hash").removeprefix("#job=")
    page.wait_for_function("() => { const i = document.querySelector('#job-plots img'); "
                           "return i && i.complete && i.naturalWidth > 0; }", timeout=20_000)
    page.locator("#job-video").evaluate(
        "v => new Promise((ok, no) => { if (v.readyState >= 2) ok(); v.onloadeddata = ok; "
        "v.onerror = () => no(new Error('cannot play: ' + (v.error && v.error.message))); })")
    return job_id


def test_the_page_works_under_a_path_prefix(browser, tmp_path_factory):
    """Behind a proxy at /openfer/: the page's API calls and its result URLs (the plot, the video, the
    downloads; the server's JSON gives them from the server root) all stay under the prefix."""
    with _serve(tmp_path_factory.mktemp("prefixed-data"), prefix=PREFIX) as base:
        p = Page(browser, base)
        page = p.page
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.set_input_files("#photo-input", str(PHOTOS / "single_face.jpg"))
        page.wait_for_function("() => document.querySelectorAll('#photo-results table.faces').length === 1",
                               timeout=30_000)
        assert page.inner_text("#photo-results h3") == "single_face.jpg: 1 face"
        job_id = _run_video_job(page)
        video = page.locator("#job-video")
        assert video.evaluate("v => v.src") == f"{base}v1/jobs/{job_id}/annotated.webm"
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("() => document.getElementById('job-video').currentTime > 0.5", timeout=15_000)
        assert page.eval_on_selector("#job-plots img", "i => i.src") == f"{base}v1/jobs/{job_id}/plots/track-0.png"
        links = page.eval_on_selector_all("#job-downloads a", "as => as.map(a => a.href)")
        assert links and all(u.startswith(f"{base}v1/jobs/{job_id}/") for u in links), links
        timeline = page.request.get(links[0])
        assert timeline.status == 200 and timeline.text().startswith("time,frame,track")
        assert page.inner_text("#job-summary tbody tr td") == "track 0"
        p.shot("10_prefixed")
        assert requests and all(u.startswith(base) for u in requests if not u.startswith(("data:", "blob:"))), requests
        page.goto(base + "docs")  # the API docs too
        page.wait_for_selector(".opblock", timeout=30_000)
        p.close()


def test_blob_urls_of_replaced_results_are_revoked(browser, tmp_path_factory):
    """With an API key the plot and the video are blob: URLs; a second job's results revoke the
    first's, so a long session does not keep every job's files in memory. Under a prefix, where the
    key is still required."""
    with _serve(tmp_path_factory.mktemp("blob-data"), api_key="s3cret", prefix=PREFIX) as base:
        p = Page(browser, base, init_script=_COUNT_BLOBS)
        page = p.page
        assert page.request.get(base + "v1/jobs").status == 401  # the key guards /v1 under the prefix
        assert page.request.get(base + "v1/jobs", headers={"X-API-Key": "s3cret"}).status == 200
        page.fill("#api-key", "s3cret")
        page.press("#api-key", "Enter")
        _run_video_job(page)
        first = page.evaluate("() => [...liveBlobs]")
        assert len(first) == 2  # the plot and the video
        assert sorted(page.evaluate("() => [document.querySelector('#job-plots img').src, "
                                    "document.getElementById('job-video').src]")) == sorted(first)
        second_id = _run_video_job(page)
        second = page.evaluate("() => [...liveBlobs]")
        assert len(second) == 2 and not set(first) & set(second), (first, second)
        with page.expect_download() as dl:  # a download link still works (its blob goes 10 s later)
            page.click("#job-downloads a >> text=timeline.csv")
        assert dl.value.suggested_filename == "timeline.csv"
        assert Path(dl.value.path()).read_text().startswith("time,frame,track")
        assert page.evaluate("() => location.hash") == f"#job={second_id}"
        p.close()


def test_keyboard_reaches_every_tab_and_the_file_pickers(open_page):
    p = open_page()
    page = p.page
    page.focus("#tab-photos")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.id") == "tab-webcam" and page.is_visible("#cam-start")
    page.keyboard.press("End")
    assert page.evaluate("() => document.activeElement.id") == "tab-video" and page.is_visible("#video-drop")
    page.keyboard.press("Home")
    assert page.get_attribute("#tab-photos", "aria-selected") == "true"
    page.keyboard.press("Tab")  # into the panel, then to the file input inside the drop zone
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "photo-input"
    outline = page.eval_on_selector("#photo-drop", "d => getComputedStyle(d).outlineStyle")
    assert outline == "solid"  # the drop zone shows the focus
    p.close()


def test_page_headers_and_files(server):
    with urllib.request.urlopen(server, timeout=5) as r:
        csp = r.headers["Content-Security-Policy"]
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        html = r.read().decode()
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "http" not in html.replace('href="docs"', "")  # nothing from elsewhere: no CDN, no fonts
    for name in ("app.js", "app.css", "icon.svg"):
        with urllib.request.urlopen(server + "static/" + name, timeout=5) as r:
            assert r.status == 200 and r.headers["Content-Security-Policy"] == csp
            text = r.read().replace(b'xmlns="http://www.w3.org/2000/svg"', b"").replace(b"http://localhost", b"")
            assert b"http://" not in text and b"https://" not in text and b"@import" not in text
    for bad in ("static/../app.py", "static/%2e%2e%2fapp.py", "static/index.html.bak"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server + bad, timeout=5)
        assert err.value.code == 404


def test_api_docs_render_offline(browser, server):
    """/docs (Swagger UI) in the browser draws every operation from files of this server alone."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: not r.url.startswith(server) and outside.append(r.url))
    page.goto(server + "docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    ops = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/analyze" in o for o in ops) and any("/v1/jobs" in o for o in ops), ops
    page.screenshot(path=str(ARTIFACTS / "9_api_docs.png"))
    context.close()
    assert not outside, outside
