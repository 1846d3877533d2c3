"""SAM 3 video through lang_sam.families.sam3_video: a tiny random Sam3VideoModel and its
Sam3VideoProcessor saved with save_pretrained, run on a synthetic clip and checked frame by frame
against transformers' own streaming loop (init_video_session, add_text_prompt, a forward and
postprocess_outputs per frame) called directly on the same decoded frames. That loop keeps
everything; ours trims the session after each frame, so the equality is also the proof that
trimming drops nothing the model reads, and the session's storage is measured to stay bounded.
Then the same frames through open_and_track's callers: LangSAM.track, ModelPool.track and
``lang-sam track``, none of which may load a detector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lang_sam.errors import InvalidOptionError, InvalidPromptError, ModelLoadError
from lang_sam.families.base import ConceptTracker, TrackedFrame, TrackedObject
from lang_sam.families.sam3_video import Sam3VideoTracker
from lang_sam.geometry import mask_to_box
from lang_sam.video.frames import VideoFrames
from tests.conftest import byte_level_clip_tokenizer
from tests.families.test_sam3 import TEXT_TOKENS, random_sam3, tiny_sam3_config
from tests.video.conftest import moving_squares, read_with_pyav, write_video

CLASSES = ["square", "circle"]
FRAMES = 8
IMAGE_SIZE = 56  # 4x4 patches of 14 pixels
WIDTH = 128  # the tracker splits 128-channel object pointers into the 64-channel memories it attends to
NUM_MASKMEM, MAX_POINTERS, MAX_COND_FRAMES = 3, 4, 1
DETECTION_THRESHOLD = 0.86  # the tiny detector's scores (0.88 x its query's probability): a few pass


def save_tiny_sam3_video(folder: Path, seed: int = 0) -> Path:
    """A tiny random Sam3VideoModel (the tiny SAM 3 of tests/families/test_sam3.py as its detector)
    and its Sam3VideoProcessor in folder. Its presence score is fixed at 0.88 and its query scores
    spread, so a few objects of each class are found; it reconditions every other frame on any
    match, so conditioning frames pile up as on a long video."""
    from transformers import Sam3ImageProcessor, Sam3VideoConfig, Sam3VideoModel, Sam3VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor
    from transformers.models.sam3_tracker_video.configuration_sam3_tracker_video import Sam3TrackerVideoConfig

    tokenizer = byte_level_clip_tokenizer(TEXT_TOKENS)
    detector = tiny_sam3_config(len(tokenizer), width=WIDTH, image_size=IMAGE_SIZE)
    patches = IMAGE_SIZE // 14
    tracker = Sam3TrackerVideoConfig(
        vision_config=detector.vision_config.to_dict(), image_size=IMAGE_SIZE,
        prompt_encoder_config={"hidden_size": WIDTH, "image_size": IMAGE_SIZE},
        mask_decoder_config={"hidden_size": WIDTH, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        num_maskmem=NUM_MASKMEM, max_object_pointers_in_encoder=MAX_POINTERS, max_cond_frame_num=MAX_COND_FRAMES,
        memory_attention_hidden_size=WIDTH, memory_attention_feed_forward_hidden_size=WIDTH,
        memory_attention_num_layers=1, memory_attention_rope_feat_sizes=[patches, patches],
        memory_encoder_hidden_size=WIDTH, memory_encoder_output_channels=64, mask_downsampler_embed_dim=WIDTH,
        memory_fuser_embed_dim=WIDTH, memory_fuser_intermediate_dim=64, memory_fuser_num_layers=1,
    )
    config = Sam3VideoConfig(
        detector_config=detector.to_dict(), tracker_config=tracker.to_dict(), low_res_mask_size=4 * patches,
        score_threshold_detection=DETECTION_THRESHOLD, new_det_thresh=DETECTION_THRESHOLD, hotstart_delay=2,
        hotstart_unmatch_thresh=1, hotstart_dup_thresh=1, recondition_every_nth_frame=2, high_conf_thresh=0.0,
        high_iou_thresh=0.0,
    )
    torch.manual_seed(seed)
    model = Sam3VideoModel(config).eval()
    model.detector_model.load_state_dict(random_sam3(detector, seed).state_dict())
    with torch.no_grad():
        presence = model.detector_model.detr_decoder.presence_head.layer3
        presence.weight.zero_()
        presence.bias.fill_(2.0)
        scoring = model.detector_model.dot_product_scoring
        scoring.text_proj.weight.mul_(0.5)
        scoring.query_proj.weight.mul_(0.5)
        for name, parameter in model.tracker_model.named_parameters():  # zero-initialised: a memory never read would pass
            if "no_memory" in name or "temporal_positional" in name or "no_object_pointer" in name or "occlusion" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(folder)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    Sam3VideoProcessor(image_processor=Sam3ImageProcessor(size=size), video_processor=Sam2VideoVideoProcessor(size=size),
                       tokenizer=tokenizer, target_size=IMAGE_SIZE).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sam3_video_dir(tmp_path_factory) -> Path:
    return save_tiny_sam3_video(tmp_path_factory.mktemp("tiny-sam3-video"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("sam3-clip") / "squares.mp4", moving_squares(FRAMES))


@pytest.fixture(scope="module")
def direct(sam3_video_dir, clip):
    """transformers' streaming loop as its documentation writes it, on the frames lang-sam decodes:
    each frame's postprocess_outputs and the session's storage after it."""
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    model = Sam3VideoModel.from_pretrained(sam3_video_dir).eval()
    processor = Sam3VideoProcessor.from_pretrained(sam3_video_dir)
    session = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    processor.add_text_prompt(session, CLASSES)
    outputs, storage = [], []
    for frame in VideoFrames(clip):
        inputs = processor(images=frame.image, device="cpu", return_tensors="pt")
        output = model(inference_session=session, frame=inputs.pixel_values[0])
        outputs.append(processor.postprocess_outputs(session, output, original_sizes=inputs.original_sizes))
        storage.append(Storage.of(session))
    return outputs, storage


@pytest.fixture(scope="module")
def ours(sam3_video_dir, clip):
    """Sam3VideoTracker.track_concepts on the clip, and its session's storage after each frame."""
    tracker = Sam3VideoTracker(sam3_video_dir, device="cpu", dtype="float32")
    streams = []
    opened = tracker.stream
    tracker.stream = lambda classes: streams.append(opened(classes)) or streams[-1]
    frames, storage = [], []
    for frame in tracker.track_concepts(VideoFrames(clip), CLASSES, score_threshold=0.5):
        frames.append(frame)
        storage.append(Storage.of(streams[0].session))
    return tracker, frames, storage


