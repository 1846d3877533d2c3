"""SAM 2.1 video, EdgeTAM video and SAM 3's tracker through transformers (Sam2VideoModel,
EdgeTamVideoModel, Sam3TrackerVideoModel and their processors) behind base.VideoSegmenter. EdgeTAM
is SAM 2 with a RepViT backbone and a spatial perceiver compressing each memory, SAM 3's tracker SAM
2's memory over SAM 3's backbone; their inference sessions and streaming forwards are SAM 2.1
video's (transformers' classes are copies), so one stream runs all three: only the classes loaded
and the messages differ (VIDEO_MODELS). Objects are prompted with boxes (add_objects) or clicks
(add_clicks).

Frames are streamed into one inference session, one at a time. transformers' session keeps every
frame's pixels and outputs; the model looks back at only its conditioning frames (where an object
was prompted), the last num_maskmem frames' memories and max_object_pointers_in_encoder frames'
object pointers, so after each frame the stream drops everything older than that: memory stays
bounded however long the video. Objects that end are removed from the session (transformers 5 has
no call for it in SAM 2's session; remove_objects rebuilds its per-object tables as SAM 3's
session.remove_object does).

Box masks without memory (segment_boxes) run in a second, one-frame session that shares the
current frame's image features, so the image encoder runs once per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lang_sam.errors import InvalidPromptError
from lang_sam.vocabulary.capabilities import NOT_FINE_TUNED, NOT_ONNX
from lang_sam.vocabulary.prompts import ObjectPrompt
from lang_sam.families.transformers_base import TransformersAdapter

VIDEO_MODEL_TYPE = "sam2_video"


@dataclass(frozen=True)
class VideoModel:
    """One family the adapter runs: its transformers model and processor classes, its name in
    messages, its image-only model_type (refused, saying why) and a checkpoint to suggest."""

    model_class: str
    processor_class: str
    title: str
    image_type: str
    example: str


# config.json's model_type -> the family it is. facebook/sam3 is saved as SAM 3 video (model_type
# sam3_video, the concept tracker); transformers loads its tracker alone as Sam3TrackerVideoModel,
# which follows clicked objects as SAM 2.1 video does (the same session and streaming forward).
VIDEO_MODELS: dict[str, VideoModel] = {
    VIDEO_MODEL_TYPE: VideoModel("Sam2VideoModel", "Sam2VideoProcessor", "SAM 2.1", "sam2", "facebook/sam2.1-hiera-tiny"),
    "edgetam_video": VideoModel("EdgeTamVideoModel", "Sam2VideoProcessor", "EdgeTAM", "edgetam",
                                "yonigozlan/EdgeTAM-hf (lang-sam name: edgetam)"),
    "sam3_video": VideoModel("Sam3TrackerVideoModel", "Sam3TrackerVideoProcessor", "SAM 3 tracker", "sam3", "facebook/sam3"),
}


class Sam2VideoSegmenter(TransformersAdapter):
    """SAM 2.1 video, EdgeTAM video or SAM 3's tracker from a Hugging Face repo id
    (facebook/sam2.1-hiera-*, yonigozlan/EdgeTAM-hf, facebook/sam3) or a save_pretrained folder of a
    Sam2VideoModel, EdgeTamVideoModel or Sam3VideoModel and its processor (VIDEO_MODELS).
    Stateless: each start() is one video."""

    description = "SAM 2.1 / EdgeTAM / SAM 3 tracker video"
    model_types = tuple(VIDEO_MODELS)
    tracks_video = True
    why_not = {mode: "a video model: its repo's image model runs the image modes" for mode in
               ("text_via_detector", "takes_text", "takes_clicks_and_boxes", "segments_everything")}
    why_not |= {"exports_onnx": NOT_ONNX, "fine_tunes": NOT_FINE_TUNED}

    @property
    def family(self) -> str:
        return self.model_type

    def _classes(self) -> tuple[str, str, str]:
        video_model = VIDEO_MODELS[self.model_type]
        return video_model.model_class, video_model.processor_class, f"{video_model.title} video"

    def _refusal(self, source: str, model_type: str) -> str:
        video_model = next((row for row in VIDEO_MODELS.values() if row.image_type == model_type), VIDEO_MODELS[VIDEO_MODEL_TYPE])
        hint = (f" It is an image-only {video_model.title} (model_type {model_type!r}): it has no memory encoder or "
                "memory attention to track with." if model_type == video_model.image_type else "")
        return (f"{source} holds a {model_type!r} model, not a video model lang-sam tracks with (model_type "
                f"{', '.join(map(repr, VIDEO_MODELS))}).{hint} Give a video checkpoint of {video_model.title}, e.g. "
                f"{video_model.example}.")

    def start(self, size: tuple[int, int]) -> Sam2VideoStream:
        return Sam2VideoStream(self, size)


class Sam2VideoStream:
    """One video through a Sam2VideoSegmenter (see base.VideoStream); not shared between threads."""

    def __init__(self, segmenter: Sam2VideoSegmenter, size: tuple[int, int]) -> None:
        self.model, self.processor = segmenter.model, segmenter.processor
        self.device, self.dtype = segmenter.device, segmenter.dtype
        self.size = size
        self.session = self._new_session()
        config = self.model.config
        self.history = max(config.num_maskmem, config.max_object_pointers_in_encoder)  # frames the model looks back at
        self.index = -1
        self.pixels: torch.Tensor | None = None

    def _new_session(self):
        session = self.processor.init_video_session(inference_device=self.device, dtype=self.dtype)
        session.video_height, session.video_width = self.size
        return session

    @torch.inference_mode()
    def add_frame(self, image: np.ndarray) -> dict[int, np.ndarray]:
        self.index += 1
        self.pixels = self.processor(images=image, return_tensors="pt")["pixel_values"][0]
        self._forget_before(self.index)
        if not self.session.obj_ids:
            self.session.add_new_frame(self.pixels, self.index)
            return {}
        return self._run()

    @torch.inference_mode()
    def segment_boxes(self, boxes: np.ndarray) -> np.ndarray:
        height, width = self.size
        if not len(boxes):
            return np.zeros((0, height, width), bool)
        single = self._new_session()
        single.add_new_frame(self.pixels, 0)
        single.cache.cache_vision_features(0, self._features())
        ids = list(range(len(boxes)))
        self.processor.add_inputs_to_inference_session(single, frame_idx=0, obj_ids=list(ids),  # a copy: the session empties it
                                                       input_boxes=[np.asarray(boxes, np.float32).tolist()])
        output = self.model(inference_session=single, frame_idx=0, run_mem_encoder=False)
        masks = self._masks(output.pred_masks)
        return np.stack([masks[output.object_ids.index(i)] for i in ids])

    @torch.inference_mode()
    def add_objects(self, boxes: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        ids = list(boxes)
        self.processor.add_inputs_to_inference_session(
            self.session, frame_idx=self.index, obj_ids=list(ids),  # a copy: the session empties it
            input_boxes=[[np.asarray(boxes[i], np.float32).tolist() for i in ids]])
        masks = self._run()  # objects already tracked run again on this frame: the same masks, computed twice
        return {i: masks[i] for i in ids}

    @torch.inference_mode()
    def add_clicks(self, clicks: dict[int, ObjectPrompt]) -> dict[int, np.ndarray]:
        """Prompt objects with clicks (each prompt's points and labels; pixel xy) on the current frame;
        their (H, W) bool masks on it, by id. Objects with different numbers of clicks are padded as
        the processor pads them."""
        ids = list(clicks)
        if any(clicks[i].points is None or clicks[i].box is not None or clicks[i].mask_logits is not None for i in ids):
            raise InvalidPromptError("add_clicks takes points with labels alone for each object; give boxes to add_objects.")
        self.processor.add_inputs_to_inference_session(
            self.session, frame_idx=self.index, obj_ids=list(ids),  # a copy: the session empties it
            input_points=[[clicks[i].points.tolist() for i in ids]], input_labels=[[clicks[i].labels.tolist() for i in ids]])
        masks = self._run()
        return {i: masks[i] for i in ids}

    def remove_objects(self, ids: Sequence[int]) -> None:
        session = self.session
        gone = {session._obj_id_to_idx[i] for i in ids if i in session._obj_id_to_idx}
        if not gone:
            return
        kept_ids = [i for i in session.obj_ids if session._obj_id_to_idx[i] not in gone]
        new_index = {session._obj_id_to_idx[i]: position for position, i in enumerate(kept_ids)}
        session._obj_id_to_idx.clear()
        session._obj_id_to_idx.update((i, position) for position, i in enumerate(kept_ids))
        session._obj_idx_to_id.clear()
        session._obj_idx_to_id.update(enumerate(kept_ids))
        session.obj_ids = kept_ids
        session.obj_with_new_inputs = [i for i in session.obj_with_new_inputs if i in kept_ids]
        for table in (session.point_inputs_per_obj, session.mask_inputs_per_obj, session.output_dict_per_obj,
                      session.frames_tracked_per_obj):
            moved = {new_index[old]: value for old, value in table.items() if old in new_index}
            table.clear()
            table.update(moved)

    def _run(self) -> dict[int, np.ndarray]:
        """Every object's mask on the current frame (the model's streaming forward)."""
        output = self.model(inference_session=self.session, frame=self.pixels, frame_idx=self.index)
        return dict(zip(output.object_ids, self._masks(output.pred_masks)))

    def _features(self) -> dict:
        """The current frame's image features, computed once and kept in the main session's cache."""
        cached = self.session.cache.get_vision_features(self.index)
        if cached is None:
            outputs = self.model.get_image_features(self.pixels.to(self.device, self.dtype)[None], return_dict=True)
            cached = {"vision_feats": outputs.fpn_hidden_states, "vision_pos_embeds": outputs.fpn_position_encoding}
            self.session.cache.cache_vision_features(self.index, cached)
        return cached

    def _masks(self, low_res: torch.Tensor) -> np.ndarray:
        """(N, 1, h, w) mask logits to (N, H, W) bool at the frame's size."""
        masks = self.processor.post_process_masks([low_res.float().cpu()], original_sizes=[list(self.size)], binarize=True)[0]
        return masks[:, 0].numpy()

    def _forget_before(self, index: int) -> None:
        """Drop the pixels, inputs and tracked outputs the model no longer reads at frame index and after."""
        session = self.session
        if session.processed_frames:
            drop_frames_before(session.processed_frames, index)
        oldest = index - self.history + 1  # frames index - 1 back to index - (history - 1) are read
        for obj_idx, outputs in session.output_dict_per_obj.items():
            drop_frames_before(outputs["non_cond_frame_outputs"], oldest)
            for table in (session.frames_tracked_per_obj[obj_idx], session.point_inputs_per_obj[obj_idx],
                          session.mask_inputs_per_obj[obj_idx]):
                drop_frames_before(table, index)


def drop_frames_before(table: dict, index: int) -> None:
    """Remove the frame keys below index from a session's per-frame table."""
    for frame in [frame for frame in table if frame < index]:
        del table[frame]
