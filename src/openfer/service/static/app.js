// openfer serve's page: photos, webcam and video jobs against this server's REST API (docs/service.md).
// Plain JavaScript, no libraries, nothing fetched from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "openfer-api-key";
const page = {
  key: sessionStorage.getItem(KEY_STORE) || "",
  limits: null,          // GET /limits: sizes, whether a key is needed, the version
  photos: [],            // the /v1/analyze documents of this session (without their images)
  classes: null,
};

// -- talking to the server ---------------------------------------------------------------------

function authHeaders() {
  return page.key ? { "X-API-Key": page.key } : {};
}

class ApiError extends Error {
  constructor(status, body, line) { super(line); this.status = status; this.body = body; }
}

function bytes(n) {
  if (n >= 1024 * 1024 * 1024) return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KiB`;
  return `${n} bytes`;
}

// One clear line for a refused request. `what` names the upload ("photo.jpg") or the action.
function errorLine(status, body, what) {
  const said = body && typeof body.error === "string" ? body.error : "";
  switch (status) {
    case 413: {
      const m = /over the (\d+) byte limit/.exec(said);
      const limit = m ? ` (the limit is ${bytes(Number(m[1]))})` : "";
      return `${what} is too large for this server${limit}.`;
    }
    case 401:
      openKeyBox();
      return "This server needs an API key: enter it under “API key” above, then try again.";
    case 429: return `The server is busy (${said || "too many requests waiting"}); try again in a moment.`;
    case 503: return "The server is still loading its models; try again in a few seconds.";
    case 504: return `${what}: ${said || "the analysis took too long"}.`;
    case 0: return `${what}: cannot reach the server (${said || "network error"}).`;
    default:
      if (said) return said.startsWith(what) ? said : `${what}: ${said}`;
      return `${what}: the server answered ${status}.`;
  }
}

async function api(url, options = {}, what = "request") {
  let res;
  try {
    res = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  } catch (e) {
    throw new ApiError(0, { error: "is it still running?" }, errorLine(0, { error: "is it still running?" }, what));
  }
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) throw new ApiError(res.status, body, errorLine(res.status, body, what));
  return body;
}

// A POST with upload progress (fetch has none): resolves {status, body}.
function postWithProgress(url, form, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      resolve({ status: xhr.status, body, location: xhr.getResponseHeader("Location") });
    };
    xhr.onerror = () => resolve({ status: 0, body: { error: "the connection was closed during the upload" } });
    xhr.send(form);
  });
}

// A job's result file, relative to the page (not the server's absolute `results` URLs), so the page
// works behind a proxy under a path prefix (host/openfer/): each segment of the name encoded,
// "/" kept between a plot's folder and file.
function resultHref(id, name) {
  return `v1/jobs/${encodeURIComponent(id)}/${name.split("/").map(encodeURIComponent).join("/")}`;
}

// With an API key, a result as a blob: URL (an element cannot send the X-API-Key header).
async function blobUrl(url) {
  const res = await fetch(url, { headers: authHeaders() });
  if (!res.ok) throw new ApiError(res.status, null, errorLine(res.status, null, decodeURIComponent(url.split("/").pop())));
  return URL.createObjectURL(await res.blob());
}

// A result URL for the shown job's <img>/<video>: the URL itself, or with an API key a blob of it,
// kept in `blobUrls` until clearResults() lets go of it (a blob lives until it is revoked).
const blobUrls = [];
async function resultUrl(url) {
  if (!page.key) return url;
  const u = await blobUrl(url);
  blobUrls.push(u);
  return u;
}

// The shown job's results go (a new job, another job's results): their elements first, then their blobs.
function clearResults() {
  $("job-results").hidden = true;
  $("job-summary").replaceChildren();
  $("job-captions").textContent = "";
  $("job-plots").replaceChildren();
  $("job-downloads").replaceChildren();
  const video = $("job-video");
  video.onerror = null;
  if (video.hasAttribute("src")) { video.removeAttribute("src"); video.load(); }
  for (const u of blobUrls.splice(0)) URL.revokeObjectURL(u);
}

function download(name, text, type) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function say(id, text) { $(id).textContent = text || ""; }

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

const fmt = (x, d = 2) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "–");

// -- server state, API key ------------------------------------------------------------------------

function openKeyBox() {
  const box = $("key-box");
  if (!box.open) box.open = true;
  $("api-key").focus();
}

async function checkServer() {
  try {
    page.limits = await api("limits", {}, "server");
  } catch (e) {
    $("server").className = "server bad";
    say("server", "The server does not answer: is openfer serve still running?");
    return;
  }
  if (page.limits.api_key_required && !page.key) $("key-box").open = true;
  for (let i = 0; ; i++) {
    const res = await fetch("readyz").catch(() => null);
    const ready = res && res.ok;
    $("server").className = ready ? "server ok" : "server";
    say("server", ready ? `Server ready · openfer ${page.limits.openfer}` : "The server is loading its models…");
    if (ready || i > 600) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  page.key = $("api-key").value.trim();
  if (page.key) sessionStorage.setItem(KEY_STORE, page.key); else sessionStorage.removeItem(KEY_STORE);
  say("server", page.key ? "API key set for this tab." : "API key cleared.");
});
$("api-key").value = page.key;

// -- tabs -----------------------------------------------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
function selectTab(tab, focus = true) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  if (tab.id !== "tab-webcam") camStop();
}
for (const t of tabs) {
  t.addEventListener("click", () => selectTab(t));
  t.addEventListener("keydown", (e) => {
    const i = tabs.indexOf(t);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    selectTab(tabs[(next + tabs.length) % tabs.length]);
  });
}

// files dropped outside a drop zone would make the browser open them instead of the page
for (const ev of ["dragover", "drop"]) window.addEventListener(ev, (e) => e.preventDefault());
function dropZone(zone, onFiles) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
}

// -- photos ---------------------------------------------------------------------------------------

function topProbabilities(face, classes, n = 3) {
  return classes.map((c) => [c, face[c]]).filter(([, p]) => typeof p === "number")
    .sort((a, b) => b[1] - a[1]).slice(0, n);
}

function activeAus(face) {
  return Object.entries(face).filter(([k, v]) => /^AU\d+$/.test(k) && typeof v === "number" && v >= 1)
    .sort((a, b) => b[1] - a[1]);
}

function faceTable(doc) {
  const head = ["Face", "Label", "Top probabilities", "AUs ≥ 1", "Reason"];
  const rows = doc.faces.map((f) => {
    const probs = el("ul", { class: "probs" },
      ...topProbabilities(f, doc.classes).map(([c, p]) => el("li", { text: `${c} ${fmt(p)}` })));
    const aus = activeAus(f);
    const auList = aus.length
      ? el("ul", { class: "aus" }, ...aus.map(([k, v]) => el("li", { text: `${k} ${fmt(v, 1)}` })))
      : document.createTextNode("none");
    const label = el("span", {}, el("span", { class: "label", text: f.label }),
      document.createTextNode(` ${fmt(f.label_score)}`),
      f.open_label && f.open_label !== f.label ? document.createTextNode(` (open set: ${f.open_label})`) : null);
    const cells = [
      el("td", { class: "num", "data-th": head[0], text: String(f.face) }),
      el("td", { class: "label-cell", "data-th": head[1] }, label),
      el("td", { "data-th": head[2] }, probs),
      el("td", { "data-th": head[3] }, auList),
      el("td", { class: "reason", "data-th": head[4], text: f.reason || "–" }),
    ];
    return el("tr", {}, ...cells);
  });
  const table = el("table", { class: "faces" },
    el("caption", { class: "visually-hidden", text: `Faces in ${doc.source}` }),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows));
  return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `Faces in ${doc.source}` }, table);
}

function renderPhoto(doc, error) {
  const n = doc && doc.faces ? doc.faces.length : 0;
  const name = doc ? doc.source : "upload";
  const title = error ? `${name}: not analysed` : `${name}: ${n === 0 ? "no face" : n === 1 ? "1 face" : `${n} faces`}`;
  const card = el("article", { class: "result", "aria-label": title }, el("h3", { text: title }));
  if (error) {
    card.append(el("p", { class: "error", text: error }));
  } else {
    if (doc.annotated_jpeg) {
      card.append(el("img", { src: `data:image/jpeg;base64,${doc.annotated_jpeg}`, width: doc.width, height: doc.height,
        class: n ? null : "small",
        alt: `${name} with ${n === 1 ? "its face" : `its ${n} faces`} boxed, numbered left to right and labelled` }));
    }
    for (const w of doc.warnings || []) card.append(el("p", { class: "note", text: `Warning: ${w}` }));
    if (n) card.append(faceTable(doc)); else card.append(el("p", { class: "note", text: "No face was found in this image." }));
  }
  $("photo-results").append(card);
}

async function analysePhotos(files) {
  say("photo-error", "");
  const errors = [];
  const maxBody = page.limits ? page.limits.max_body_bytes : Infinity;
  for (const [i, file] of files.entries()) {
    say("photo-status", files.length > 1 ? `Analysing ${i + 1} of ${files.length}: ${file.name}…` : `Analysing ${file.name}…`);
    let doc = null;
    let error = null;
    let status = null;
    if (file.size > maxBody) {
      error = errorLine(413, { error: `over the ${maxBody} byte limit` }, file.name);
    } else {
      const form = new FormData();
      form.append("image", file, file.name);
      try {
        doc = await api("v1/analyze?annotate=true", { method: "POST", body: form }, file.name);
      } catch (e) {
        error = e.message;
        status = e.status;
        if (e.body && e.body.status) doc = e.body;  // a bad image still has its row (status "error: ...")
      }
    }
    if (doc && doc.classes) page.classes = doc.classes;
    const row = doc ? { ...doc } : { source: file.name, status: `error: ${error}`, width: null, height: null,
      error, warnings: [], faces: [] };
    delete row.annotated_jpeg; delete row.openfer; delete row.classes;
    page.photos.push(row);
    if (!error || files.length > 1) renderPhoto(doc || { source: file.name }, error);  // one photo: the line says it
    if (error) errors.push(error);
    if (status === 401 || status === 0) break;  // the next photos would fail the same way
  }
  const faces = page.photos.reduce((s, d) => s + (d.faces ? d.faces.length : 0), 0);
  const failed = page.photos.filter((d) => d.error).length;
  const analysed = page.photos.length - failed;
  say("photo-status", `${analysed} photo(s) analysed, ${faces} face(s) in all${failed ? `; ${failed} not analysed` : ""}.`);
  if (errors.length) say("photo-error", errors.length === 1 ? errors[0] : `${errors[0]} (and ${errors.length - 1} more below)`);
  $("photo-downloads").hidden = page.photos.length === 0;
}

function photosJson() {
  const version = page.limits ? page.limits.openfer : null;
  return JSON.stringify({ openfer: version, classes: page.classes, images: page.photos }, null, 1);
}

function csvCell(v) {
  if (v === null || v === undefined) return "";
  const s = Array.isArray(v) ? v.join("; ") : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// One row per face, or one for an image without a face or in error, as `openfer analyze --csv`.
function photosCsv() {
  const columns = ["source", "status", "warnings"];
  for (const d of page.photos) for (const f of d.faces || []) for (const k of Object.keys(f)) if (!columns.includes(k)) columns.push(k);
  const lines = [columns.join(",")];
  for (const d of page.photos) {
    const base = { source: d.source, status: d.status, warnings: d.warnings };
    const faces = d.faces && d.faces.length ? d.faces : [{}];
    for (const f of faces) lines.push(columns.map((c) => csvCell(c in base ? base[c] : f[c])).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

const photoInput = $("photo-input");
photoInput.addEventListener("change", () => { if (photoInput.files.length) analysePhotos([...photoInput.files]).finally(() => { photoInput.value = ""; }); });
dropZone($("photo-drop"), analysePhotos);
$("photo-json").addEventListener("click", () => download("openfer-photos.json", photosJson(), "application/json"));
$("photo-csv").addEventListener("click", () => download("openfer-photos.csv", photosCsv(), "text/csv"));
$("photo-clear").addEventListener("click", () => {
  page.photos = [];
  $("photo-results").replaceChildren();
  $("photo-downloads").hidden = true;
  say("photo-status", ""); say("photo-error", "");
  photoInput.focus();
});

// -- webcam ---------------------------------------------------------------------------------------

const cam = { stream: null, running: false, frames: 0, started: 0 };
const CAM_INTERVAL_MS = 500;   // at most 2 frames a second, one request in flight
const CAM_WIDTH = 640;         // frames are sent at most this wide

function cameraError(e) {
  const name = e && e.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Camera access was refused: allow the camera for this page in the browser's site settings, then press Start camera again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") return "No camera was found on this device.";
  if (name === "NotReadableError" || name === "AbortError") return "The camera could not be started: another program may be using it.";
  return `The camera could not be started (${name || e}).`;
}

async function camStart() {
  say("cam-error", "");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("cam-error", "This browser offers no camera to this page: open it on http://localhost or over https.");
    return;
  }
  say("cam-status", "Asking for the camera…");
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (e) {
    say("cam-status", "");
    say("cam-error", cameraError(e));
    return;
  }
  const video = $("cam-video");
  video.srcObject = cam.stream;
  $("cam-stage").hidden = false;
  await video.play().catch(() => {});
  cam.running = true; cam.frames = 0; cam.started = performance.now();
  $("cam-start").disabled = true; $("cam-stop").disabled = false;
  $("cam-stop").focus();
  say("cam-status", "Camera on: analysing…");
  camLoop();
}

function camStop() {
  if (!cam.stream && !cam.running) return;
  cam.running = false;
  if (cam.stream) for (const t of cam.stream.getTracks()) t.stop();
  cam.stream = null;
  $("cam-video").srcObject = null;
  $("cam-stage").hidden = true;
  $("cam-start").disabled = false; $("cam-stop").disabled = true;
  say("cam-status", cam.frames ? `Camera off after ${cam.frames} analysed frame(s).` : "Camera off.");
}

function grabFrame(video) {
  const scale = Math.min(1, CAM_WIDTH / video.videoWidth);
  const c = document.createElement("canvas");
  c.width = Math.round(video.videoWidth * scale);
  c.height = Math.round(video.videoHeight * scale);
  c.getContext("2d").drawImage(video, 0, 0, c.width, c.height);
  return new Promise((resolve) => c.toBlob((b) => resolve({ blob: b, scale }), "image/jpeg", 0.85));
}

function drawFaces(doc, scale) {
  const video = $("cam-video");
  const canvas = $("cam-overlay");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const px = Math.max(2, Math.round(canvas.width / 320));
  g.lineWidth = px;
  g.font = `600 ${8 * px}px system-ui, sans-serif`;
  g.textBaseline = "top";
  for (const f of doc.faces) {
    const [x1, y1, x2, y2] = [f.x1, f.y1, f.x2, f.y2].map((v) => v / scale);
    g.strokeStyle = "#ffd23f";
    g.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${f.face} ${f.label} ${fmt(f.label_score)}`;
    const w = g.measureText(text).width + 4 * px;
    const h = 10 * px;
    const ty = y1 - h >= 0 ? y1 - h : y2;
    g.fillStyle = "rgba(0,0,0,.72)";
    g.fillRect(x1 - px / 2, ty, w, h);
    g.fillStyle = "#fff";
    g.fillText(text, x1 + 2 * px, ty + px);
  }
  $("cam-faces").replaceChildren(...doc.faces.map((f) => el("li", {
    text: `face ${f.face}: ${f.label} ${fmt(f.label_score)}${f.reason ? ` · ${f.reason}` : ""}` })));
}

