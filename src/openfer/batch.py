"""Batches of images: the per-input loop, its results document and its output files.

:func:`run_batch` is what ``openfer analyze`` runs, :func:`analyze_one` what it and ``openfer serve`` run per image: no
argparse here, only paths, options and callbacks.

* **Every input is accounted for.** Each input gets a row: one per face (``status`` ``"ok"``), or a
  single row with ``status`` ``"no_face"`` or ``"error: <reason>"`` (a bad file, a missing path, a
  pattern without matches), with its source, so outputs join back to the input list.
* **Outputs are checked before any work**: an output that is one of the inputs, an existing
  non-regular file (device, FIFO, folder), two outputs naming one file, and annotated images that
  would replace an input are refused with an :class:`~openfer.errors.InputError`.
* **Resumable.** With any file output, each finished input is appended to ``<first output>.openfer-work/
  rows.jsonl``, the manifest (flushed per input, so Ctrl-C or SIGKILL loses at most the images in
  flight): the row itself, or, when a worker elsewhere wrote it (the Ray engine), a reference to the
  Parquet partition under ``parts/`` that holds it. The final JSON/CSV/Parquet are assembled from the
  manifest in input order, streaming (the driver keeps an offset or a partition name per input, not
  the rows; the Parquet output alone is built in memory), so a resumed batch writes exactly what an
  uninterrupted one writes; the work folder is removed once every output is written. A leftover
  work folder makes the next run stop and ask for ``resume=True`` or ``overwrite=True``.
* **Writes are atomic and independent.** A failed write (full disk, permissions) is counted in
  :attr:`BatchSummary.unwritten`, reported, and does not stop the batch or the other outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InputError, OutputError
from .extras import require
from .io.images import iter_image_paths, read_image
from .io.lock import FolderLock
from .io.tables import (
    atomic_path,
    check_folders,
    columns_of,
    write_csv,
    write_json,
    write_json_stream,
    write_parquet,
)
from .io.text import printable

__all__ = ["BatchItem", "BatchOutputs", "BatchSummary", "Engine", "ImageRow", "RowRef", "analyze_item", "analyze_one",
           "plan_batch", "read_partition", "run_batch", "write_outputs", "write_partition"]

STATUS_OK, STATUS_NO_FACE = "ok", "no_face"
WORK_SUFFIX = ".openfer-work"
ROWS_FILE = "rows.jsonl"
HEADER_FILE = "batch.json"
PARTS_DIR = "parts"  # Parquet partitions written by workers (the Ray engine's actors)
STDOUT = "-"


@dataclass(frozen=True)
class BatchOutputs:
    """Where a batch writes: ``json``/``csv`` (a path, or ``"-"`` for standard output), ``parquet`` (a
    path), ``annotate`` (a folder for ``<stem>_annotated.jpg``, drawn with ``draw``: see
    :func:`openfer.draw.annotate`); ``landmarks`` adds the mesh to every record, ``saliency`` also
    writes ``<stem>_saliency.jpg`` beside each annotated image."""

    json: str | None = None
    csv: str | None = None
    parquet: str | None = None
    annotate: str | None = None
    landmarks: bool = False
    saliency: bool = False
    draw: str = "auto"  # annotated images: openfer.draw.annotate's mesh mode

    def files(self) -> list[tuple[str, Path]]:
        """``(kind, path)`` of the result files (not standard output), in a fixed order."""
        named = (("json", self.json), ("csv", self.csv), ("parquet", self.parquet))
        return [(k, Path(v)) for k, v in named if v and v != STDOUT]


@dataclass(frozen=True)
class ImageRow:
    """One input's outcome, as stored in the work file and written to the outputs."""

    index: int
    source: str
    status: str  # "ok" | "no_face" | "error: <reason>"
    width: int | None = None
    height: int | None = None
    error: str | None = None
    records: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()  # decoder warnings (a JPEG decoded with errors, unreadable EXIF...)

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies every record, the bulk of the manifest's cost
        return {"index": self.index, "source": self.source, "status": self.status, "width": self.width,
                "height": self.height, "error": self.error, "records": list(self.records),
                "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRow:
        return cls(**{**d, "records": tuple(d["records"]), "warnings": tuple(d.get("warnings", ()))})

    def table_rows(self) -> list[dict[str, Any]]:
        """CSV/Parquet rows: the face records with ``status`` and ``warnings``, or one row without a face."""
        head = {"source": self.source, "status": self.status, "warnings": " | ".join(self.warnings)}
        if self.records:
            return [{**head, **_drop(r, "source")} for r in self.records]
        return [head]

    def document(self) -> dict[str, Any]:
        """This input's entry of the JSON document's ``images`` list."""
        faces = [_drop(r, "source", "frame", "time") for r in self.records]
        return {"source": self.source, "status": self.status, "width": self.width, "height": self.height,
                "error": self.error, "warnings": list(self.warnings), "faces": faces}


@dataclass
class BatchSummary:
    """Counts of a finished (or interrupted) batch."""

    images: int = 0  # inputs accounted for (done now or before a resume)
    faces: int = 0
    failed: int = 0  # inputs with an error row
    no_face: int = 0
    resumed: int = 0  # inputs taken from the work file of an earlier run
    unwritten: list[str] = field(default_factory=list)  # messages of outputs that could not be written
    skipped_in_subfolders: int = 0  # images in subfolders of folder inputs, not searched (no recursive)
    finished: bool = False  # every input done and every output written (the work folder removed)


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: its position, its text as given, the file (``None`` with ``error`` when
    the input could not be expanded) and its annotated image's path."""

    index: int
    source: str
    path: Path | None  # None: the input could not be expanded (error)
    error: str | None = None
    annotation: Path | None = None


@dataclass(frozen=True)
class RowRef:
    """A finished input whose row a worker wrote into a partition of the batch's work folder
    (:func:`write_partition`): what the manifest keeps instead of the row."""

    index: int
    source: str
    status: str
    part: str  # the partition's file name under <work>/parts/
    faces: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Where the analysis of a batch runs: (analyzer, items still to do, outputs, work folder or None) ->
# for each item, in any order, what analyze_item returns, or a RowRef to the partition of the work
# folder the engine wrote the row into (only when the work folder is not None).
Engine = Callable[[Any, "list[BatchItem]", BatchOutputs, "Path | None"], Iterator[tuple["ImageRow | RowRef", list[str]]]]


@dataclass(frozen=True)
class BatchPlan:
    items: tuple[BatchItem, ...]
    skipped_in_subfolders: int
    work: Path | None  # the work folder of a resumable batch


def plan_batch(inputs: Sequence[str | os.PathLike[str]], outputs: BatchOutputs, recursive: bool = False) -> BatchPlan:
    """Expand the inputs (each bad one becomes an error item, not an exception) and check the outputs
    (refused ones raise :class:`InputError` before any work)."""
    items: list[BatchItem] = []
    seen: set[Path] = set()
    skipped = 0
    for text in inputs:
        text = os.fspath(text)
        try:
            found = iter_image_paths([text], recursive=recursive)
        except InputError as e:
            items.append(BatchItem(len(items), text, None, str(e)))
            continue
        if not recursive and Path(text).is_dir():
            skipped += _images_below(Path(text)) - len(found)
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                items.append(BatchItem(len(items), str(p), p))
    _check_outputs(outputs, seen)
    if outputs.annotate:
        items = _with_annotations(items, Path(outputs.annotate), seen)
    files = outputs.files()
    work = None
    if files:
        first = files[0][1]
        work = first.with_name(first.name + WORK_SUFFIX)
    elif outputs.annotate:
        work = Path(outputs.annotate) / WORK_SUFFIX
    return BatchPlan(tuple(items), skipped, work)


def run_batch(
    analyzer: Any,
    inputs: Sequence[str | os.PathLike[str]],
    outputs: BatchOutputs,
    *,
    recursive: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    on_row: Callable[[ImageRow], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stdout: Any = None,
    workers: int = 1,
    engine: Engine | None = None,
) -> BatchSummary:
    """Analyse every input with ``analyzer`` (an :class:`~openfer.pipeline.Analyzer`) and write
    ``outputs``. With ``workers`` > 1 the images are analysed by that many processes, each with its
    own analyzer built from ``analyzer.options`` (ONNX Runtime threads split between them when the
    options leave them at 0); the outputs are the same, rows in input order. ``engine`` runs the
    analysis elsewhere instead (``openfer.scale.ray_engine.RayEngine``: a Ray cluster); it is given the
    analyzer, the inputs still to do, the outputs and the work folder, and yields what
    :func:`analyze_item` returns, or a :class:`RowRef` to a partition it wrote, in any order, while
    this function keeps the manifest, the resume and the outputs. ``on_row`` sees each newly analysed input's row (not the resumed ones), ``on_error``
    each one-line error (bad inputs, unwritable outputs), ``progress(done, total)`` the count after
    each input. ``resume`` continues an unfinished batch from its work folder; ``overwrite``
    discards one. Raises :class:`InputError` for refused outputs or an unfinished batch left alone.
    """
    plan = plan_batch(inputs, outputs, recursive)
    header = {"openfer": __version__, "options": _options_dict(analyzer),
              "runtimes": getattr(analyzer, "runtimes", {}), "landmarks": outputs.landmarks,
              "outputs": {k: str(p.resolve()) for k, p in outputs.files()}}
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be an integer >= 1, got {workers!r}")
    if engine is not None and workers != 1:
        raise InputError("workers and engine exclude each other: the engine decides where the analysis runs")
    lock = FolderLock(plan.work) if plan.work is not None else contextlib.nullcontext()
    with lock:  # a second batch into the same outputs gets a one-line error naming this one
        summary = _run_locked(
            analyzer, plan, outputs, header, resume, overwrite, on_row, on_error, progress, stdout,
            engine or _LocalEngine(workers),
        )
    if plan.work is not None and summary.finished:
        with contextlib.suppress(OSError):  # only if nothing else was left in it
            plan.work.rmdir()
    return summary


def _run_locked(analyzer, plan, outputs, header, resume, overwrite, on_row, on_error, progress, stdout, engine):  # noqa: ANN001, ANN202
    done = _open_work(plan.work, header, resume, overwrite, _option_defaults(analyzer))
    summary = BatchSummary(skipped_in_subfolders=plan.skipped_in_subfolders)
    entries: dict[int, _Entry] = {}
    report = on_error or (lambda msg: None)
    todo = [it for it in plan.items if it.source not in done]
    for it in plan.items:
        if it.source in done:
            entries[it.index] = done[it.source]
            summary.resumed += 1
    if progress is not None and summary.resumed:
        progress(summary.resumed, len(plan.items))
    with _RowStore(plan.work) as store:
        with _RowLog(plan.work) as log:
            for got, unwritten in engine(analyzer, todo, outputs, plan.work):
                if unwritten:  # not logged as done: a resumed run writes its images again
                    summary.unwritten.extend(unwritten)
                    for msg in unwritten:
                        report(msg)
                    entry = _Entry.of(got, None)
                else:
                    entry = _Entry.of(got, log.append(got, report))
                if got.error:
                    report(got.error)
                if on_row is not None:
                    on_row(store.row(entry, got.index))
                entries[got.index] = entry
                if progress is not None:
                    progress(len(entries), len(plan.items))
        order = [(it.index, entries[it.index]) for it in plan.items]
        summary.images = len(order)
        summary.faces = sum(e.faces for _, e in order)
        summary.failed = sum(e.status.startswith("error") for _, e in order)
        summary.no_face = sum(e.status == STATUS_NO_FACE for _, e in order)
        rows = _Rows(store, order)
        classes = tuple(getattr(analyzer, "classes", ()))
        summary.unwritten += write_outputs(rows, outputs, classes, report, stdout)
    summary.finished = not summary.unwritten and not log.failed
    if plan.work is not None and summary.finished:
        _remove_work(plan.work)
    return summary


@dataclass(frozen=True)
class _Entry:
    """What the driver keeps of a finished input: its counts, and where its row is (in memory, at a
    byte offset of the manifest, or in a partition under the key it was written with)."""

    source: str
    status: str
    faces: int
    error: str | None
    row: ImageRow | None = None  # not logged (no work folder, or the log failed): kept here
    offset: int = -1  # the row's line in rows.jsonl
    part: str = ""  # the partition holding the row ...
    key: int = -1  # ... under this index

    @classmethod
    def of(cls, got: ImageRow | RowRef, offset: int | None) -> _Entry:
        if isinstance(got, RowRef):
            return cls(got.source, got.status, got.faces, got.error, part=got.part, key=got.index)
        head = (got.source, got.status, len(got.records), got.error)
        return cls(*head, offset=offset) if offset is not None else cls(*head, row=got)


class _RowStore:
    """Reads the rows of entries back from the manifest and the partitions (the last few partitions
    read are cached: workers write them in roughly input order)."""

    def __init__(self, work: Path | None, cache: int = 256) -> None:
        self.work, self.cache = work, cache
        self._parts: OrderedDict[str, dict[int, str]] = OrderedDict()
        self._fh: Any = None

    def __enter__(self) -> _RowStore:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def row(self, entry: _Entry, index: int) -> ImageRow:
        """The entry's row, numbered ``index`` (its place in this run's inputs)."""
        row = entry.row
        if row is None:
            line = self._partition(entry.part).get(entry.key) if entry.part else self._line(entry.offset)
            with contextlib.suppress(ValueError, TypeError, KeyError):
                row = None if line is None else ImageRow.from_dict(json.loads(line))
            if row is None or row.source != entry.source:
                where = f"{PARTS_DIR}/{entry.part}" if entry.part else ROWS_FILE
                raise InputError(f"{printable(str(self.work / where))}: unreadable batch state for "
                                 f"{printable(entry.source)}; start again with --overwrite")
        return row if row.index == index else replace(row, index=index)

    def _line(self, offset: int) -> bytes:
        if self._fh is None:
            self._fh = open(self.work / ROWS_FILE, "rb")  # noqa: SIM115 - closed in __exit__
        self._fh.seek(offset)
        return self._fh.readline()

    def _partition(self, name: str) -> dict[int, str]:
        part = self._parts.get(name)
        if part is None:
            try:
                part = read_partition(self.work / PARTS_DIR / name)
            except InputError:
                raise InputError(f"{printable(str(self.work / PARTS_DIR / name))}: a partition of the batch "
                                 "is missing or unreadable; start again with --overwrite") from None
            self._parts[name] = part
            if len(self._parts) > self.cache:
                self._parts.popitem(last=False)
        else:
            self._parts.move_to_end(name)
        return part


class _Rows(Sequence[ImageRow]):
    """The rows of a batch in input order, read from the work files one at a time as needed."""

    def __init__(self, store: _RowStore, order: list[tuple[int, _Entry]]) -> None:
        self.store, self.order = store, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i):  # noqa: ANN001, ANN204
        if isinstance(i, slice):
            return [self.store.row(e, k) for k, e in self.order[i]]
        k, e = self.order[i]
        return self.store.row(e, k)

    def __iter__(self) -> Iterator[ImageRow]:
        for k, e in self.order:
            yield self.store.row(e, k)


def write_partition(work: Path, rows: Sequence[ImageRow]) -> str:
    """Write ``rows`` as one Parquet partition of the work folder ``work`` (columns ``index``,
    ``source``, ``status``, ``faces`` and ``row``, the row as its manifest JSON line), atomically;
    returns its file name. What a worker elsewhere (a Ray actor) writes so that the driver keeps only
    a :class:`RowRef` per input. Raises :class:`~openfer.errors.OutputError` when it cannot."""
    pa = require("pyarrow", "ray", "partitions of a batch")
    import pyarrow.parquet as pq

    name = f"part-{rows[0].index if rows else 0:08d}-{uuid.uuid4().hex[:12]}.parquet"
    table = pa.table({
        "index": pa.array([r.index for r in rows], pa.int64()),
        "source": pa.array([r.source for r in rows], pa.string()),
        "status": pa.array([r.status for r in rows], pa.string()),
        "faces": pa.array([len(r.records) for r in rows], pa.int32()),
        "row": pa.array([_row_line(r) for r in rows], pa.string()),
    })
    path = work / PARTS_DIR / name
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    return name


def read_partition(path: Path) -> dict[int, str]:
    """A partition's rows (manifest JSON lines) by index; :class:`InputError` when unreadable."""
    require("pyarrow", "ray", "partitions of a batch")
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as fh:  # lighter than pq.read_table's dataset discovery: ~3x on small files
            table = fh.read(columns=["index", "row"], use_threads=False)
        return dict(zip(table.column("index").to_pylist(), table.column("row").to_pylist(), strict=True))
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{printable(str(path))}: unreadable partition ({type(e).__name__})") from None


def _row_line(row: ImageRow) -> str:
    return json.dumps(row.to_dict(), allow_nan=True)


class _LocalEngine:
    """``analyze_item`` of each item, in this process or in ``workers`` processes (in completion
    order, at most two items in flight per worker)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def __call__(
        self, analyzer: Any, items: list[BatchItem], outputs: BatchOutputs, work: Path | None = None
    ) -> Iterator[tuple[ImageRow, list[str]]]:
        return _analyzed(analyzer, items, outputs, self.workers)


def _analyzed(analyzer: Any, items: list[BatchItem], outputs: BatchOutputs, workers: int) -> Iterator[tuple[ImageRow, list[str]]]:
    if workers == 1 or len(items) < 2:
        for it in items:
            yield analyze_item(analyzer, it, outputs)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    opts = analyzer.options
    if opts.threads == 0:  # split the cores instead of letting each worker take all of them
        opts = replace(opts, threads=max(1, (os.cpu_count() or 1) // workers))
    pending: set = set()
    queue = iter(items)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(opts,)) as pool:
        try:
            for it in queue:
                pending.add(pool.submit(_work, it, outputs))
                if len(pending) >= 2 * workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        yield f.result()
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    yield f.result()
        except BaseException:  # Ctrl-C, or the caller stopped: do not wait for the queue
            for f in pending:
                f.cancel()
            raise


_WORKER: dict[str, Any] = {}


def _init_worker(options: Any) -> None:
    from .pipeline import Analyzer

    _WORKER["analyzer"] = Analyzer(options)


def _work(item: BatchItem, outputs: BatchOutputs) -> tuple[ImageRow, list[str]]:
    return analyze_item(_WORKER["analyzer"], item, outputs)


def analyze_item(analyzer: Any, item: BatchItem, outputs: BatchOutputs) -> tuple[ImageRow, list[str]]:
    """Analyse one input into its row, writing its annotated images; a bad file is an error row.
    Also returns the messages of annotated images that could not be written."""
    if item.path is None:
        return ImageRow(item.index, item.source, f"error: {item.error}", error=item.error), []
    path = item.path
    row, rgb, res = analyze_one(analyzer, lambda: read_image(path, max_pixels=analyzer.options.max_pixels),
                                item.source, outputs.landmarks, item.index)
    unwritten = []
    if item.annotation is not None and res is not None:
        unwritten = _annotate(analyzer, rgb, res.faces, item.annotation, outputs)
    return row, unwritten


def analyze_one(
    analyzer: Any, load: Callable[[], Any], source: str, landmarks: bool = False, index: int = 0
) -> tuple[ImageRow, Any, Any]:
    """One image's row: ``load()`` gives its RGB array (from a file, from uploaded bytes), then the
    analysis; a bad image is an error row, decoder warnings are kept in it. Returns the row, the
    array and the :class:`~openfer.types.FrameResult` (both ``None`` for an error row). The batch and
    the service both analyse through this."""
    with _Warnings() as seen:
        try:
            rgb = load()
            res = analyzer.analyze_rgb(rgb, source=source)
        except InputError as e:
            return ImageRow(index, source, f"error: {e}", error=str(e), warnings=tuple(seen)), None, None
    records = tuple(res.to_records(landmarks=landmarks))
    status = STATUS_OK if records else STATUS_NO_FACE
    return ImageRow(index, source, status, res.width, res.height, None, records, tuple(seen)), rgb, res


class _Warnings(logging.Handler):
    """Collects the ``openfer`` logger's warnings while an input is read and analysed (they still
    reach the other handlers: the terminal sees them too)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(printable(record.getMessage()))

    def __enter__(self) -> list[str]:
        logging.getLogger("openfer").addHandler(self)
        return self.messages

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("openfer").removeHandler(self)


