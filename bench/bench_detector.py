"""Grounding DINO speed, memory and bfloat16 agreement: lang-sam against transformers' default path.

For Swin-T and Swin-B with random weights on a 1024x768 photo: forward time and peak memory of
transformers' GroundingDinoForObjectDetection as shipped (float32), and of lang-sam's detector in
float32 and bfloat16 (same weights, same inputs). Then how close bfloat16 stays to float32, query
by query: a decoder query is the same computation in both runs when the same encoder proposal
fills the same query slot; for those, the box difference (fraction of the image) and the
correlation of their token logits are reported, with how many queries that is.

    python bench/bench_detector.py --sizes swin_t swin_b

With --family (grounding-dino, mm-grounding-dino or owlv2), one row instead: the time of a whole
detection (pre-processing, forward, post-processing) by lang-sam's detector against transformers'
processor, model and post-processing called directly, on the same random weights, float32, with
their ratio. The model has the architecture of a registry entry of that family (Grounding DINO
Swin-T, MM-Grounding-DINO tiny, OWLv2 base-patch16-ensemble at 960 pixels), or with --small the
tests' tiny one.
Box counts are printed too: for OWLv2 they agree; for (MM-)Grounding DINO lang-sam also requires
each box's own class to clear text_threshold, so it may keep fewer.

    python bench/bench_detector.py --family owlv2

Needs the test extra (the bert-base-uncased vocabulary). Random weights: timings, not quality.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lang_sam.devices import bf16_skip_reason, describe_cpu

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' tiny models and tokenizers
from bench_sam import reset_peak, rss_mib, test_image  # noqa: E402
from timing import paired_ratio, take_turns  # noqa: E402

CAPTION = "truck . wheel . person . window ."
CLASSES = ["truck", "wheel", "person", "window"]
BOX_THRESHOLD, TEXT_THRESHOLD = 0.3, 0.25
FAMILY_ARCHITECTURES = {
    "grounding-dino": "IDEA-Research/grounding-dino-tiny (Swin-T)",
    "mm-grounding-dino": "openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det (MMGroundingDinoConfig() defaults, Swin-T)",
    "owlv2": "google/owlv2-base-patch16-ensemble (ViT-B/16, 960 pixels; byte-level tokenizer)",
}


def build(size: str):
    """Random-weight model (seeded, so every process gets the same) and processor."""
    from transformers import (
        BertTokenizer,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from lang_sam.detector.original_checkpoint import grounding_dino_config
    from tests.conftest import bert_vocab_path

    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(grounding_dino_config(size)).eval()
    tokenizer = BertTokenizer(vocab=str(bert_vocab_path()), do_lower_case=True)
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer)
    return model, processor


def model_inputs(processor, dtype: torch.dtype) -> dict:
    inputs = processor(images=Image.fromarray(test_image()), text=CAPTION, return_tensors="pt")
    return {key: value.to(dtype) if value.is_floating_point() else value for key, value in inputs.items()}


def worker(implementation: str, size: str, dtype_name: str, repeats: int) -> dict:
    from lang_sam.detector import GroundingDinoDetector

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    model, processor = build(size)
    if implementation == "lang_sam":
        model = GroundingDinoDetector.from_parts(model, processor, device="cpu", dtype=dtype).model
    inputs = model_inputs(processor, dtype)

    def forward():
        with torch.inference_mode():
            return model(**inputs)

    forward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    before = rss_mib("VmRSS")
    reset_peak()
    forward()
    return {"forward_s": statistics.median(times), "peak_mib": rss_mib("VmHWM") - before}


def agreement(size: str) -> dict:
    """bfloat16 against float32, both lang-sam, same weights and inputs, query by query."""
    from lang_sam.detector import GroundingDinoDetector

    model, processor = build(size)
    outputs = {}
    for dtype in (torch.float32, torch.bfloat16):
        detector = GroundingDinoDetector.from_parts(model, processor, device="cpu", dtype=dtype)
        with torch.inference_mode():
            out = detector.model(**model_inputs(processor, dtype))
        length = int(out.logits.isfinite()[0, 0].sum())
        # The proposal behind each query, as the model picks them (top-k of the encoder scores).
        proposals = out.enc_outputs_class[0].float().max(dim=-1).values.topk(model.config.num_queries).indices
        outputs[dtype] = (proposals, out.pred_boxes[0].float(), out.logits[0, :, :length].float())
        model = detector.model.float()
    (proposals_a, boxes_a, logits_a), (proposals_b, boxes_b, logits_b) = outputs[torch.float32], outputs[torch.bfloat16]
    query_of_proposal_b = {int(proposal): query for query, proposal in enumerate(proposals_b.tolist())}
    partner = torch.tensor([query_of_proposal_b.get(int(proposal), -1) for proposal in proposals_a.tolist()])
    # A decoder query starts from its slot's learned embedding, so only a query whose proposal holds
    # the same slot in both runs is the same computation in two precisions.
    same_slot = (partner == torch.arange(len(partner))).nonzero().flatten()
    box_error = (boxes_a[same_slot] - boxes_b[same_slot]).abs().max(dim=1).values
    correlations = np.array([np.corrcoef(logits_a[i].numpy(), logits_b[i].numpy())[0, 1] for i in same_slot.tolist()])
    return {
        "queries": len(partner),
        "same_proposals": int((partner >= 0).sum()),
        "same_slot": len(same_slot),
        "boxes_within_1pct": float((box_error < 0.01).float().mean()),
        "logit_corr_min": float(correlations.min()),
        "logit_corr_median": float(np.median(correlations)),
    }


def run_worker(*args: str) -> dict:
    command = [sys.executable, __file__, "--worker", *args]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def build_family(family: str, small: bool):
    """Random-weight model (seeded) and processor of a detector family: the registry default's
    architecture built offline from transformers' Config, or (small) the tests' tiny model."""
    import transformers

    from tests.conftest import bert_vocab_path, byte_level_clip_tokenizer, tiny_grounding_dino

    torch.manual_seed(0)
    if family == "owlv2":
        text = {"bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513}  # the byte-level tokenizer's
        if small:
            text.update(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
        vision = {"image_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                  "num_attention_heads": 2} if small else {"image_size": 960}
        config = transformers.Owlv2Config(text_config=text, vision_config=vision, projection_dim=32 if small else 512)
        image_processor = transformers.Owlv2ImageProcessor(size={"height": vision["image_size"], "width": vision["image_size"]})
        processor = transformers.Owlv2Processor(image_processor=image_processor, tokenizer=byte_level_clip_tokenizer(16))
        return transformers.Owlv2ForObjectDetection(config).eval(), processor
    if small:
        model = tiny_grounding_dino(model_type=family)
    elif family == "grounding-dino":
        from lang_sam.detector.original_checkpoint import grounding_dino_config

        model = transformers.GroundingDinoForObjectDetection(grounding_dino_config("swin_t")).eval()
    else:
        model = transformers.MMGroundingDinoForObjectDetection(transformers.MMGroundingDinoConfig()).eval()
    tokenizer = transformers.BertTokenizer(vocab=str(bert_vocab_path()), do_lower_case=True)
    size = {"shortest_edge": 240, "longest_edge": 400} if small else None
    image_processor = transformers.GroundingDinoImageProcessor(**({"size": size} if size else {}))
    return model, transformers.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


def transformers_detection(model, processor, family: str, image: Image.Image) -> int:
    """A detection as transformers' docs make it: processor, model, post-processing; the box count."""
    text = [CLASSES] if family == "owlv2" else CAPTION
    with torch.inference_mode():
        inputs = processor(images=image, text=text, return_tensors="pt")
        outputs = model(**inputs)
    size = [(image.height, image.width)]
    if family == "owlv2":
        (result,) = processor.post_process_grounded_object_detection(outputs, threshold=BOX_THRESHOLD, target_sizes=size)
    else:
        (result,) = processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=BOX_THRESHOLD, text_threshold=TEXT_THRESHOLD, target_sizes=size)
    return len(result["scores"])