async function camLoop() {
  const video = $("cam-video");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let sent = -Infinity;  // when the last request left: requests, not loop turns, are paced
  while (cam.running) {
    if (video.videoWidth === 0) { await sleep(100); continue; }  // no picture yet: look again shortly
    await sleep(Math.max(0, CAM_INTERVAL_MS - (performance.now() - sent)));
    if (!cam.running) break;
    const { blob, scale } = await grabFrame(video);
    const form = new FormData();
    form.append("image", blob, "webcam.jpg");
    sent = performance.now();
    try {
      const doc = await api("v1/analyze", { method: "POST", body: form }, "webcam frame");
      if (!cam.running) break;
      cam.frames += 1;
      drawFaces(doc, scale);
      const rate = cam.frames / ((performance.now() - cam.started) / 1000);
      const n = doc.faces.length;
      say("cam-status", `Live: ${cam.frames} frame(s) analysed · ${rate.toFixed(1)} per second · ` +
        `${n === 0 ? "no face" : n === 1 ? "1 face" : `${n} faces`} · last answer ${Math.round(performance.now() - sent)} ms`);
      say("cam-error", "");
    } catch (e) {
      if (!cam.running) break;
      say("cam-error", e.message);
      if (e.status === 401 || e.status === 0) { camStop(); break; }
      await sleep(1000);  // busy (429), loading (503): slow down and go on
    }
  }
}

