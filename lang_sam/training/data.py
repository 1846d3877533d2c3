"""Fine-tuning data: COCO instances with masks, checked before training starts; each image encoded
once by the frozen image encoder and its embedding cached on disk (reused by later runs on the same
encoder weights, and by every DDP process); box prompts jittered outward, optional points sampled
inside the mask; all randomness seeded by (seed, epoch, index), so a resumed run sees what an
uninterrupted one would have."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from lang_sam.datasets.annotations import annotation_problems
from lang_sam.datasets.coco import train_val_split
from lang_sam.datasets.evaluation import check_coco_dataset, load_ground_truth
from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.io.images import load_image
from lang_sam.results import decode_rle
from lang_sam.segmenter import processing
from lang_sam.segmenter.embedding_store import EmbeddingStore
from lang_sam.segmenter.sam import Sam, encode_image

STORE_NAME = "image_encoder"  # the store's model name; the folder already names the encoder's weights


@dataclass(frozen=True)
class Instance:
    """One object to learn: its image, box (x0, y0, x1, y1 pixels) and mask (COCO RLE at the image's size)."""

    file_name: str
    box: tuple[float, float, float, float]
    rle: dict[str, Any]


@dataclass(frozen=True)
class FinetuneDataset:
    """The checked instances, split by image into train and val (a split that does not change
    between runs), and the images' folder."""

    images: Path
    train: list[Instance]
    val: list[Instance]

    @property
    def file_names(self) -> list[str]:
        return sorted({instance.file_name for instance in self.train + self.val})


def read_finetune_dataset(coco: str | Path, images: str | Path, val_fraction: float = 0.1) -> FinetuneDataset:
    """Read and check a COCO instances file for fine-tuning; InvalidOptionError or InvalidImageError
    naming what is wrong, before any model runs: every annotation whose mask cannot be used (all of
    them, by id: see lang_sam.datasets.annotations), missing images, no instance to learn from, a
    split with no image to train or validate on. Crowd regions and masks of no pixel are left out
    (they are not objects to prompt)."""
    from pycocotools import mask as mask_utils

    coco, images = Path(coco), Path(images)
    if not 0 < val_fraction < 1:
        raise InvalidOptionError(f"--val-fraction must be between 0 and 1 (the share of images held out), got {val_fraction}.")
    try:
        dataset = json.loads(coco.read_text())
    except (OSError, ValueError) as error:
        raise InvalidOptionError(f"Cannot read the COCO file {coco}: {error}") from None
    check_coco_dataset(dataset, str(coco))
    _check_annotations(dataset, coco)
    ground_truth = load_ground_truth(dataset, str(coco))
    annotations = [a for a in ground_truth.dataset["annotations"] if not a.get("iscrowd")]
    by_image = {info["id"]: info for info in ground_truth.dataset["images"]}
    missing = sorted({by_image[a["image_id"]]["file_name"] for a in annotations
                      if not (images / by_image[a["image_id"]]["file_name"]).is_file()})
    if missing:
        raise InvalidImageError(f"{len(missing)} annotated images are not in {images}: {', '.join(missing[:5])}. "
                                "Give --images the folder that holds the COCO file's images.")
    instances = []
    for annotation in annotations:
        info = by_image[annotation["image_id"]]
        rle = ground_truth.annToRLE(annotation)
        area = float(mask_utils.area(rle))
        if area == 0:
            continue
        x, y, width, height = mask_utils.toBbox(rle).tolist()
        counts = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
        instances.append(Instance(info["file_name"], (x, y, x + width, y + height), {"size": rle["size"], "counts": counts}))
    if not instances:
        raise InvalidOptionError(f"{coco} holds no object with a mask to learn from (crowd regions are left out).")
    names = sorted({instance.file_name for instance in instances})
    if len(names) < 2:
        raise InvalidOptionError(f"{coco} has objects in {len(names)} image; fine-tuning needs at least 2 (one to validate on).")
    train_names, val_names = map(set, train_val_split(names, val_fraction))
    return FinetuneDataset(images, [i for i in instances if i.file_name in train_names], [i for i in instances if i.file_name in val_names])


def _check_annotations(dataset: dict[str, Any], coco: Path) -> None:
    """Refuse the dataset if any annotation's mask cannot be used, listing every one by id, problem by problem."""
    problems = annotation_problems(dataset)
    if problems:
        count = len({name for names in problems.values() for name in names})
        lines = [f"- annotations {problem}: {', '.join(names)}" for problem, names in problems.items()]
        raise InvalidOptionError(f"{coco}: {count} of {len(dataset['annotations'])} annotations cannot be used for "
                                 "fine-tuning; fix or remove them, then run again:\n" + "\n".join(lines))


def encoder_fingerprint(sam: Sam) -> str:
    """A hash of the image encoder's weights: embeddings cached under it are reused only by the same encoder."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sam.image_encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """$LANG_SAM_CACHE, else $XDG_CACHE_HOME/lang-sam, else ~/.cache/lang-sam."""
    if os.environ.get("LANG_SAM_CACHE"):
        return Path(os.environ["LANG_SAM_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lang-sam"


def file_key(path: Path) -> str:
    """The image's id in the embedding store: a hash of the file's bytes."""
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def jittered_box(box: tuple[float, float, float, float], jitter: float, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """box with each side moved outward by up to jitter pixels (uniformly), kept inside the image."""
    height, width = size
    x0, y0, x1, y1 = np.asarray(box) + rng.uniform(0, jitter, 4) * [-1, -1, 1, 1]
    return np.array([max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)], dtype=np.float32)


class TrainInstances(Dataset):
    """One training example per instance: the image's embedding (256, 64, 64), a jittered box (4,)
    and, with points_per_box, points (K, 2) inside the mask with labels (K,), in SAM's resized
    frame; the target: the mask in SAM's low-res frame (256, 256)."""

    def __init__(self, dataset: FinetuneDataset, store: EmbeddingStore, keys: dict[str, str], seed: int, epoch: int,
                 box_jitter: float, points_per_box: int) -> None:
        self.instances, self.store, self.keys = dataset.train, store, keys
        self.seed, self.epoch, self.box_jitter, self.points_per_box = seed, epoch, box_jitter, points_per_box

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        instance = self.instances[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        mask = decode_rle(instance.rle)
        size = mask.shape
        item = {
            "features": _embedding(self.store, self.keys[instance.file_name]).features[0],
            "boxes": torch.as_tensor(processing.transform_boxes(jittered_box(instance.box, self.box_jitter, size, rng), size)[0],
                                     dtype=torch.float32),
            "targets": processing.mask_in_low_res_frame(mask).float(),
        }
        if self.points_per_box:
            rows, columns = np.nonzero(mask)
            chosen = rng.integers(0, len(rows), self.points_per_box)
            points = np.stack([columns[chosen] + 0.5, rows[chosen] + 0.5], axis=1)
            item["points"] = torch.as_tensor(processing.transform_coords(points, size), dtype=torch.float32)
            item["point_labels"] = torch.ones(self.points_per_box, dtype=torch.int64)
        return item


class ValImages(Dataset):
    """One validation example per image: its embedding, its objects' exact boxes (M, 4) in SAM's
    resized frame and their masks (M, H, W) at the image's size."""

    def __init__(self, dataset: FinetuneDataset, store: EmbeddingStore, keys: dict[str, str]) -> None:
        self.by_image: dict[str, list[Instance]] = {}
        for instance in dataset.val:
            self.by_image.setdefault(instance.file_name, []).append(instance)
        self.names, self.store, self.keys = sorted(self.by_image), store, keys

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        instances = self.by_image[self.names[index]]
        embedding = _embedding(self.store, self.keys[self.names[index]])
        masks = np.stack([decode_rle(instance.rle) for instance in instances])
        boxes = processing.transform_boxes(np.array([instance.box for instance in instances], dtype=np.float32), masks.shape[1:])
        return {"features": embedding.features, "boxes": torch.as_tensor(boxes, dtype=torch.float32),
                "masks": torch.from_numpy(masks), "input_size": embedding.input_size, "original_size": embedding.original_size}


def _embedding(store: EmbeddingStore, key: str):
    embedding = store.get(STORE_NAME, key)
    if embedding is None:
        raise RuntimeError(f"The embedding of image {key} left the cache {store.folder} during training; run again.")
    return embedding


class FinetuneData(L.LightningDataModule):
    """Fine-tuning batches; prepare_data (one process per machine) encodes the images not yet cached
    with the frozen image encoder, on the device training runs on."""

    def __init__(self, dataset: FinetuneDataset, sam: Sam, cache_dir: Path, batch_size: int = 8, box_jitter: float = 20.0,
                 points_per_box: int = 0, seed: int = 0, show_progress: bool = True) -> None:
        super().__init__()
        self.dataset, self.sam, self.batch_size = dataset, sam, batch_size
        self.box_jitter, self.points_per_box, self.seed, self.show_progress = box_jitter, points_per_box, seed, show_progress
        self.store = EmbeddingStore(Path(cache_dir) / encoder_fingerprint(sam), capacity=None)
        self.keys = {name: file_key(dataset.images / name) for name in dataset.file_names}

    def prepare_data(self) -> None:
        from tqdm.auto import tqdm

        missing = [name for name in self.dataset.file_names if not self.store.touch(STORE_NAME, self.keys[name])]
        if not missing:
            return
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        encoder_device = self.sam.image_encoder.pos_embed.device
        self.sam.image_encoder.to(device)
        try:
            for name in tqdm(missing, desc="Encoding images (once; cached)", disable=not self.show_progress):
                image = load_image(self.dataset.images / name)
                resized = torch.from_numpy(processing.resize_image(image)).permute(2, 0, 1)[None]
                self.store.put(STORE_NAME, self.keys[name], encode_image(self.sam, resized, image.shape[:2]))
        finally:
            self.sam.image_encoder.to(encoder_device)

    def train_dataloader(self) -> DataLoader:
        """Built again every epoch (the trainer reloads it), shuffled and jittered by (seed, epoch)."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        instances = TrainInstances(self.dataset, self.store, self.keys, self.seed, epoch, self.box_jitter, self.points_per_box)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return DataLoader(instances, batch_size=self.batch_size, sampler=RandomSampler(instances, generator=generator))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ValImages(self.dataset, self.store, self.keys), batch_size=None)