class Storage:
    """What a session holds: bytes of every tensor it reaches (pointer: those in conditioning
    frames stripped to their object pointer, counted apart), and frames kept per table kind."""

    def __init__(self) -> None:
        self.bytes, self.pointer_bytes, self.pixel_frames = 0, 0, 0
        self.tracked_frames: list[int] = []  # per object: unprompted frames with outputs
        self.full_cond_frames: list[int] = []  # per object: conditioning frames with all their outputs

    @classmethod
    def of(cls, session) -> Storage:
        found = cls()
        found.bytes = found._tensor_bytes(vars(session), set())
        found.pixel_frames = len(list(session.processed_frames))  # the frames it holds (ours counts all in len())
        for outputs in session.output_dict_per_obj.values():
            found.tracked_frames.append(len(outputs["non_cond_frame_outputs"]))
            found.full_cond_frames.append(sum(len(out) > 1 for out in outputs["cond_frame_outputs"].values()))
        return found

    def _tensor_bytes(self, value, seen: set[int]) -> int:
        if id(value) in seen:
            return 0
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            total = sum(self._tensor_bytes(item, seen) for item in value.values())
            if set(value) == {"object_pointer"}:
                self.pointer_bytes += total
                return 0
            return total
        if isinstance(value, (list, tuple, set)):
            return sum(self._tensor_bytes(item, seen) for item in value)
        if hasattr(value, "__dict__") and not isinstance(value, type):
            return self._tensor_bytes(vars(value), seen)
        return 0


