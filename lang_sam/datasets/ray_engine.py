"""``lang-sam label --engine ray``: the same chunks, labelled by a pool of Ray actors.

Each actor loads the models once (one per GPU, or per N CPUs) and labels whole chunks exactly as
the local engine does, reading images from the folder or URI through pyarrow (s3://, gs://, ...).
The driver commits each finished chunk, so resuming and the final merge are the local engine's.
"""

from __future__ import annotations

import json
import time

from tqdm.auto import tqdm

from lang_sam.datasets.labeling import LabelJob, LabelStats, ModelSpec, decode_or_error, label_chunk


class ChunkLabeler:
    """A Ray actor: models loaded once, then one chunk per call."""

    def __init__(self, job: LabelJob, model_spec: ModelSpec) -> None:
        self.job = job
        self.model = model_spec.build()
        self.chunks = job.chunks()

    def __call__(self, batch: dict) -> dict:
        payloads = []
        for index in batch["index"]:
            names = self.chunks[int(index)]
            decoded = [decode_or_error(self.job.images_root, name) for name in names]
            payloads.append(json.dumps(label_chunk(self.model, self.job, names, decoded)))
        return {"index": batch["index"], "chunk": payloads}


def run_ray(
    job: LabelJob,
    model_spec: ModelSpec,
    address: str | None = None,
    actors: int = 1,
    cpus_per_actor: float = 1,
    gpus_per_actor: float = 0,
    show_progress: bool = True,
) -> LabelStats:
    """Label the pending chunks with Ray Data; address None starts a local Ray instance."""
    import ray

    job.prepare()
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
            ChunkLabeler, fn_constructor_kwargs={"job": job, "model_spec": model_spec}, batch_size=1,
            concurrency=actors, num_cpus=cpus_per_actor, num_gpus=gpus_per_actor,
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