def write_outputs(
    rows: Sequence[ImageRow],
    outputs: BatchOutputs,
    classes: Sequence[str],
    report: Callable[[str], None] = lambda m: None,
    stdout: Any = None,
) -> list[str]:
    """Write the JSON document, CSV and Parquet of ``rows``; returns the messages of the outputs that
    could not be written (each also passed to ``report``), the others being written regardless. The
    JSON and CSV are written streaming (``rows`` is read once for the JSON, twice for the CSV: its
    columns, then its rows); the Parquet table is built in memory."""
    import sys

    out = stdout if stdout is not None else sys.stdout

    columns: dict[str, None] = {}  # the CSV's, gathered while the JSON is written (one read of the rows fewer)
    gathered = False

    def table() -> Iterator[dict[str, Any]]:
        return (t for r in rows for t in r.table_rows())

    def documents() -> Iterator[dict[str, Any]]:
        nonlocal gathered
        for r in rows:
            if outputs.csv:
                for t in r.table_rows():
                    columns.update(dict.fromkeys(t))
            yield r.document()
        gathered = True

    def json_doc(p: Path) -> Path:
        head = {"openfer": __version__, "classes": list(classes)}
        return write_json_stream(head, "images", documents(), p)

    def csv_table(p: Path) -> Path:
        return write_csv(table(), p, (list(columns) if gathered else columns_of(table())) or None)

    failed: list[str] = []
    for target, write in (
        (outputs.json, json_doc),
        (outputs.csv, csv_table),
        (outputs.parquet, lambda p: write_parquet(list(table()), p, classes)),
    ):
        if not target:
            continue
        try:
            if target == STDOUT:
                _to_stdout(write, out)
            else:
                write(target)
        except OutputError as e:
            failed.append(str(e))
            report(str(e))
    return failed