def expected_frames(direct_outputs, clip: Path, score_threshold: float = 0.5) -> list[TrackedFrame]:
    """transformers' outputs as TrackedFrames: labels from prompt_to_obj_ids, boxes around the masks."""
    frames = []
    for frame, found in zip(VideoFrames(clip), direct_outputs):
        label_of = {obj_id: label for label, ids in found["prompt_to_obj_ids"].items() for obj_id in ids}
        objects = tuple(TrackedObject(obj_id, label_of[obj_id], score, mask_to_box(mask), mask)
                        for obj_id, score, mask in zip(found["object_ids"].tolist(), found["scores"].tolist(),
                                                       found["masks"].numpy())
                        if score > score_threshold and mask.any())
        frames.append(TrackedFrame(frame.index, frame.time, frame.image, objects))
    return frames


def assert_same_frames(got: list[TrackedFrame], expected: list[TrackedFrame]) -> None:
    assert [frame.index for frame in got] == [frame.index for frame in expected]
    for mine, theirs in zip(got, expected):
        assert mine.time == theirs.time and np.array_equal(mine.image, theirs.image)
        assert [(o.id, o.label, o.score) for o in mine.objects] == [(o.id, o.label, o.score) for o in theirs.objects]
        for a, b in zip(mine.objects, theirs.objects):
            assert np.array_equal(a.mask, b.mask) and np.array_equal(a.box, b.box)


def test_frames_equal_transformers_streaming_loop(ours, direct, clip):
    tracker, frames, _ = ours
    assert isinstance(tracker, ConceptTracker)
    expected = expected_frames(direct[0], clip)
    assert_same_frames(frames, expected)
    labels = {item.label for frame in frames for item in frame.objects}
    assert labels == set(CLASSES), "both classes found, and nothing but the classes given"
    assert all(item.mask.any() and item.mask.dtype == bool for frame in frames for item in frame.objects)
    label_of: dict[int, str] = {}
    for frame in frames:  # an id keeps its label on every frame it is on
        for item in frame.objects:
            assert label_of.setdefault(item.id, item.label) == item.label
    on_every_frame = set.intersection(*({item.id for item in frame.objects} for frame in frames))
    assert on_every_frame, "objects tracked through the whole clip under one id"
    assert set(label_of) - {item.id for item in frames[0].objects}, "an object found later gets a new id"


def test_storage_stays_bounded_while_transformers_grows(ours, direct):
    """Per object, the frames kept are bounded by the model's look-back (transformers' grow with the
    video); what is stripped keeps its object pointer, which transformers attends to for ever."""
    mine = ours[2]
    theirs = direct[1]
    assert [s.pixel_frames for s in theirs] == list(range(1, FRAMES + 1)) and all(s.pixel_frames == 1 for s in mine)
    history = max(NUM_MASKMEM, MAX_POINTERS)
    # after a frame: the frames the next one reads back, and its own
    assert max(n for s in mine for n in s.tracked_frames) == history < max(n for s in theirs for n in s.tracked_frames)
    assert all(n <= MAX_COND_FRAMES + NUM_MASKMEM for s in mine for n in s.full_cond_frames)
    assert max(theirs[-1].full_cond_frames) > max(mine[-1].full_cond_frames), \
        "conditioning frames piled up: the stripping is exercised"
    assert mine[-1].pointer_bytes > 0 and theirs[-1].pointer_bytes == 0
    objects = [len(s.tracked_frames) for s in mine]
    assert objects == [len(s.tracked_frames) for s in theirs]
    settled = objects.index(objects[-1]) + history  # objects and read-back frames both complete from here on
    assert settled < FRAMES
    assert all(later.bytes > earlier.bytes for earlier, later in zip(theirs[settled - 1:], theirs[settled:])), \
        f"theirs grows every frame: {[s.bytes for s in theirs]}"
    assert all(s.bytes < t.bytes for s, t in zip(mine[settled:], theirs[settled:]))


