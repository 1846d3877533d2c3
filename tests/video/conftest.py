"""Synthetic videos written with PyAV itself (moving squares), and the tiny models of the video tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

SQUARE_COLOURS = ((230, 40, 40), (40, 200, 60))


def moving_squares(count: int, height: int = 48, width: int = 64, size: int = 12) -> list[np.ndarray]:
    """count RGB frames: a red square sliding right and a green one sliding left on grey."""
    frames = []
    for t in range(count):
        frame = np.full((height, width, 3), 90, np.uint8)
        for (top, left), colour in zip(((4, 2 + 2 * t), (height - size - 4, width - size - 2 - 2 * t)), SQUARE_COLOURS):
            frame[top:top + size, max(left, 0):max(left + size, 0)] = colour
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, times: list[float] | None = None,
                codec: str = "libx264", pixel_format: str = "yuv420p", rotation: int | None = None,
                options: dict[str, str] | None = None) -> Path:
    """frames to path with PyAV directly (not lang-sam's writer): frame i at times[i] seconds, else i / fps;
    options: the muxer's (e.g. {"movflags": "faststart"}: the index before the frames, as web videos have it)."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(1000 * (times[index] if times else index / fps))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_with_pyav(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Every frame of a video and its time in seconds, as PyAV decodes them (no rotation applied)."""
    import av

    with av.open(str(path)) as container:
        decoded = list(container.decode(container.streams.video[0]))
        return [frame.to_ndarray(format="rgb24") for frame in decoded], [float(frame.time) for frame in decoded]


TINY_VIDEO_SIZE = 128  # the model's square input: small enough for a CPU, any frame size is resized to it


def tiny_sam2_video_config(num_maskmem: int = 3, max_object_pointers: int = 4):
    """A tiny random SAM 2.1 video config at 128 px. The widths keep transformers' own constraints:
    memory attention cross-attends to 64-channel memories, and object pointers are split into
    64-channel tokens, so the FPN width is a multiple of 64 above it."""
    from transformers import Sam2VideoConfig
    from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig, Sam2VisionConfig
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig, Sam2VideoPromptEncoderConfig,
    )

    size = TINY_VIDEO_SIZE
    backbone = Sam2HieraDetConfig(hidden_size=8, embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
                                  blocks_per_stage=[1, 1, 2, 1], global_attention_blocks=[3], image_size=[size, size])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8], fpn_hidden_size=128,
                              backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2])
    return Sam2VideoConfig(
        vision_config=vision, prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=128, image_size=size),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=128, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
        image_size=size, num_maskmem=num_maskmem, max_object_pointers_in_encoder=max_object_pointers,
        memory_attention_hidden_size=128, memory_attention_feed_forward_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_rope_feat_sizes=[size // 16] * 2, memory_encoder_hidden_size=128, memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128, memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=64, memory_fuser_num_layers=1,
    )


def tiny_edgetam_video_config():
    """A tiny random EdgeTAM video config at 128 px on timm's repvit_m1 (EdgeTAM's own backbone), with
    one memory-attention, perceiver and fuser layer and a 4 x 4 grid of 2D perceiver latents."""
    from transformers import EdgeTamVideoConfig, TimmWrapperConfig

    size = TINY_VIDEO_SIZE
    backbone = TimmWrapperConfig(architecture="repvit_m1", do_pooling=False,
                                 model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]})
    vision = {"model_type": "edgetam_vision_model", "backbone_config": backbone.to_dict(),
              "backbone_feature_sizes": [[size // 4] * 2, [size // 8] * 2, [size // 16] * 2]}
    return EdgeTamVideoConfig(
        vision_config=vision, prompt_encoder_config={"image_size": size}, image_size=size, num_maskmem=3,
        max_object_pointers_in_encoder=4, memory_attention_num_layers=1, memory_attention_mlp_hidden_size=64,
        memory_attention_rope_feat_sizes=[size // 16] * 2, memory_attention_rope_k_sizes=[4, 4],
        perceiver_resampler_num_latents=16, perceiver_resampler_num_latents_2d=16, perceiver_resampler_num_layers=1,
        perceiver_resampler_mlp_intermediate_size=64, memory_fuser_num_layers=1, memory_fuser_intermediate_dim=64,
    )


def save_tiny_sam2_video(folder: Path, seed: int = 0, **config) -> Path:
    """A tiny random Sam2VideoModel and its Sam2VideoProcessor saved with save_pretrained in folder."""
    import torch
    from transformers import Sam2VideoModel

    torch.manual_seed(seed)
    return save_tiny_video_model(folder, Sam2VideoModel(tiny_sam2_video_config(**config)))


def save_tiny_edgetam_video(folder: Path, seed: int = 0) -> Path:
    """A tiny random EdgeTamVideoModel and its Sam2VideoProcessor (as EdgeTAM's repo has it) saved in folder."""
    import torch
    from transformers import EdgeTamVideoModel

    torch.manual_seed(seed)
    return save_tiny_video_model(folder, EdgeTamVideoModel(tiny_edgetam_video_config()))


def save_tiny_video_model(folder: Path, model) -> Path:
    """model (a SAM 2 style video model, just built from a seeded generator) with its zero embeddings
    drawn at random, and a Sam2VideoProcessor at TINY_VIDEO_SIZE, saved with save_pretrained in folder."""
    import torch
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    model = model.eval()
    with torch.no_grad():  # zero-initialised embeddings would hide a memory that is never read
        for name, parameter in model.named_parameters():
            if "no_memory" in name or "temporal_positional" in name or "no_object_pointer" in name or "occlusion" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(folder)
    size = {"height": TINY_VIDEO_SIZE, "width": TINY_VIDEO_SIZE}
    Sam2VideoProcessor(Sam2ImageProcessor(size=size, mask_size={"height": TINY_VIDEO_SIZE // 4, "width": TINY_VIDEO_SIZE // 4}),
                       Sam2VideoVideoProcessor(size=size), target_size=TINY_VIDEO_SIZE).save_pretrained(folder)
    return folder


def streamed_by_transformers(model, processor, frames: list[np.ndarray],
                             prompts: dict[int, tuple[list[int], dict]]) -> list[dict[int, np.ndarray]]:
    """Per frame, {object id: (H, W) mask} from a SAM 2 style transformers video model and its
    processor alone (the documented streaming loop, in float32, nothing dropped); prompts: frame
    index -> (object ids, the processor's inputs for them: input_boxes, or input_points and input_labels)."""
    import torch

    session = processor.init_video_session(inference_device="cpu", dtype=torch.float32)
    results = []
    with torch.inference_mode():
        for index, frame in enumerate(frames):
            inputs = processor(images=frame, return_tensors="pt")
            if index in prompts:
                object_ids, inputs_of_objects = prompts[index]
                processor.add_inputs_to_inference_session(session, frame_idx=index, obj_ids=object_ids,
                                                          original_size=frame.shape[:2], **inputs_of_objects)
            output = model(inference_session=session, frame=inputs["pixel_values"][0])
            masks = processor.post_process_masks([output.pred_masks], original_sizes=[list(frame.shape[:2])])[0][:, 0]
            results.append(dict(zip(output.object_ids, masks.numpy())))
    return results


def box_prompt(object_id: int, box: np.ndarray) -> tuple[list[int], dict]:
    """One object prompted by a pixel xyxy box, as streamed_by_transformers takes it."""
    return [object_id], {"input_boxes": [[box.tolist()]]}


@pytest.fixture(scope="session")
def tiny_video_dir(tmp_path_factory) -> Path:
    return save_tiny_sam2_video(tmp_path_factory.mktemp("tiny-sam2-video"))