# --------------------------------------------------------------------------- outputs


def _check_outputs(outputs: BatchOutputs, inputs: set[Path]) -> None:
    if outputs.parquet == STDOUT:
        raise InputError("--parquet cannot go to standard output ('-'): give a file name")
    if outputs.json == STDOUT and outputs.csv == STDOUT:
        raise InputError("only one of --json and --csv can go to standard output ('-')")
    named: dict[Path, str] = {}
    for kind, path in outputs.files():
        key = path.resolve()
        shown = printable(str(path))
        if key in named:
            raise InputError(f"{shown}: given as both the {named[key]} and the {kind} output")
        named[key] = kind
        if key in inputs:
            raise InputError(f"{shown}: the {kind} output is also an input; refusing to overwrite it")
        if path.exists() and not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file (a device or FIFO)"
            raise InputError(f"{shown}: the {kind} output exists and is {what}")
        check_folders(path)
    if outputs.annotate:
        ann = Path(outputs.annotate)
        if ann.exists() and not ann.is_dir():
            raise InputError(f"{printable(str(ann))}: the annotation folder exists and is not a folder")
        if ann.resolve() in named:
            raise InputError(f"{printable(str(ann))}: given as both an output file and the annotation folder")


def _with_annotations(items: list[BatchItem], folder: Path, inputs: set[Path]) -> list[BatchItem]:
    """Each readable item's annotated-image path (``<stem>_annotated.jpg``; a repeated stem gets
    ``_<n>``), refusing any that is an input."""
    out, stems = [], set()
    for it in items:
        if it.path is None:
            out.append(it)
            continue
        stem = it.path.stem
        if stem in stems:  # the same file name from another folder: keep both
            stem = f"{stem}_{len(stems)}"
        stems.add(stem)
        ann = folder / f"{stem}_annotated.jpg"
        for p in (ann, folder / f"{stem}_saliency.jpg"):
            if p.resolve() in inputs:
                raise InputError(f"{printable(str(p))}: an annotated image would replace this input; "
                                 "choose another --annotate folder")
        out.append(BatchItem(it.index, it.source, it.path, None, ann))
    return out


