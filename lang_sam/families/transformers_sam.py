"""SAM 2.1, SAM-HQ and EdgeTAM through transformers (Sam2Model, SamHQModel, EdgeTamModel) as one
promptable Segmenter; the
same prompt decoding (PromptDecoding) also runs SAM 3's tracker (Sam3TrackerModel, families/sam3.py).

The families differ only in the rows of FAMILIES: the model class, the frame prompts are scaled
into (SAM-HQ resizes the longest side to 1024 like SAM v1; SAM 2 and SAM 3 stretch the image to a
square) and how the image embedding is handed back to the model. Pre-processing, the model
and the mask post-processing are transformers' own, run unchanged: the adapter adds batching in
bounded chunks, image-pixel prompts and an immutable, cacheable embedding (the ImageEmbedding of
SAM v1, holding the model's tuple of tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lang_sam.errors import InvalidPromptError
from lang_sam.vocabulary import ImageEmbedding, MaskSet
from lang_sam.vocabulary.capabilities import NO_TEXT, NO_VIDEO, NOT_FINE_TUNED, NOT_ONNX
from lang_sam.families.transformers_base import TransformersAdapter


@dataclass(frozen=True)
class Family:
    """How one transformers SAM family is driven.

    model_class, processor_class: the transformers classes; square_frame: prompts are scaled to the processor's square
    size (SAM 2) rather than to the longest-side resize (SAM-HQ); feature_pyramid: the embedding
    goes back whole as image_embeddings (SAM 2's three levels) rather than as image_embeddings plus
    intermediate_embeddings (SAM-HQ's ViT states); description: for messages.
    """

    model_class: str
    processor_class: str
    square_frame: bool
    feature_pyramid: bool
    description: str


FAMILIES: dict[str, Family] = {
    "sam2": Family("Sam2Model", "Sam2Processor", square_frame=True, feature_pyramid=True, description="SAM 2.1"),
    # facebook/sam2.1-hiera-* are saved as the video model, which holds the image model's weights
    # under the same names: Sam2Model loads them (transformers warns that the types differ)
    "sam2_video": Family("Sam2Model", "Sam2Processor", square_frame=True, feature_pyramid=True, description="SAM 2.1"),
    "sam_hq": Family("SamHQModel", "SamHQProcessor", square_frame=False, feature_pyramid=False, description="SAM-HQ"),
    # EdgeTAM: SAM 2's prompt encoder and mask decoder over a RepViT backbone (timm's repvit_m1) and
    # SAM 2's own processor
    "edgetam": Family("EdgeTamModel", "Sam2Processor", square_frame=True, feature_pyramid=True, description="EdgeTAM"),
    # EdgeTAM's video model (yonigozlan/EdgeTAM-hf) holds the image model's weights as SAM 2.1's does
    "edgetam_video": Family("EdgeTamModel", "Sam2Processor", square_frame=True, feature_pyramid=True, description="EdgeTAM"),
}
SAM3_TRACKER = Family("Sam3TrackerModel", "Sam3TrackerProcessor", square_frame=True, feature_pyramid=True,
                      description="SAM 3's tracker")

DECODE_CHUNK = 16  # prompts per mask-decoder pass: memory grows with the masks returned, not the batch


@dataclass(frozen=True)
class TransformersPrepared:
    """The processor's pixels for one image: pixel_values (1, 3, S, S); original_size (H, W);
    input_size (h, w), the frame prompts are scaled into."""

    pixel_values: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]


class PromptDecoding:
    """Segmenter's preprocess, embed, decode and upscale_logits over a SAM-shaped transformers model
    (prompt_model, prompt_processor, driven as driver says), on device in dtype; dtype is the
    model's compute type (float32 or bfloat16); masks, scores and logits come back float32."""

    prompt_model: torch.nn.Module
    prompt_processor: object
    driver: Family
    device: torch.device
    dtype: torch.dtype

    @property
    def mask_input_size(self) -> tuple[int, int]:
        """(S, S) of the low-res logits decode takes as mask_input and returns (SAM 2.1, SAM-HQ: 256)."""
        side = 4 * int(self.prompt_model.prompt_encoder.image_embedding_size[0])
        return side, side

    def preprocess(self, image: np.ndarray) -> TransformersPrepared:
        """The processor's resize and normalisation of one (H, W, 3) uint8 RGB image."""
        inputs = self.prompt_processor.image_processor(images=image, return_tensors="pt")
        original_size = tuple(int(v) for v in inputs["original_sizes"][0])
        if self.driver.square_frame:
            size = self.prompt_processor.image_processor.size
            input_size = (int(size["height"]), int(size["width"]))
        else:
            input_size = tuple(int(v) for v in inputs["reshaped_input_sizes"][0])
        return TransformersPrepared(inputs["pixel_values"], original_size, input_size)

    @torch.inference_mode()
    def embed(self, prepared: TransformersPrepared) -> ImageEmbedding:
        outputs = self.prompt_model.get_image_embeddings(prepared.pixel_values.to(self.device, self.dtype))
        features = tuple(_flatten(outputs))
        return ImageEmbedding(features, prepared.original_size, prepared.input_size)

    @torch.inference_mode()
    def decode(self, embedding: ImageEmbedding, point_coords: torch.Tensor | None = None,
               point_labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
               mask_input: torch.Tensor | None = None, multimask_output: bool = False, upscale: bool = True) -> MaskSet:
        """Masks for B prompts in image pixels (see base.Segmenter.decode), DECODE_CHUNK at a time;
        with mask_input, one prompt per pass (the model takes one dense prompt per image)."""
        if mask_input is not None and tuple(mask_input.shape[-2:]) != self.mask_input_size:
            raise InvalidPromptError(f"{self.driver.description} takes mask_input of {self.mask_input_size} low-res logits "
                                     f"(its own results' low_res_logits), got {tuple(mask_input.shape[-2:])}.")
        batch = next((len(t) for t in (point_coords, boxes, mask_input) if t is not None), 0)
        step = 1 if mask_input is not None else DECODE_CHUNK
        parts = [
            self._decode_chunk(embedding, *(None if t is None else t[start:start + step]
                                            for t in (point_coords, point_labels, boxes, mask_input)), multimask_output, upscale)
            for start in range(0, batch, step)
        ]
        if not parts:
            height, width = embedding.original_size
            count = 3 if multimask_output else 1
            masks = torch.zeros(0, count, height, width, dtype=torch.bool) if upscale else None
            return MaskSet(masks, torch.zeros(0, count), torch.zeros(0, count, *self.mask_input_size))
        masks, iou, low_res = zip(*parts)
        return MaskSet(torch.cat(masks) if upscale else None, torch.cat(iou), torch.cat(low_res))

    @torch.inference_mode()
    def upscale_logits(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        """(B, M, 256, 256) low-res logits -> (B, M, H, W) float32 logits at image size, on this
        model's device: the processor's post-processing, not binarized (decode's masks are these > 0)."""
        return self._post_process(low_res_logits.to(self.device).float(), embedding, binarize=False)

    def _decode_chunk(self, embedding: ImageEmbedding, point_coords, point_labels, boxes, mask_input,
                      multimask_output: bool, upscale: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        scale = torch.tensor([embedding.input_size[1] / embedding.original_size[1],
                              embedding.input_size[0] / embedding.original_size[0]])
        prompts = {}
        if point_coords is not None:
            prompts["input_points"] = (point_coords.float().cpu() * scale)[None].to(self.device, self.dtype)
            prompts["input_labels"] = point_labels.cpu().long()[None].to(self.device)
        if boxes is not None:
            prompts["input_boxes"] = (boxes.float().cpu().reshape(-1, 2, 2) * scale).reshape(1, -1, 4).to(self.device, self.dtype)
        if mask_input is not None:
            prompts["input_masks"] = mask_input.reshape(1, 1, *mask_input.shape[-2:]).to(self.device, self.dtype)
        outputs = self.prompt_model(**self._embedding_arguments(embedding), **prompts, multimask_output=multimask_output)
        low_res = outputs.pred_masks[0].float()  # (B, M, 256, 256)
        masks = self._post_process(low_res, embedding).cpu() if upscale else None
        return masks, outputs.iou_scores[0].float().cpu(), low_res.cpu()

    def _embedding_arguments(self, embedding: ImageEmbedding) -> dict:
        features = [feature.to(self.device) for feature in embedding.features]
        if self.driver.feature_pyramid:
            return {"image_embeddings": features}
        return {"image_embeddings": features[0], "intermediate_embeddings": features[1:]}

    def _post_process(self, low_res: torch.Tensor, embedding: ImageEmbedding, binarize: bool = True) -> torch.Tensor:
        """(B, M, 256, 256) logits to (B, M, H, W) bool masks (float32 logits unless binarize) with
        the processor's own post-processing."""
        original = [list(embedding.original_size)]
        if self.driver.square_frame:
            return self.prompt_processor.post_process_masks([low_res], original, binarize=binarize)[0]
        return self.prompt_processor.post_process_masks([low_res], original, [list(embedding.input_size)], binarize=binarize)[0]


class TransformersSegmenter(PromptDecoding, TransformersAdapter):
    """A SAM 2.1, SAM-HQ or EdgeTAM model from a Hugging Face repo id or a save_pretrained folder,
    behind lang_sam.families.base.Segmenter. Stateless after loading: one instance serves many threads."""

    description = "SAM 2.1 / SAM-HQ / EdgeTAM"
    model_types = tuple(FAMILIES)
    text_via_detector = takes_clicks_and_boxes = segments_everything = True
    why_not = {"takes_text": NO_TEXT, "tracks_video": NO_VIDEO,
               "exports_onnx": NOT_ONNX, "fine_tunes": NOT_FINE_TUNED}

    @property
    def family(self) -> str:
        return self.model_type

    @property
    def driver(self) -> Family:
        return FAMILIES[self.model_type]

    @property
    def prompt_model(self) -> torch.nn.Module:
        return self.model

    @property
    def prompt_processor(self):
        return self.processor

    def _refusal(self, source: str, model_type: str) -> str:
        return (f"{source} holds a {model_type!r} model, not one of {', '.join(FAMILIES)} (SAM 2.1, SAM-HQ, EdgeTAM); "
                "a SAM v1 folder loads as sam_checkpoint of a SAM v1 name.")

    def _classes(self) -> tuple[str, str, str]:
        return self.driver.model_class, self.driver.processor_class, self.driver.description


def _flatten(outputs) -> list[torch.Tensor]:
    """get_image_embeddings' tensor, list or (tensor, list) as one list of tensors, in order."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [tensor for part in outputs for tensor in _flatten(part)]