$("cam-start").addEventListener("click", camStart);
$("cam-stop").addEventListener("click", () => { camStop(); $("cam-start").focus(); });

// -- video jobs -----------------------------------------------------------------------------------

const job = { id: null, polling: false, announced: "" };
let videoFile = null;

function setVideoFile(file) {
  videoFile = file || null;
  say("video-name", videoFile ? `${videoFile.name} (${bytes(videoFile.size)}): ready to start` : "Drop a video here, or choose a file");
}
$("video-input").addEventListener("change", () => setVideoFile($("video-input").files[0]));
dropZone($("video-drop"), (files) => setVideoFile(files[0]));

function announce(text) {  // the live region speaks on state changes only, not on every poll
  if (text !== job.announced) { job.announced = text; say("job-status", text); }
}

function secondsText(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function showProgress(doc) {
  const bar = $("job-progress");
  const total = doc.frames_total || 0;
  const done = doc.frames_done || 0;
  if (total > 0) { bar.max = total; bar.value = Math.min(done, total); } else bar.removeAttribute("value");  // unknown yet
  if (doc.state === "done") { bar.max = Math.max(done, 1); bar.value = bar.max; }
  const frames = total ? `frames ${done} / ${total}` : done ? `${done} frames` : "opening the video…";
  let text;
  if (doc.state === "queued") text = "Queued: waiting for a free worker…";
  else if (doc.state === "running") {
    const eta = doc.eta_seconds !== null && doc.eta_seconds !== undefined ? ` · about ${secondsText(doc.eta_seconds)} left` : "";
    const resumed = doc.resumed_frames ? ` · resumed after ${doc.resumed_frames} frames` : "";
    text = `Running: ${frames}${eta}${resumed}`;
  } else if (doc.state === "done") {
    const took = doc.finished && doc.created ? ` in ${secondsText(doc.finished - doc.created)}` : "";
    text = `Done: ${done} frames analysed${took}.`;
  } else if (doc.state === "failed") text = `Failed after ${done} frames.`;
  else text = "Cancelled.";
  bar.setAttribute("aria-valuetext", text);
  say("job-label", `Job ${doc.id} · ${doc.input_name}`);
  // speak the state, and a running job at each quarter
  const quarter = total ? Math.floor((4 * done) / total) : 0;
  announce(doc.state === "running" ? `Running: ${quarter * 25}% of the frames done` : text);
  say("job-detail", text);
}

async function submitJob(e) {
  e.preventDefault();
  say("video-error", "");
  if (!videoFile) { say("video-error", "Choose a video first."); $("video-input").focus(); return; }
  const limit = page.limits ? page.limits.max_video_bytes : Infinity;
  if (videoFile.size > limit) {
    say("video-error", errorLine(413, { error: `over the ${limit} byte limit` }, videoFile.name));
    return;
  }
  const f = new FormData($("video-form"));
  const form = new FormData();
  form.append("video", videoFile, videoFile.name);
  form.append("every", f.get("every") || "1");
  form.append("smooth", f.get("smooth") || "none");
  for (const name of ["annotate", "plots", "parquet"]) form.append(name, f.get(name) ? "true" : "false");
  $("video-submit").disabled = true;
  clearResults();
  $("job").hidden = false;
  const bar = $("job-progress");
  say("job-label", `Uploading ${videoFile.name}`);
  const res = await postWithProgress("v1/jobs", form, (done, total) => {
    bar.max = total; bar.value = done;
    say("job-detail", `Uploading: ${Math.round((100 * done) / total)}% of ${bytes(total)}`);
  });
  if (res.status !== 202) {
    $("video-submit").disabled = false;
    $("job").hidden = true;
    say("video-error", errorLine(res.status, res.body, videoFile.name));
    return;
  }
  followJob(res.body.id);
}

async function followJob(id) {
  job.id = id; job.announced = "";
  $("job-progress").removeAttribute("value");
  history.replaceState(null, "", `#job=${id}`);  // a reload follows the job again
  $("job").hidden = false;
  $("video-cancel").disabled = false;
  $("video-submit").disabled = true;
  if (job.polling) return;
  job.polling = true;
  try {
    for (;;) {
      let doc;
      try {
        doc = await api(`v1/jobs/${encodeURIComponent(job.id)}`, {}, "the job");
      } catch (e) {
        say("video-error", e.message);
        if (e.status === 404 || e.status === 401) break;
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      if (doc.id !== job.id) continue;
      showProgress(doc);
      if (!["queued", "running"].includes(doc.state)) {
        if (doc.state === "failed") say("video-error", doc.error || "The job failed.");
        if (Object.keys(doc.results || {}).length) await showResults(doc);
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    job.polling = false;
    $("video-cancel").disabled = true;
    $("video-submit").disabled = false;
  }
}

function summaryTable(summary) {
  const head = ["Person", "Time", "Frames", "Dominant", "Shares", "Valence", "Arousal", "Events"];
  const rows = summary.tracks.map((t) => {
    const shares = Object.entries(t.shares || {}).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([k, v]) => `${k} ${Math.round(100 * v)}%`).join(", ");
    const events = (t.events || []).map((ev) => `${ev.label} ${fmt(ev.onset, 1)}–${fmt(ev.offset, 1)} s`).join("; ") || "none";
    const cells = [`track ${t.track}`, `${fmt(t.first_time, 1)}–${fmt(t.last_time, 1)} s`, String(t.frames), t.dominant,
      shares, fmt(t.mean_valence), fmt(t.mean_arousal), events];
    return el("tr", {}, ...cells.map((c, i) => el("td", { "data-th": head[i], class: i === 1 || i === 2 ? "num" : null, text: c })));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: String(head.length), text: "No face was followed in this video." })));
  return [el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))), el("tbody", {}, ...rows)];
}

