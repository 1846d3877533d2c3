"""LangSAM: text prompt -> detector boxes -> one batch of box prompts to a segmenter -> masks; or,
with a text segmenter (SAM 3), text prompt -> masks with no detector. A composition of a detector,
a segmenter and an embedding cache; lang-segment-anything's argument names are mapped in compat.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lang_sam.detector import DEFAULT_DETECTOR
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.families.base import Detector
from lang_sam.io.images import ImageInput, load_image
from lang_sam.pipeline import compat
from lang_sam.pipeline.models import LazyDetector, PipelineModels
from lang_sam.pipeline.prepared import PreparedImage, prepare_for_segmenter
from lang_sam.pipeline.prompts import check_user_prompts, name_prompts
from lang_sam.pipeline.segment import segment_objects, segment_text
from lang_sam.results import LangSAMResult
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Detections, Exemplars, Thresholds

if TYPE_CHECKING:
    from lang_sam.settings import Settings


class LangSAM(PipelineModels):
    """Text-prompted segmentation: ``LangSAM().predict(image, "car, wheel")``.

    sam_type: "vit_h", "vit_l", "vit_b", a SAM 2.1 / SAM-HQ name ("sam2.1-hiera-tiny",
    "sam-hq-vit-base", ...), "sam3" (text concepts: no detector runs) or the name of a NAME.pth or
    transformers folder NAME in $LANG_SAM_CHECKPOINTS (see lang_sam.registry, ``lang-sam models``);
    sam_checkpoint: Meta's .pth or .safetensors file, a transformers folder (its config.json's
    model_type says the family: sam, sam2, sam_hq, sam3) or a Hugging Face repo id, else found or
    downloaded (lang_sam.io.weights).
    Without either, vit_h; with only a checkpoint, whatever SAM it holds (with both, a name that is
    not an official size only names it); checkpoint_dir: where names are looked up (default
    $LANG_SAM_CHECKPOINTS). detector: a registry name (grounding-dino-*, mm-grounding-dino-*, owlv2-*),
    a repo id or folder of any of those families (config.json's model_type says which), an IDEA
    original .pth, or a loaded detector to share between pipelines; device: "cpu", "cuda", "mps" or None for the
    best available; dtype: float32 or bfloat16. The embeddings of the last embedding_cache_size
    images are kept (SAM v1: 4 MB each), so a new prompt on any of them skips the image encoder.

    One instance may serve many threads: predictions keep no "current image"; each one decodes
    against the embedding of its own image, from the model it started on.
    """

    @compat.old_init_names
    def __init__(
        self,
        sam_type: str | None = None,
        sam_checkpoint: str | Path | None = None,
        detector: str | Path | Detector = DEFAULT_DETECTOR,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        embedding_cache_size: int = 4,
        *,
        checkpoint_dir: str | Path | None = None,
        gdino_processor_ckpt_path: str | Path | None = None,
    ) -> None:
        self.embedding_cache_size = max(1, embedding_cache_size)
        self.checkpoint_dir = checkpoint_dir
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if not isinstance(detector, (str, Path)) and (detector.device, detector.dtype) != (self.device, self.dtype):
            raise InvalidOptionError(
                f"The detector runs on {detector.device} in {detector.dtype}, but this LangSAM uses "
                f"{self.device} in {self.dtype}; load both with the same device and dtype."
            )
        self._detector = LazyDetector(detector, gdino_processor_ckpt_path, self.device, self.dtype)
        self.set_sam(sam_type, sam_checkpoint)  # SAM errors (size, weights) come before the detector loads

    @classmethod
    def from_settings(cls, settings: Settings) -> LangSAM:
        """The pipeline the settings name (as every lang-sam command builds it)."""
        return cls(settings.sam_type, settings.sam_checkpoint, settings.detector, device=settings.device,
                   dtype=settings.dtype, checkpoint_dir=settings.checkpoint_dir)

    def track(self, video, prompt: str | None = None, video_segmenter=None, *, points=None, point_labels=None,
              label="object", **options):
        """Track what prompt names through a video, one lang_sam.families.base.TrackedFrame per frame
        read, with this pipeline's detector and a SAM 2.1 video model, or SAM 3 video alone, with no
        detector loaded; or, instead of a prompt, follow the objects clicked on the first frame read
        (points and point_labels as predict takes them, or a list of those, one per object), with the
        video model alone. video_segmenter and options: those of lang_sam.video.track_video."""
        from lang_sam.video import track_video

        return track_video(video, prompt, lambda: self.detector, video_segmenter, self.device, self.dtype,
                           points=points, point_labels=point_labels, label=label, **options)

    def embed(self, image: ImageInput | PreparedImage) -> Any:
        """The segmenter's embedding of one image, kept in the embedding cache under its image_key,
        so that predict on the same image skips the image encoder; decode answers clicks against it."""
        loaded = self._promptable("embed")
        return self._embedding(loaded, image if isinstance(image, PreparedImage) else prepare_for_segmenter(loaded.model, load_image(image)))

    def decode(self, embedding: Any, points=None, point_labels=None, boxes=None, mask_input=None,
               multimask_output: bool | None = None, label: str = "object") -> LangSAMResult:
        """Your clicks and boxes (as predict takes them) against an embedding that embed made with
        this SAM: no image, no detector, no encoder; the result predict gives for that image and
        those prompts without a text prompt. A client that clicks many times encodes once."""
        if all(value is None for value in (points, boxes, mask_input)):
            raise InvalidPromptError("decode needs points (with point_labels) or boxes; a text prompt needs predict(image, prompt).")
        loaded = self._promptable("decode")
        _check_multimask(multimask_output)
        user = check_user_prompts(points, point_labels, boxes, mask_input, embedding.original_size)
        objects = name_prompts(None, user, label)
        return LangSAMResult.of(segment_objects(loaded.model, lambda: embedding, objects, embedding.original_size, multimask_output))

    @compat.old_predict_names
    def predict(
        self,
        images: ImageInput | PreparedImage | list[ImageInput | PreparedImage] | None = None,
        prompts: str | list[str] | None = None,
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
        max_detections: int | None = None,
        nms_iou_threshold: float | None = None,
        multimask_output: bool | None = None,
        *,
        points=None,
        point_labels=None,
        boxes=None,
        mask_input=None,
        label: str = "object",
        classes: Sequence[str] | None = None,
        exemplars=None,
        negative_exemplars=None,
    ) -> LangSAMResult | list[LangSAMResult]:
        """Detect the prompt's classes, then segment every box in one batch of SAM box prompts.

        images: one image (path, PIL image, RGB array, or what prepare made of one) or a list;
        prompts: one for all images or one per image; or classes: a list of class names for all
        images, taken as they are (a name may hold a period or a comma). Returns one LangSAMResult
        per image (a single one for a single image). max_detections keeps only the highest-scoring boxes;
        nms_iou_threshold, when set, drops boxes of a class that overlap a better one of that class
        more than this. multimask_output: SAM proposes three masks per prompt and the one with the
        highest predicted IoU is kept (SAM's own rule for ambiguous prompts); False takes SAM's
        single-mask output, the one SAM's authors advise for a box; None (the default) is False,
        except for a single click with no box, where SAM's demo takes the best of three.

        Your own prompts, for one image, with or without a text prompt, in image pixels: boxes (M, 4)
        xyxy, each an object; points (N, 2) xy with point_labels (N,) (1 object, 0 background;
        default all 1), together one object: the detected or given object whose box holds the
        first object point (the smallest such box) is refined with the points, or, if none holds
        it, the points are a new object; mask_input (256, 256) a previous result's low_res_logits
        row for that object. Objects you give are named label and score 1.0.
        With SAM 3, exemplars (M, 4) and negative_exemplars (K, 4), pixel xyxy boxes around examples
        and counter-examples of what the prompt's one class names (or, with no prompt, of a concept
        named label): every instance of it is found, not only the boxed ones.
        lang-segment-anything's keywords work too: v1's image_pil / text_prompt, v0.2.x's
        images_pil / texts_prompt.
        """
        examples = Exemplars.of(exemplars, negative_exemplars)  # checked before any model runs
        given_prompts = any(value is not None for value in (points, boxes, mask_input))
        if images is None or (prompts is None and classes is None and not given_prompts and examples is None):
            raise InvalidOptionError("predict needs images and prompts: model.predict(image, \"car, wheel\"), or points or boxes.")
        single = not isinstance(images, list)
        if (given_prompts or examples is not None) and not single:
            raise InvalidPromptError("points, boxes, mask_input and exemplars are for one image: call predict once per image.")
        if classes is not None:
            prompts = compat.class_lists(classes, 1 if single else len(images))
        detect = not (prompts is None or (isinstance(prompts, str) and not prompts.strip() and (given_prompts or examples is not None)))
        loaded = self._sam  # one model for the whole call, whatever set_sam does meanwhile
        thresholds = Thresholds(box_threshold, text_threshold, nms_iou_threshold, max_detections)  # checked before any model runs
        _check_multimask(multimask_output)
        if loaded.segments_text and not given_prompts:
            arrays = [load_image(image) for image in ([images] if single else images)]
            embeds = [lambda array=array: self._embedding(loaded, prepare_for_segmenter(loaded.model, array)) for array in arrays]
            found = segment_text(loaded.model, arrays, prompts if detect else None, thresholds, examples, label, embeds)
            results = [LangSAMResult.of(objects) for objects in found]
            return results[0] if single else results
        if loaded.segments_text:  # your clicks and boxes, on SAM 3's tracker
            self._promptable("points, boxes and mask_input")
            if detect or examples is not None:
                raise InvalidPromptError(f"{loaded.model.name} takes a text prompt (with exemplars) or your points and boxes, "
                                         "one or the other in one call: call predict once for each.")
        elif examples is not None:
            raise Exemplars.refused_by(loaded.model.name)
        prepared = [image if isinstance(image, PreparedImage) else
                    self._prepare(loaded, image) if detect else prepare_for_segmenter(loaded.model, load_image(image))  # no detector pixels
                    for image in ([images] if single else images)]
        user = check_user_prompts(points, point_labels, boxes, mask_input, prepared[0].original_size) if given_prompts else None
        found = self._detect(prepared, prompts, thresholds) if detect else [None]
        results = [
            LangSAMResult.of(segment_objects(loaded.model, lambda image=image: self._embedding(loaded, image),
                                             name_prompts(detections, user, label), image.original_size, multimask_output))
            for image, detections in zip(prepared, found)
        ]
        return results[0] if single else results

    def _detect(self, prepared: list[PreparedImage], prompts, thresholds: Thresholds) -> list[Detections]:
        """The detector's best max_detections boxes of each image's classes."""
        found = self.detector.detect([image.detector_input for image in prepared], prompts, box_threshold=thresholds.box,
                                     text_threshold=thresholds.text, nms_iou_threshold=thresholds.nms_iou)
        return [boxes[:thresholds.max_detections] for boxes in found]


def _check_multimask(multimask_output) -> None:
    if multimask_output is not None and not isinstance(multimask_output, (bool, np.bool_)):
        raise InvalidOptionError(f"multimask_output must be True, False or None, got {multimask_output!r}.")
