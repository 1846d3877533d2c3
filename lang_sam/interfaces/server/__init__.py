"""The LitServe server: ``lang-sam serve``.

``POST /predict`` takes an image (a multipart file field ``image``, or JSON with ``image`` as base64)
and the fields ``prompt``, ``box_threshold``, ``text_threshold``, ``sam_type``, ``max_detections``,
``nms_iou_threshold``, ``multimask_output`` and ``format`` ("json", the default, or "png" for the
labelled drawing). JSON answers hold the image size, the model, and per detection: label, score,
mask score, box and COCO RLE mask.

``POST /embed`` (an image and ``sam_type``) encodes the image once and answers its ``image_id`` (its
content hash); ``POST /decode`` (``image_id``, ``sam_type``, ``points``, ``point_labels``, ``boxes``,
``mask``, ``multimask_output``; no image) answers masks for clicks and boxes on it as /predict does,
in milliseconds: a client that clicks many times sends and encodes the image once. The last
``embeddings_kept`` embeddings are kept, in a folder every worker reads (segmenter/embedding_store.py; 404 for one no longer kept).
The same requests may go to /predict with ``mode`` "embed" or "decode".

``POST /track`` (a video as the file field ``video``, ``prompt``, optional ``sam_type`` (a SAM 2.1
model), ``detector``, ``start``, ``end``, ``stride``, ``redetect_every``, ``max_lost``, the
thresholds) streams JSON Lines as frames finish: per frame its index, time and objects (id, label,
score, box, COCO RLE mask), as ``lang-sam track`` writes them (track.py).

``mode=everything`` (no prompt; the generator's options as fields) answers segment-anything's
records with COCO RLE masks; its ``semantic`` field names each mask with a universal segmentation
model the server offers (``lang-sam serve --semantic-models``): label and label_share per mask.

``GET /health`` answers 503 while the workers start, then JSON: status "ok", the SAMs, detectors
and semantic models served, the device and the dtype the models run in.

Modules: validation.py (what a request may hold), api.py (the LitAPI and the batching policy),
guard.py (the ASGI request guard, which also routes /embed and /decode), health.py (the /health report), client.py (the mounted app's HTTP
backend), track.py (the streaming /track LitAPI), cancel.py (the run's folder: /track uploads and the
flags that stop the work of a request whose client left). What one request may ask is bounded by
Limits (lang_sam/interfaces/limits.py; a 422 names the limit and its ``serve`` flag).

Requests from different clients are batched (LitServe batching) and each batch runs one detector
pass per group of requests with the same options. A request guard in front of LitServe answers
unreadable bodies with a 4xx before they reach a worker, and hands the others on unchanged.
"""

from __future__ import annotations

import functools
import signal
import weakref
from collections.abc import Sequence
from dataclasses import replace

import litserve as ls

from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.interfaces.models import served_detectors, served_sam_types, served_semantic_models
from lang_sam.interfaces.server.api import PREDICT_PATH, LangSAMAPI
from lang_sam.interfaces.server.cancel import ServerFiles
from lang_sam.interfaces.server.client import RemoteBackend
from lang_sam.segmenter.embedding_store import DEFAULT_CAPACITY
from lang_sam.interfaces.server.guard import RequestGuard
from lang_sam.interfaces.server.health import HealthReport
from lang_sam.interfaces.server.track import TrackAPI, TrackRequestCheck
from lang_sam.interfaces.server.validation import Limits
from lang_sam.settings import Settings


