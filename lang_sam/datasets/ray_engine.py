"""``lang-sam label --engine ray``: the same chunks, labelled by a pool of Ray actors.

Each actor loads the models once (one per GPU, or per N CPUs) and labels whole chunks exactly as
the local engine does, reading images from the folder or URI through pyarrow (s3://, gs://, ...)
and decoding and resizing the images of its next chunk in threads while the models label this one.
The driver commits each finished chunk, so resuming and the final merge are the local engine's.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from lang_sam.datasets.labeling import LabelJob, LabelStats, label_chunk, labeling_model, model_record, prepared_ahead
from lang_sam.settings import Settings


class ChunkLabeler:
    """A Ray actor: models loaded once, then one chunk per call. Ray runs two calls at once: one
    prepares its images while the other holds the models."""

    def __init__(self, job: LabelJob, settings: Settings, workers: int = 2) -> None:
        self.job = job
        self.model = labeling_model(job, settings)
        self.chunks = job.chunks()
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers))
        self.model_lock = threading.Lock()

    def __call__(self, batch: dict) -> dict:
        payloads = []
        for index in batch["index"]:
            names = self.chunks[int(index)]
            prepared = list(prepared_ahead(self.pool, self.model, self.job.images_root, names, len(names), LabelStats()))
            with self.model_lock:
                chunk = label_chunk(self.model, self.job, names, prepared)
            payloads.append(json.dumps(chunk))
        return {"index": batch["index"], "chunk": payloads}


def run_ray(
    job: LabelJob,
    settings: Settings,
    address: str | None = None,
    actors: int = 1,
    cpus_per_actor: float = 1,
    gpus_per_actor: float = 0,
    workers: int = 2,
    show_progress: bool = True,
) -> LabelStats:
    """Label the pending chunks with Ray Data; address None starts a local Ray instance. workers:
    threads per actor that decode and resize images."""
    import ray

    job.prepare(model_record(settings))
    pending = job.pending()
    stats = LabelStats()
    if not pending:
        return stats
    started = time.perf_counter()
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        chunks = job.chunks()
        dataset = ray.data.from_items([{"index": index} for index in pending], override_num_blocks=len(pending))
        labelled = dataset.map_batches(
            ChunkLabeler, fn_constructor_kwargs={"job": job, "settings": settings, "workers": workers}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True),
            num_cpus=cpus_per_actor, num_gpus=gpus_per_actor,
        )
        with tqdm(total=len(job.files), initial=len(job.files) - sum(len(chunks[i]) for i in pending),
                  desc="lang-sam label (ray)", unit="image", disable=not show_progress) as progress:
            for row in labelled.iter_rows():
                index, chunk = int(row["index"]), json.loads(row["chunk"])
                job.commit(index, chunk)
                stats.failed.extend(chunk["failed"])
                stats.images += len(chunks[index])
                progress.update(len(chunks[index]))
    finally:
        if address is None:
            ray.shutdown()
    stats.seconds = time.perf_counter() - started
    return stats