def test_threshold_and_classes_are_checked_before_any_frame(ours):
    tracker = ours[0]
    never = iter(())  # not read: the checks come first
    with pytest.raises(InvalidOptionError, match="score_threshold"):
        tracker.track_concepts(never, CLASSES, score_threshold=1.5)
    with pytest.raises(InvalidPromptError, match="non-empty"):
        tracker.track_concepts(never, ["square", " "])
    with pytest.raises(InvalidPromptError, match="tokens, more than SAM 3's text encoder takes"):
        tracker.track_concepts(never, ["a square sliding slowly to the right of the frame"])  # a token a letter
    with pytest.raises(InvalidPromptError, match="Name what to track"):
        tracker.track_concepts(never, [])


def test_image_only_sam3_and_empty_folders_are_refused(tmp_path):
    from tests.families.test_sam3 import sam3_processor

    tokenizer = byte_level_clip_tokenizer(TEXT_TOKENS)
    random_sam3(tiny_sam3_config(len(tokenizer))).save_pretrained(tmp_path / "image")
    sam3_processor(tokenizer, 112).save_pretrained(tmp_path / "image")
    with pytest.raises(ModelLoadError, match="is a sam3 model, not SAM 3 video: it is SAM 3's image model alone"):
        Sam3VideoTracker(tmp_path / "image", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="has no config.json.*Sam3VideoModel and Sam3VideoProcessor"):
        Sam3VideoTracker(tmp_path / "empty", device="cpu")


def test_langsam_and_the_model_pool_track_with_sam3_video_and_no_detector(sam3_video_dir, clip, direct, tmp_path):
    from lang_sam import LangSAM
    from lang_sam.interfaces.models import ModelPool
    from lang_sam.settings import Settings

    never = tmp_path / "no-detector-here"  # a detector that would fail to load: none may load
    expected = expected_frames(direct[0], clip, score_threshold=0.3)[:4]  # SAM 3 streams causally: a prefix is a prefix
    end = expected[-1].time + 0.01
    model = LangSAM(sam_checkpoint=sam3_video_dir, detector=never, device="cpu", dtype="float32")
    assert_same_frames(list(model.track(clip, "square, circle", video_segmenter=sam3_video_dir, end=end)), expected)

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "tiny-sam3-video").symlink_to(sam3_video_dir, target_is_directory=True)
    pool = ModelPool(Settings(sam_type="tiny-sam3-video", checkpoint_dir=str(checkpoints), detector=str(never),
                              device="cpu", dtype="float32"), allowed=["tiny-sam3-video", "sam3", "vit_b"])
    assert pool.video_types == ["tiny-sam3-video", "sam3"], "the app's and the server's video models"
    assert_same_frames(list(pool.track(clip, "square, circle", "tiny-sam3-video", end=end)), expected)


def test_lang_sam_track_runs_sam3_video_from_the_command_line(sam3_video_dir, clip, direct, tmp_path):
    from lang_sam.interfaces.cli import main

    out = tmp_path / "out"
    code = main(["track", str(clip), "--prompt", "square, circle", "--sam-checkpoint", str(sam3_video_dir),
                 "--out", str(out), "--detector", str(tmp_path / "never-loaded"), "--device", "cpu", "--dtype", "float32"])
    assert code == 0
    lines = [json.loads(line) for line in (out / "squares.jsonl").read_text().splitlines()]
    assert lines == [frame.to_json() for frame in expected_frames(direct[0], clip, score_threshold=0.3)]
    written, _ = read_with_pyav(out / "squares.mp4")
    assert len(written) == FRAMES and written[0].shape == (48, 64, 3)