def family_row(family: str, small: bool, repeats: int) -> None:
    """lang-sam's detector against transformers called directly, same weights, same photo."""
    import copy

    from lang_sam.detector import GroundingDinoDetector
    from lang_sam.families.detectors import Owlv2Detector

    model, processor = build_family(family, small)
    reference = copy.deepcopy(model)  # the detectors swap modules of their model's own (attention, activations)
    detector_class = Owlv2Detector if family == "owlv2" else GroundingDinoDetector
    detector = detector_class.from_parts(model, processor, device="cpu", dtype="float32")
    image = Image.fromarray(test_image())
    runs = {
        "transformers": lambda: transformers_detection(reference, processor, family, image),
        "lang_sam": lambda: len(detector.detect([image], ", ".join(CLASSES), box_threshold=BOX_THRESHOLD, text_threshold=TEXT_THRESHOLD)[0]),
    }
    times, boxes = take_turns(runs, repeats)
    theirs, ours = (statistics.median(times[name]) for name in runs)
    fastest_theirs, fastest_ours = (min(times[name]) for name in runs)
    paired = paired_ratio(times["lang_sam"], times["transformers"])
    architecture = "tiny test model" if small else FAMILY_ARCHITECTURES[family]
    print(f"\n== {family}: {architecture}, random weights, {image.width}x{image.height} photo, classes {CLASSES}, "
          f"thresholds {BOX_THRESHOLD}/{TEXT_THRESHOLD}, median (fastest) of {repeats} runs each, taking turns")
    print(f"transformers processor+model+post-processing {theirs:.3f} s ({fastest_theirs:.3f} s; {boxes['transformers']} boxes); "
          f"lang_sam detect {ours:.3f} s ({fastest_ours:.3f} s; {boxes['lang_sam']} boxes)")
    print(f"lang_sam / transformers (lower is faster): medians {ours / theirs:.2f}x, fastest {fastest_ours / fastest_theirs:.2f}x, "
          f"median of the {repeats} side-by-side ratios {paired:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["swin_t", "swin_b"], choices=["swin_t", "swin_b"])
    parser.add_argument("--family", choices=["grounding-dino", "mm-grounding-dino", "owlv2"],
                        help="one row: lang-sam's detector against transformers called directly")
    parser.add_argument("--small", action="store_true", help="with --family: the tests' tiny model (a quick check)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "SIZE", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats)))
        return

    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    if args.family:
        family_row(args.family, args.small, args.repeats)
        return
    skip_bf16 = bf16_skip_reason()
    if skip_bf16:
        print(skip_bf16)
    for size in args.sizes:
        baseline = run_worker("transformers", size, "float32", "--repeats", str(args.repeats))
        ours = run_worker("lang_sam", size, "float32", "--repeats", str(args.repeats))
        ours_bf16 = None if skip_bf16 else run_worker("lang_sam", size, "bfloat16", "--repeats", str(args.repeats))
        print(f"\n== Grounding DINO {size}, 1024x768 photo, caption {CAPTION!r}")
        print(f"{'':26}{'transformers fp32':>19}{'lang_sam fp32':>15}" + ("" if skip_bf16 else f"{'lang_sam bf16':>15}"))
        for label, key, form in (("forward (s)", "forward_s", ".2f"), ("peak memory (MiB)", "peak_mib", ".0f")):
            bf16 = "" if skip_bf16 else f"{ours_bf16[key]:15{form}}"
            print(f"{label:26}{baseline[key]:19{form}}{ours[key]:15{form}}{bf16}")
        print(f"speed-up over transformers fp32: lang_sam fp32 {baseline['forward_s'] / ours['forward_s']:.2f}x"
              + ("" if skip_bf16 else f", bf16 {baseline['forward_s'] / ours_bf16['forward_s']:.2f}x"))
        if skip_bf16:
            continue
        close = agreement(size)
        print(f"bf16 vs fp32: the decoder's {close['queries']} queries come from the same proposals in "
              f"{close['same_proposals']} cases, {close['same_slot']} of them in the same query slot (random weights leave "
              f"proposal scores nearly tied, so bf16 rounding reorders them). For those: boxes within 1% of the image "
              f"{close['boxes_within_1pct']:.0%}, logit correlation per query min {close['logit_corr_min']:.4f}, "
              f"median {close['logit_corr_median']:.4f}")

if __name__ == "__main__":
    main()