def _annotate(analyzer: Any, rgb: Any, faces: Any, path: Path, outputs: BatchOutputs) -> list[str]:
    """Write the annotated (and saliency) image; the messages of the writes that failed."""
    from .draw import annotate, save_image

    try:  # a failed image write is reported; the batch goes on
        save_image(annotate(rgb, faces, mesh=outputs.draw), path)
        if outputs.saliency and len(faces):
            from .explain.saliency import saliency_image

            save_image(saliency_image(analyzer, rgb, faces), path.with_name(path.name.replace("_annotated", "_saliency")))
    except OutputError as e:
        return [str(e)]
    return []


def _to_stdout(write: Callable[[Path], Any], out: Any) -> None:
    """Run a file writer into a temporary file and copy it to ``out`` (standard output)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="openfer-") as tmp:
        p = Path(tmp) / "out"
        write(p)
        out.write(p.read_text(encoding="utf-8"))
        out.flush()


def _drop(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def _options_dict(analyzer: Any) -> dict[str, Any]:
    opts = getattr(analyzer, "options", None)
    return {k: v for k, v in asdict(opts).items() if k != "threads"} if opts is not None else {}


def _option_defaults(analyzer: Any) -> dict[str, Any]:
    """Each option's default (of the analyzer's options dataclass): what an option added in a later
    version reads as for a batch begun before it existed (defaults keep the earlier behaviour)."""
    opts = getattr(analyzer, "options", None)
    if opts is None:
        return {}
    return {f.name: (f.default if f.default is not MISSING else f.default_factory())  # type: ignore[misc]
            for f in fields(opts) if f.default is not MISSING or f.default_factory is not MISSING}


def _same_options(old: Any, new: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """The recorded options of an unfinished batch equal ``new``, an option it did not record (added to
    openfer since it began) counting as equal when ``new`` holds its default."""
    if not isinstance(old, dict):
        return False
    filled = {k: defaults[k] for k in new.keys() - old.keys() if k in defaults}
    return {**_jsonable(filled), **old} == _jsonable(new)


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def _images_below(folder: Path) -> int:
    try:
        return len(iter_image_paths([folder], recursive=True))
    except InputError:
        return 0


# --------------------------------------------------------------------------- work folder


def _open_work(work: Path | None, header: dict[str, Any], resume: bool, overwrite: bool,
               defaults: dict[str, Any]) -> dict[str, _Entry]:
    """Prepare the work folder; the inputs an earlier run finished, by source (empty unless resuming).
    ``defaults``: the options' defaults (:func:`_option_defaults`), for a batch begun by an earlier
    version that did not have some of them."""
    if work is None:
        return {}
    head = work / HEADER_FILE
    if overwrite:
        _remove_work(work)
    if head.exists() or (work / ROWS_FILE).exists():
        if not resume:
            n = sum(1 for _ in _read_manifest(work))
            raise InputError(
                f"{printable(str(work))}: an unfinished batch ({n} input(s) done) is in the way; "
                "continue it with --resume or start again with --overwrite"
            )
        try:
            old = json.loads(head.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(
                f"{printable(str(head))}: unreadable batch state ({type(e).__name__}); start again with --overwrite"
            ) from None
        for key in ("options", "landmarks", "outputs"):
            same = (_same_options(old.get(key), header[key], defaults) if key == "options"
                    else old.get(key) == header[key])
            if not same:
                raise InputError(
                    f"{printable(str(work))}: the unfinished batch ran with other {key}; rerun it with the same "
                    "options and outputs, or start again with --overwrite"
                )
        done = dict(_read_manifest(work))
        for part in sorted({e.part for e in done.values() if e.part}):  # before any work, not at the end
            if not (work / PARTS_DIR / part).is_file():
                raise InputError(f"{printable(str(work / PARTS_DIR / part))}: a partition of the unfinished batch "
                                 "is missing; start again with --overwrite")
        return done
    write_json(header, head)
    return {}


def _read_manifest(work: Path) -> Iterator[tuple[str, _Entry]]:
    """``(source, entry)`` of each line of the manifest; a line cut short by a kill (the last one) is
    dropped."""
    path = work / ROWS_FILE
    if not path.is_file():
        return
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # torn last line: its input is analysed again
            try:
                d = json.loads(line)
                if "part" in d:
                    entry = _Entry.of(RowRef(**d), None)
                else:
                    entry = _Entry.of(ImageRow.from_dict(d), offset)
            except (ValueError, TypeError, KeyError):
                raise InputError(
                    f"{printable(str(path))}: unreadable batch state; start again with --overwrite"
                ) from None
            yield entry.source, entry
            offset += len(line)


class _RowLog:
    """Append-only ``rows.jsonl``: one JSON line per finished input, flushed at once."""

    def __init__(self, work: Path | None) -> None:
        self.work = work
        self.fh: Any = None
        self.failed = False  # a write failed (full disk): the batch goes on without resumability

    def __enter__(self) -> _RowLog:
        if self.work is not None:
            path = self.work / ROWS_FILE
            _truncate_torn_line(path)
            try:
                self.fh = open(path, "ab")  # noqa: SIM115 - closed in __exit__
                self.fh.seek(0, os.SEEK_END)
            except OSError as e:
                raise OutputError(printable(str(path)), e.strerror or str(e)) from None
        return self

    def append(self, got: ImageRow | RowRef, report: Callable[[str], None]) -> int | None:
        """Log a finished input (its row, or its reference to a partition); the byte offset of its
        line, or ``None`` when it was not logged (no work folder, or a write failed)."""
        if self.fh is None or self.failed:
            return None
        line = (json.dumps(got.to_dict()) if isinstance(got, RowRef) else _row_line(got)) + "\n"
        try:
            offset = self.fh.tell()
            self.fh.write(line.encode("utf-8"))
            self.fh.flush()
        except OSError as e:
            self.failed = True
            path = printable(str(self.work / ROWS_FILE))
            report(f"cannot write {path}: {e.strerror or e} (the batch goes on; it cannot be resumed)")
            return None
        return offset

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            try:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            except OSError:
                self.failed = True
            try:
                self.fh.close()
            except OSError:
                self.failed = True


def _truncate_torn_line(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)


def _remove_work(work: Path) -> None:
    """Remove the files a batch writes in its work folder (never anything else; the folder itself
    and its lock go when the lock is released)."""
    for name in (ROWS_FILE, HEADER_FILE):
        (work / name).unlink(missing_ok=True)
    parts = work / PARTS_DIR
    if parts.is_dir():
        for p in parts.iterdir():
            if p.name.startswith(("part-", ".part-")) and p.is_file():
                p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            parts.rmdir()

