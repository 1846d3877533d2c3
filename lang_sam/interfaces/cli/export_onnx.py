"""lang-sam export-onnx: SAM's prompt decoder (and encoder) as ONNX files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lang_sam.interfaces.cli import common
from lang_sam.io.files import check_output_folder

NAME = "export-onnx"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        NAME,
        help="export SAM's prompt decoder (and encoder) to ONNX",
        description="Write OUT/decoder.onnx with segment-anything's exported interface (inputs image_embeddings, "
        "point_coords, point_labels, mask_input, has_mask_input, orig_im_size; outputs masks, iou_predictions, "
        "low_res_masks; any number of points), so code written for Meta's exported decoder runs on it. Needs "
        "pip install 'lang-sam[onnx]'.",
    )
    export.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    export.add_argument("--sam-type", help="vit_h, vit_l, vit_b, or NAME for NAME.pth or a transformers SAM folder NAME in the "
                        "checkpoint folder ($LANG_SAM_SAM_TYPE; default vit_h, or what --checkpoint holds)")
    export.add_argument("--checkpoint", dest="sam_checkpoint", metavar="CHECKPOINT",  # what common.settings reads
                        help="a SAM .pth or .safetensors file, a transformers SAM folder or a Hugging Face repo id "
                        "($LANG_SAM_SAM_CHECKPOINT)")
    export.add_argument("--checkpoint-dir", help="folder with Meta's SAM .pth files and your own ($LANG_SAM_CHECKPOINTS)")
    export.add_argument("--quantize", action="store_true", help="also write decoder_quantized.onnx (int8 dynamic quantization)")
    export.add_argument("--encoder", action="store_true", help="also write encoder.onnx (resized (h, w, 3) uint8 RGB in, embedding out)")
    export.add_argument("--return-all-masks", action="store_true", help="output all four masks instead of the best one")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset, 14 to 23 (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    common.require("onnx", "onnx")
    from lang_sam.segmenter.build import load_sam
    from lang_sam.segmenter.onnx import check_opset, export_onnx

    if args.quantize:
        common.require("onnxruntime", "onnx")
    check_opset(args.opset)
    check_output_folder(args.out)  # before the model loads; export_onnx checks again for library callers
    settings = common.settings(args)  # its device and dtype unused: the export traces float32
    name, sam = load_sam(settings.sam_type, settings.sam_checkpoint, "float32", settings.checkpoint_dir)
    paths = export_onnx(sam, args.out, quantize=args.quantize, encoder=args.encoder,
                        return_single_mask=not args.return_all_masks, opset=args.opset)
    for path in paths:
        print(f"lang-sam: wrote {path} (SAM {name})", file=sys.stderr)
    return 0