const DOWNLOAD_LABELS = {
  "timeline.csv": "timeline (CSV, one row per face per frame)",
  "timeline.parquet": "timeline (Parquet)",
  "timeline_smooth.csv": "smoothed timeline (CSV)",
  "summary.json": "summary (JSON)",
  "captions.txt": "captions (text)",
  "annotated.webm": "annotated video (WebM)",
  "annotated.mp4": "annotated video (MP4)",
};

async function showResults(doc) {
  clearResults();
  const names = Object.keys(doc.results);
  const has = (name) => names.includes(name);
  const href = (name) => resultHref(doc.id, name);
  const box = $("job-results");
  box.hidden = false;
  try {
    if (has("summary.json")) $("job-summary").replaceChildren(...summaryTable(await api(href("summary.json"), {}, "summary.json")));
    $("job-captions").textContent = has("captions.txt") ? (await api(href("captions.txt"), {}, "captions.txt")).trim() || "(no captions)" : "(none)";
    const plots = names.filter((n) => n.startsWith("plots/")).sort();
    const figures = [];
    for (const name of plots) {
      const track = (/track-(\d+)/.exec(name) || [])[1];
      figures.push(el("figure", {},
        el("img", { src: await resultUrl(href(name)), alt: `Plot of person ${track}: expression probabilities, valence and arousal, and action units over time`, loading: "lazy" }),
        el("figcaption", { text: `Person ${track} (track ${track}) over time` })));
    }
    $("job-plots").replaceChildren(...(figures.length ? [el("h3", { text: "Plots per person" }), ...figures] : []));
    const videoName = has("annotated.webm") ? "annotated.webm" : has("annotated.mp4") ? "annotated.mp4" : null;
    const video = $("job-video");
    const note = $("job-video-note");
    $("job-video-title").hidden = video.hidden = !videoName;
    note.hidden = true;
    if (videoName) {
      video.onerror = () => {
        note.hidden = false;
        note.textContent = `This browser cannot play ${videoName} (its codec); download it below.`;
      };
      video.src = await resultUrl(href(videoName));
    }
    const links = names.map((name) => {
      const a = el("a", { href: href(name), download: name.replace("plots/", "plot-"), text: name });
      if (page.key) {  // the header cannot go with a plain link: fetch it, save the blob, then let it go
        a.addEventListener("click", async (e) => {
          e.preventDefault();
          try {
            const u = await blobUrl(href(name));
            const t = el("a", { href: u, download: a.getAttribute("download") });
            document.body.append(t); t.click(); t.remove();
            setTimeout(() => URL.revokeObjectURL(u), 10000);
          } catch (err) { say("video-error", err.message); }
        });
      }
      const label = DOWNLOAD_LABELS[name] || (name.startsWith("plots/") ? `plot of ${name.slice(6, -4).replace("-", " ")} (PNG)` : name);
      return el("li", {}, a, document.createTextNode(` · ${label}`));
    });
    $("job-downloads").replaceChildren(...links);
  } catch (e) {
    say("video-error", e.message);
  }
}

$("video-form").addEventListener("submit", submitJob);
$("video-cancel").addEventListener("click", async () => {
  if (!job.id) return;
  try {
    const r = await api(`v1/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" }, "cancel");
    announce(r.state === "running" ? "Cancelling: the job stops after its current step…" : "Cancelled.");
  } catch (e) { say("video-error", e.message); }
});

// -- start ----------------------------------------------------------------------------------------

checkServer();
{
  const m = /^#job=([A-Za-z0-9_-]{1,64})$/.exec(location.hash);
  if (m) { selectTab($("tab-video"), false); followJob(m[1]); }
}