def run_recording_sessions(tracker, clip, score_threshold: float, max_lost: int):
    """track_concepts' frames, and after each frame the ids in the session and its per-id bookkeeping."""
    streams = []
    opened = tracker.stream
    tracker.stream = lambda classes: streams.append(opened(classes)) or streams[-1]
    try:
        frames, live, bookkept = [], [], []
        for frame in tracker.track_concepts(VideoFrames(clip), CLASSES, score_threshold=score_threshold, max_lost=max_lost):
            session = streams[0].session
            frames.append(frame)
            live.append(set(session.obj_ids))
            bookkept.append({*session.obj_id_to_score, *session.trk_keep_alive, *session.obj_first_frame_idx,
                             *session.unmatched_frame_inds, *(i for pair in session.overlap_pair_to_frame_inds for i in pair)})
    finally:
        tracker.stream = opened
    return frames, live, bookkept


def ends_from_reports(reported: list[set[int]], live: list[set[int]], max_lost: int) -> dict[int, int]:
    """id -> the frame after which it ends, counted from what was reported alone."""
    ended: dict[int, int] = {}
    unseen: dict[int, int] = {}
    for position, (seen, alive) in enumerate(zip(reported, live)):
        for obj_id in alive | set(unseen):
            unseen[obj_id] = 0 if obj_id in seen else unseen.get(obj_id, 0) + 1
        for obj_id, count in list(unseen.items()):
            if count >= max_lost:
                ended[obj_id] = position
                del unseen[obj_id]
    return ended


def test_an_object_unreported_for_max_lost_frames_ends_and_leaves_the_session(sam3_video_dir, clip, ours):
    """Streaming SAM 3 ends no object by itself; lang-sam ends one unreported (score at or below the
    threshold, or mask empty) for max_lost frames in a row: out of the session and its per-id
    bookkeeping, its id never back. Until the first end the frames are those of a run that ends nothing."""
    tracker, unended, _ = ours
    max_lost = 2
    frames, live, bookkept = run_recording_sessions(tracker, clip, 0.5, max_lost)
    reported = [{item.id for item in frame.objects} for frame in frames]
    ended = ends_from_reports(reported, live, max_lost)
    assert ended, "the clip has objects that go unreported: ending is exercised"
    for position in range(1, len(frames)):
        gone = live[position - 1] - live[position]
        assert gone == {obj_id for obj_id, at in ended.items() if at == position}, "objects leave only by ending, on time"
    for obj_id, position in ended.items():
        assert all(obj_id not in seen for seen in reported[position:]), "an ended id never comes back"
    assert all(kept <= alive for kept, alive in zip(bookkept, live)), "nothing is kept of an ended object"
    first_end = min(ended.values())
    assert_same_frames(frames[:first_end + 1], unended[:first_end + 1])
    with pytest.raises(InvalidOptionError, match="max_lost"):
        tracker.track_concepts(iter(()), CLASSES, max_lost=0)


def test_when_nothing_is_reported_every_object_ends_and_new_ones_take_new_ids(sam3_video_dir, clip, ours):
    """A threshold no score passes, max_lost 1: every object ends on the frame it was found, the last
    one alive too (the session then resets itself), and the next frames go on finding objects,
    under ids never given before."""
    tracker = ours[0]
    streams = []
    opened = tracker.stream
    tracker.stream = lambda classes: streams.append(opened(classes)) or streams[-1]
    try:
        frames, found = [], []
        for frame in tracker.track_concepts(VideoFrames(clip), CLASSES, score_threshold=1.0, max_lost=1):
            session = streams[0].session
            frames.append(frame)
            found.append(session.max_obj_id)  # the largest id given so far
            assert not session.obj_ids and not session.obj_id_to_score and not session.trk_keep_alive
    finally:
        tracker.stream = opened
    assert len(frames) == FRAMES and all(not frame.objects for frame in frames)
    assert found[-1] > found[0] >= 0 and found == sorted(found), "objects were found after the first ones ended"