def build_server(
    settings: Settings,
    limits: Limits = Limits(),
    max_batch_size: int = 4,
    batch_timeout: float = 0.05,
    workers_per_device: int = 1,
    timeout: float = 120.0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    sam_types: Sequence[str] | None = None,
    preload: bool = False,
    embeddings_kept: int = DEFAULT_CAPACITY,
    detectors: Sequence[str] | None = None,
    semantic_models: Sequence[str] | None = None,
    files: ServerFiles | None = None,
):
    """A LitServer with the guard in front; the caller mounts the app if wanted, then runs it.
    sam_types: the SAMs requests may name (default: settings.sam_type alone); detectors: the
    detectors requests may name (default: settings.detector alone); semantic_models: the models
    that may name everything-masks (default: none); preload: load the SAMs
    at start instead of on first use; embeddings_kept: how many /embed embeddings /decode can use
    (4 MB each); files: the run's folder (/track uploads, cancel flags, embeddings), removed with
    the server (default: a new one).

    The dtype is resolved here, once ("auto" measures the CPU), and the workers get it resolved, so
    that /health reports what every worker runs."""
    device = resolve_device(settings.device or ("cpu" if accelerator == "cpu" else None))
    settings = replace(settings, dtype=str(resolve_dtype(settings.dtype, device)).removeprefix("torch."))
    report = {"sam_types": list(served_sam_types(settings, sam_types)), "detectors": list(served_detectors(settings, detectors)),
              "semantic_models": served_semantic_models(semantic_models), "device": device.type, "dtype": settings.dtype}
    files = files or ServerFiles.create()  # removed when the server stops, whatever the workers were doing
    server = ls.LitServer(
        [LangSAMAPI(settings, limits, max_batch_size, batch_timeout, sam_types, preload, embeddings_kept, detectors,
                    semantic_models, files),
         TrackAPI(settings, sam_types, detectors, limits, files)],
        accelerator=accelerator,
        devices=devices,
        workers_per_device=workers_per_device,
        timeout=timeout,
        middlewares=[(RequestGuard, {"max_upload_bytes": limits.max_upload_bytes, "max_video_bytes": limits.max_video_bytes,
                                     "check_track": TrackRequestCheck(settings, sam_types, detectors, limits, files),
                                     "files": files}),
                     (HealthReport, {"report": report})],
    )
    server.uvicorn_graceful_timeout = STOP_GRACE_SECONDS
    weakref.finalize(server, files.remove)  # also at exit
    return server


STOP_GRACE_SECONDS = 5  # how long each HTTP process waits for open responses (a /track stream) when stopped


def stop_on_sigterm(files: ServerFiles, signum: int, frame) -> None:
    """SIGTERM (kill, docker stop) as Ctrl+C: LitServe shuts its workers down on Ctrl+C but leaves
    them running on SIGTERM. The run's folder goes first: the shutdown that follows may wait for
    open streams longer than a stopper's grace (docker's 10 s) before a SIGKILL."""
    files.remove()
    raise KeyboardInterrupt


def serve(
    settings: Settings,
    limits: Limits = Limits(),
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = 4,
    batch_timeout: float = 0.05,
    workers_per_device: int = 1,
    timeout: float = 120.0,
    with_app: bool = False,
    sam_types: Sequence[str] | None = None,
    preload: bool = False,
    embeddings_kept: int = DEFAULT_CAPACITY,
    detectors: Sequence[str] | None = None,
    semantic_models: Sequence[str] | None = None,
) -> None:
    """Run the server until interrupted; call under ``if __name__ == "__main__"`` (workers are spawned)."""
    served = served_sam_types(settings, sam_types)  # checked here, so a bad name fails before workers start
    semantic_models = served_semantic_models(semantic_models)
    accelerator = "cpu" if (settings.device or "").startswith("cpu") else "auto"
    files = ServerFiles.create()
    server = build_server(
        settings, limits, max_batch_size, batch_timeout, workers_per_device, timeout, accelerator,
        sam_types=served, preload=preload, embeddings_kept=embeddings_kept, detectors=detectors,
        semantic_models=semantic_models, files=files,
    )
    if with_app:
        backend = RemoteBackend(f"http://127.0.0.1:{port}{PREDICT_PATH}", timeout=timeout + 60,
                                semantic_models=semantic_models)
        import gradio as gr  # only here: a server without the app never imports Gradio

        from lang_sam.interfaces.app import build_app

        app = build_app(backend, served[0], list(served), list(served_detectors(settings, detectors)))
        gr.mount_gradio_app(server.app, app.queue(), path="/app")
    signal.signal(signal.SIGTERM, functools.partial(stop_on_sigterm, files))
    # LitServe starts one HTTP server process per model worker by default; the mounted app keeps
    # its queue and sessions in its process, so with the app there is one (the workers stay many).
    api_servers = 1 if with_app else None
    server.run(host=host, port=port, generate_client_file=False, num_api_servers=api_servers)
