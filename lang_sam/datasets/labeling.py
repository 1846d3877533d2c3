"""``lang-sam label``: every image of a folder through LangSAM, committed in chunks, resumable.

The sorted image list is cut into fixed chunks; each finished chunk is written to
``OUT/progress/chunk-NNNNN.json`` (temporary file, then rename), so a killed run starts again at
the first missing chunk and, since chunks and their batches are the same in every run, ends with
the same dataset as an uninterrupted one. ``finish`` merges the chunks into ``annotations.json``
(COCO), ``report.json`` (unreadable images) and, on request, a YOLO segmentation dataset.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lang_sam.datasets.coco import ImageRecord, coco_dataset, yolo_dataset_yaml, yolo_label_path, yolo_segmentation_lines, train_val_split
from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.io.files import remove_leftovers, write_atomically
from lang_sam.io.images import IMAGE_SUFFIXES, find_images, load_image
from lang_sam.registry import default_sam_type
from lang_sam.settings import Settings
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD


def model_record(settings: Settings) -> dict[str, str | None]:
    """What decides the labels, for the run's manifest: the SAM (name and the SHA256 of its file),
    the detector and the dtype it resolves to here. Loads no model."""
    from lang_sam.devices import resolve_device, resolve_dtype
    from lang_sam.io.weights import file_sha256, find_sam_checkpoint, is_hub_repo_id, sam_weights_file

    sam_type = default_sam_type(settings.sam_type, settings.sam_checkpoint)
    path = find_sam_checkpoint(sam_type, settings.sam_checkpoint, checkpoint_dir=settings.checkpoint_dir)
    dtype = resolve_dtype(settings.dtype, resolve_device(settings.device))
    own_name = settings.sam_checkpoint if is_hub_repo_id(settings.sam_checkpoint) else path.name
    return {"sam": sam_type or own_name, "sam_sha256": file_sha256(sam_weights_file(path)), "detector": settings.detector,
            "dtype": str(dtype).removeprefix("torch.")}


@dataclass(frozen=True)
class LabelJob:
    """A labeling run: images (relative names under images_root, a folder or a URI), classes, output."""

    images_root: str
    files: tuple[str, ...]
    classes: tuple[str, ...]
    out: Path
    chunk_size: int = 16
    batch_size: int = 4
    box_threshold: float = BOX_THRESHOLD
    text_threshold: float = TEXT_THRESHOLD
    max_detections: int | None = None
    everything: dict[str, Any] | None = None  # segment everything: the generator's options and "semantic"
    tiling: dict[str, Any] | None = None  # rasters of any size, tile by tile: "tile", "overlap", "bands" (lang_sam.tiling)

    @property
    def progress_dir(self) -> Path:
        return self.out / "progress"

    def chunks(self) -> list[tuple[str, ...]]:
        return [self.files[start : start + self.chunk_size] for start in range(0, len(self.files), self.chunk_size)]

    def chunk_path(self, index: int) -> Path:
        return self.progress_dir / f"chunk-{index:05d}.json"

    def pending(self) -> list[int]:
        return [index for index in range(len(self.chunks())) if not self.chunk_path(index).is_file()]

    def prepare(self, models: dict[str, str | None]) -> None:
        """Create the output folders, refuse a folder labelled for other images, classes, settings
        or models (model_record), and remove temporary files a killed run left."""
        self.progress_dir.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.progress_dir)
        manifest_path = self.progress_dir / "job.json"
        manifest = {"files": list(self.files), "classes": list(self.classes), "chunk_size": self.chunk_size,
                    "batch_size": self.batch_size, "box_threshold": self.box_threshold, "text_threshold": self.text_threshold,
                    "max_detections": self.max_detections, "everything": self.everything, "models": models,
                    **({"tiling": self.tiling} if self.tiling else {})}  # untiled runs keep their manifests as they were
        if manifest_path.is_file():
            found = json.loads(manifest_path.read_text())
            if found.get("models") != models and {**found, "models": None} == {**manifest, "models": None}:
                raise InvalidOptionError(
                    f"{self.out} holds a labeling run made with other models ({_models_text(found.get('models'))}); "
                    f"this run would use {_models_text(models)}. Resume with the same models, or use another --out."
                )
            if found != manifest:
                raise InvalidOptionError(
                    f"{self.out} holds a labeling run with other images, classes or settings; use another --out "
                    "or delete its progress folder to start over."
                )
            return
        write_atomically(manifest_path, lambda file: file.write(json.dumps(manifest).encode()))

    def commit(self, index: int, chunk: dict[str, Any]) -> None:
        write_atomically(self.chunk_path(index), lambda file: file.write(json.dumps(chunk).encode()))


def _models_text(models: dict | None) -> str:
    if not models:
        return "models it did not record"
    return f"SAM {models['sam']} (sha256 {models['sam_sha256'][:12]}...), detector {models['detector']}, {models['dtype']}"


def list_images(images_root: str) -> list[str]:
    """Image file names under a folder (recursively, sorted), local or any URI pyarrow reads (s3://, gs://)."""
    if "://" not in images_root:
        return [str(path.relative_to(images_root)) for path in find_images(images_root)]
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(images_root)
    infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
    return sorted(
        info.path[len(base) :].lstrip("/") for info in infos
        if info.type == fs.FileType.File and info.path.lower().endswith(IMAGE_SUFFIXES)
    )


def read_image(images_root: str, name: str) -> np.ndarray:
    """Decode one image of the job (InvalidImageError when it cannot be read)."""
    if "://" not in images_root:
        return load_image(Path(images_root) / name)
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(images_root)
    try:
        with filesystem.open_input_file(f"{base.rstrip('/')}/{name}") as file:
            data = file.readall()
    except OSError as error:
        raise InvalidImageError(f"Could not read {images_root}/{name}: {error}") from None
    return load_image(data)


@dataclass
class LabelStats:
    images: int = 0
    seconds: float = 0.0
    waiting_seconds: float = 0.0  # time the model spent waiting for prepared images
    preparing_seconds: float = 0.0  # time the background threads spent decoding and resizing
    failed: list[dict[str, str]] = field(default_factory=list)


def prepared_ahead(pool: Executor, model, images_root: str, names: Iterable[str], ahead: int, stats: LabelStats) -> Iterator:
    """Each name's image decoded and resized for both models (LangSAM.prepare), or its
    InvalidImageError, in order, computed up to `ahead` images in advance by the pool; adds the time
    the caller waited and the time the pool worked to stats."""
    queued = iter(names)
    pending: deque[Future] = deque()
    while True:
        while len(pending) < max(1, ahead):
            name = next(queued, None)
            if name is None:
                break
            pending.append(pool.submit(_timed_prepare, model, images_root, name))
        if not pending:
            return
        waited = time.perf_counter()
        prepared, seconds = pending.popleft().result()
        stats.waiting_seconds += time.perf_counter() - waited
        stats.preparing_seconds += seconds
        yield prepared


def _timed_prepare(model, images_root: str, name: str):
    started = time.perf_counter()
    try:
        prepared = model.prepare(read_image(images_root, name))
    except InvalidImageError as error:
        prepared = error
    return prepared, time.perf_counter() - started


def label_chunk(model, job: LabelJob, names: tuple[str, ...], prepared: list) -> dict[str, Any]:
    """Predict a chunk; prepared[i] is model.prepare of names[i], or its InvalidImageError (model:
    LangSAM, or the everything labeler when job.everything is set).

    Images of equal detector input size are batched together (job.batch_size at most), since the
    detector runs only those as one batch; results do not depend on the batching. Returns the chunk
    as committed: records in the order of names, and failures."""
    failed = [{"file_name": name, "error": str(image)} for name, image in zip(names, prepared) if isinstance(image, InvalidImageError)]
    readable = [(name, image) for name, image in zip(names, prepared) if not isinstance(image, InvalidImageError)]
    if job.everything is not None:  # one image at a time: the generator batches its own point prompts
        return {"records": [{"file_name": name, **model.label(image)} for name, image in readable], "failed": failed}
    by_size: dict[tuple, list] = {}
    for name, image in readable:
        by_size.setdefault(tuple(image.detector_input.pixel_values.shape), []).append((name, image))
    records = {}
    for group in by_size.values():
        for start in range(0, len(group), job.batch_size):
            batch = group[start : start + job.batch_size]
            results = model.predict(
                [image for _, image in batch], classes=list(job.classes), box_threshold=job.box_threshold,
                text_threshold=job.text_threshold, max_detections=job.max_detections,
            )
            records.update({name: {"file_name": name, **result.to_json()} for (name, _), result in zip(batch, results)})
    return {"records": [records[name] for name, _ in readable], "failed": failed}


def label_tiled_chunk(model, job: LabelJob, names: tuple[str, ...]) -> dict[str, Any]:
    """A chunk of rasters (local files) labelled tile by tile with lang_sam.tiling: each read window by
    window, never decoded whole, its objects taken as the tiles finish them and kept as COCO RLE
    (encoded from their crops: never an image-sized mask); records and failures as label_chunk's."""
    from lang_sam.results import detection_records
    from lang_sam.tiling import RasterReader, stream_tiles

    records, failed = [], []
    for name in names:
        try:
            with RasterReader(Path(job.images_root) / name, job.tiling["bands"]) as reader:
                detections = [record for chunk in stream_tiles(
                    model, reader, ", ".join(job.classes), job.tiling["tile"], job.tiling["overlap"],
                    box_threshold=job.box_threshold, text_threshold=job.text_threshold, max_detections=job.max_detections)
                    for record in detection_records(chunk)]
        except InvalidImageError as error:
            failed.append({"file_name": name, "error": str(error)})
            continue
        records.append({"file_name": name, "image": {"height": reader.height, "width": reader.width}, "detections": detections})
    return {"records": records, "failed": failed}


def labeling_model(job: LabelJob, settings: Settings):
    """The models a job runs: LangSAM for classes, or the everything labeler (prepare, label)."""
    if job.everything is not None:
        from lang_sam.everything import EverythingLabeler

        options = dict(job.everything)
        semantic = options.pop("semantic", None)
        return EverythingLabeler.from_settings(settings, options, semantic)
    from lang_sam.pipeline import LangSAM

    return LangSAM.from_settings(settings)


def run_local(job: LabelJob, settings: Settings, workers: int = 2, show_progress: bool = True) -> LabelStats:
    """Label the pending chunks on this machine; background threads decode and resize the images of
    the next chunk while the models label this one."""
    job.prepare(model_record(settings))
    pending = job.pending()
    chunks = job.chunks()
    stats = LabelStats()
    if not pending:
        return stats
    model = labeling_model(job, settings)
    names = [name for index in pending for name in chunks[index]]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, tqdm(
        total=len(job.files), initial=len(job.files) - len(names), desc="lang-sam label", unit="image", disable=not show_progress
    ) as progress:
        stream = None if job.tiling else prepared_ahead(pool, model, job.images_root, names, job.chunk_size, stats)
        for index in pending:
            chunk = (label_tiled_chunk(model, job, chunks[index]) if stream is None else
                     label_chunk(model, job, chunks[index], list(islice(stream, len(chunks[index])))))
            job.commit(index, chunk)
            stats.failed.extend(chunk["failed"])
            stats.images += len(chunks[index])
            progress.update(len(chunks[index]))
    stats.seconds = time.perf_counter() - started
    return stats


def read_records(job: LabelJob) -> tuple[list[ImageRecord], list]:
    """Every committed chunk's image records (file name, size, detections with COCO RLE masks) and
    the images that could not be read."""
    records, failed = [], []
    for index in range(len(job.chunks())):
        chunk = json.loads(job.chunk_path(index).read_text())
        records.extend(chunk["records"])
        failed.extend(chunk["failed"])
    return records, failed


def finish(job: LabelJob, yolo: bool = False, val_fraction: float = 0.1) -> dict[str, Any]:
    """Merge every chunk into annotations.json (COCO) and report.json; write the YOLO dataset if asked."""
    records, failed = read_records(job)
    dataset = coco_dataset(records, list(job.classes))
    write_atomically(job.out / "annotations.json", lambda file: file.write(json.dumps(dataset).encode()))
    report = {"images": len(job.files), "labelled": len(records), "detections": len(dataset["annotations"]), "unreadable": failed}
    write_atomically(job.out / "report.json", lambda file: file.write(json.dumps(report, indent=1).encode()))
    if yolo:
        write_yolo_dataset(job, records, val_fraction)
    return report


def check_yolo_output(images_root: str, out: Path, val_fraction: float) -> None:
    """Refuse, before any work, a YOLO dataset that could not be written."""
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidOptionError(f"--val-fraction must be at least 0 and below 1, got {val_fraction}.")
    if not Path(images_root).is_dir():
        raise InvalidOptionError(f"--yolo needs IMAGES to be a local folder (the dataset links to it), not {images_root}.")
    images_link = out / "images"
    if images_link.exists() and not images_link.is_symlink():
        raise InvalidOptionError(f"{images_link} exists and is not lang-sam's link to the images; move it, or choose another --out.")


def write_yolo_dataset(job: LabelJob, records: list[dict[str, Any]], val_fraction: float) -> None:
    """An Ultralytics YOLO segmentation dataset in OUT: labels/NAME.txt for each labelled image,
    images (a link to the images folder: Ultralytics finds each label by swapping images/ for labels/
    in the image's path), train.txt and val.txt listing ./images/NAME, and dataset.yaml."""
    labels_dir = job.out / "labels"
    for record in records:
        path = yolo_label_path(labels_dir, record["file_name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{line}\n" for line in yolo_segmentation_lines(record, list(job.classes)))
        write_atomically(path, lambda file: file.write(text.encode()))
    check_yolo_output(job.images_root, job.out, val_fraction)
    images_link = job.out / "images"
    temporary_link = job.out / ".images.link"
    temporary_link.unlink(missing_ok=True)
    temporary_link.symlink_to(Path(job.images_root).resolve(), target_is_directory=True)
    temporary_link.replace(images_link)
    for name, listed in zip(("train.txt", "val.txt"), train_val_split([r["file_name"] for r in records], val_fraction)):
        text = "".join(f"./images/{file_name}\n" for file_name in listed)
        write_atomically(job.out / name, lambda file: file.write(text.encode()))
    text = yolo_dataset_yaml(list(job.classes), val_fraction)
    write_atomically(job.out / "dataset.yaml", lambda file: file.write(text.encode()))
