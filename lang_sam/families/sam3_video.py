"""SAM 3 video (transformers' Sam3VideoModel, Sam3VideoProcessor) behind base.ConceptTracker: each
class name is one text prompt of one streaming session, and SAM 3 detects every instance on every
frame, tracks them with its own SAM 2-style tracker and keeps their ids; no detector runs in front.

The session is transformers' own streaming one (init_video_session, add_text_prompt, then a
forward and postprocess_outputs per frame, as its documentation streams). Left alone it keeps
every frame's pixels, every object's tracker outputs on every frame and per-frame metadata, so
memory (and, through a deepcopy of that metadata each frame, time) grows with the video. After
each frame the stream drops what the model reads no more:

- pixels of frames before the current one (processed_frames keeps only the newest, its len()
  still the number of frames seen, which the tracker reads as the video's length);
- per-frame scores, suppressions, inputs and tracked-frame marks of frames before the current
  one (read only on their own frame);
- tracker outputs of unprompted frames older than the last max(num_maskmem,
  max_object_pointers_in_encoder) frames (the memories and object pointers it looks back at);
- of each conditioning frame (where an object started or was reconditioned) that is neither
  among the max_cond_frame_num latest, which memory attention reads, nor within num_maskmem
  frames, everything but its object pointer: transformers attends to the pointers of all of an
  object's conditioning frames, so one (C,) vector per object per conditioning frame stays;
- frame indices kept for the offline hotstart heuristics, which streaming never reads.

What the model reads is unchanged, so the masks equal the untrimmed session's
(tests/video/test_sam3_video.py checks it). Streaming SAM 3 itself ends no object (its hotstart
removal needs future frames), so every object it ever found would stay in the session, costing
memory and time on every frame after: here an object not reported for max_lost frames in a row
(its score at or below the threshold, or its mask empty) ends, and is taken out of the session the
way SAM 3's own removal takes objects out, with its per-id bookkeeping; its id is not given
again. What still grows is one object pointer per conditioning frame of each live object (above).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from lang_sam.errors import InvalidPromptError
from lang_sam.families.base import TrackedFrame, TrackedObject
from lang_sam.vocabulary.capabilities import NOT_FINE_TUNED, NOT_ONNX
from lang_sam.families.sam2_video import drop_frames_before
from lang_sam.families.sam3 import DEFAULT_SAM3, Sam3Adapter, checked_classes
from lang_sam.geometry import mask_to_box
from lang_sam.vocabulary import check_max_lost, check_threshold

VIDEO_MODEL_TYPE = "sam3_video"


class Sam3VideoTracker(Sam3Adapter):
    """SAM 3 video from a Hugging Face repo id (facebook/sam3 is gated: accept its licence first)
    or a folder saved with save_pretrained (Sam3VideoModel and Sam3VideoProcessor). Stateless
    after loading: each track_concepts call is one session."""

    family = VIDEO_MODEL_TYPE
    description = "SAM 3 video"
    model_types = (VIDEO_MODEL_TYPE,)
    model_class, processor_class = "Sam3VideoModel", "Sam3VideoProcessor"
    hints = {"sam3": " it is SAM 3's image model alone (Sam3Model), with no tracker;"}
    takes_text = tracks_video = True
    why_not = {mode: "a video model: its repo's image model runs the image modes" for mode in
               ("text_via_detector", "takes_clicks_and_boxes", "segments_everything")}
    why_not |= {"exports_onnx": NOT_ONNX, "fine_tunes": NOT_FINE_TUNED}

    def __init__(self, model: str | Path = DEFAULT_SAM3, device: str | torch.device | None = None,
                 dtype: torch.dtype | str | None = None, name: str | None = None) -> None:
        super().__init__(model, device, dtype, name)
        self.max_text_tokens = self.model.config.detector_config.text_config.max_position_embeddings

    def track_concepts(self, frames: Iterable[tuple[int, float, np.ndarray]], classes: Sequence[str],
                       score_threshold: float = 0.5, max_lost: int = 30) -> Iterator[TrackedFrame]:
        """One TrackedFrame per (index, time, (H, W, 3) uint8 RGB image) of frames, with SAM 3's
        objects scoring above score_threshold (those below are still tracked, only not reported);
        ids as SAM 3 gives them, labels exactly the given class names; an object unreported for
        max_lost frames in a row ends. Checks run before any frame."""
        check_threshold("score_threshold", score_threshold)
        check_max_lost(max_lost)
        names = checked_classes(classes, self.processor.tokenizer, self.max_text_tokens)
        if not names:
            raise InvalidPromptError('Name what to track, e.g. "car, person".')
        return self._track(frames, names, score_threshold, max_lost)

    def stream(self, classes: Sequence[str]) -> Sam3ConceptStream:
        """A streaming session of the (checked) classes, one frame at a time."""
        return Sam3ConceptStream(self, list(classes))

    def _track(self, frames: Iterable[tuple[int, float, np.ndarray]], classes: list[str],
               score_threshold: float, max_lost: int) -> Iterator[TrackedFrame]:
        stream = self.stream(classes)
        unreported: dict[int, int] = {}  # live object id -> frames in a row it has not been reported
        for index, time, image in frames:
            found = stream.add_frame(image)
            label_of = {obj_id: label for label, ids in found["prompt_to_obj_ids"].items() for obj_id in ids}
            objects = tuple(
                TrackedObject(obj_id, label_of[obj_id], score, mask_to_box(mask), mask)
                for obj_id, score, mask in zip(found["object_ids"].tolist(), found["scores"].tolist(),
                                               found["masks"].cpu().numpy())
                if score > score_threshold and mask.any()  # the non-overlap step can empty a mask
            )
            reported = {item.id for item in objects}
            unreported = {obj_id: 0 if obj_id in reported else unreported.get(obj_id, 0) + 1
                          for obj_id in stream.session.obj_ids}
            ended = [obj_id for obj_id, frames_unseen in unreported.items() if frames_unseen >= max_lost]
            if ended:
                stream.remove_objects(ended)
            yield TrackedFrame(index, time, image, objects)


class Sam3ConceptStream:
    """One video through a Sam3VideoTracker: transformers' streaming session, trimmed after each
    frame (see the module docstring); not shared between threads."""

    def __init__(self, tracker: Sam3VideoTracker, classes: list[str]) -> None:
        self.model, self.processor, self.device = tracker.model, tracker.processor, tracker.device
        self.session = self.processor.init_video_session(inference_device=self.device, dtype=tracker.dtype)
        self.session.processed_frames = _NewestFrame()
        self.processor.add_text_prompt(self.session, classes)
        config = self.model.config.tracker_config
        self.memories = config.num_maskmem  # the current frame and num_maskmem - 1 before it
        self.history = max(config.num_maskmem, config.max_object_pointers_in_encoder)
        self.max_cond_frames = config.max_cond_frame_num
        self.position = -1

    @torch.inference_mode()
    def add_frame(self, image: np.ndarray) -> dict:
        """Run the next (H, W, 3) uint8 frame: postprocess_outputs' dict (object_ids, scores, boxes,
        masks at the frame's size, prompt_to_obj_ids)."""
        self.position += 1
        inputs = self.processor(images=image, device=self.device, return_tensors="pt")
        self._forget_before(self.position)
        # the index is given, not counted from the stored frames: it is what the memories are placed by
        output = self.model(inference_session=self.session, frame=inputs.pixel_values[0], frame_idx=self.position)
        return self.processor.postprocess_outputs(self.session, output, original_sizes=inputs.original_sizes)

    def remove_objects(self, ids: Sequence[int]) -> None:
        """End objects: out of the tracker's per-object tables (the session's remove_object, as SAM
        3's own removal does) and out of the per-id bookkeeping the model copies every frame (read
        only for live ids in streaming), so nothing of them is kept; ids are not given again."""
        session, ended = self.session, set(ids)
        for obj_id in ended:
            session.remove_object(obj_id)
            for table in (session.obj_id_to_score, session.trk_keep_alive, session.obj_first_frame_idx,
                          session.unmatched_frame_inds):
                table.pop(obj_id, None)
        for pair in [pair for pair in session.overlap_pair_to_frame_inds if ended & set(pair)]:
            del session.overlap_pair_to_frame_inds[pair]

    def _forget_before(self, index: int) -> None:
        """Drop what the model no longer reads on frame index and after."""
        session = self.session
        for table in (session.obj_id_to_tracker_score_frame_wise, session.suppressed_obj_ids):
            drop_frames_before(table, index)
        for tables in (session.frames_tracked_per_obj, session.mask_inputs_per_obj, session.point_inputs_per_obj):
            for table in tables.values():
                drop_frames_before(table, index)
        oldest_memory = index - self.memories + 1
        for outputs in session.output_dict_per_obj.values():
            drop_frames_before(outputs["non_cond_frame_outputs"], index - self.history + 1)
            conditioning = outputs["cond_frame_outputs"]
            latest = sorted(conditioning)[-self.max_cond_frames:] if self.max_cond_frames != -1 else list(conditioning)
            for frame in conditioning:
                if frame not in latest and frame < oldest_memory:
                    conditioning[frame] = {"object_pointer": conditioning[frame]["object_pointer"]}
        oldest_hotstart = index - self.model.hotstart_delay
        for frames in (*session.unmatched_frame_inds.values(), *session.overlap_pair_to_frame_inds.values()):
            frames[:] = [frame for frame in frames if frame >= oldest_hotstart]


class _NewestFrame(dict):
    """A session's processed_frames holding only the newest frame's pixels (the only ones the model
    reads: the detector and the tracker take the current frame), its len() still the number of
    frames seen, as the tracker reads it: with all frames kept that is how far back its object
    pointers may reach."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def __setitem__(self, frame: int, pixels: torch.Tensor) -> None:
        self.clear()
        super().__setitem__(frame, pixels)
        self.seen = max(self.seen, frame + 1)

    def __len__(self) -> int:
        return self.seen
