"""lang-sam label-studio: the Label Studio ML backend (lang_sam.interfaces.label_studio)."""

from __future__ import annotations

import argparse

from lang_sam.interfaces.cli import common

NAME = "label-studio"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    backend = subparsers.add_parser(
        NAME,
        help="run the Label Studio ML backend",
        description="Serve Label Studio's ML backend protocol (GET /health, POST /setup, /predict, /webhook): "
        "pre-annotations of the project's labels (BrushLabels, PolygonLabels, RectangleLabels) and interactive masks "
        "from KeyPointLabels clicks and RectangleLabels boxes. In Label Studio: Settings > Model > Connect Model, "
        "URL http://HOST:PORT (start Label Studio with ML_BLOCK_LOCAL_IP=false to reach a backend on this machine). "
        "Needs the label-studio extra: pip install 'lang-sam[label-studio]'.",
    )
    backend.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 for all)")
    backend.add_argument("--port", type=int, default=9090, help="port (default: %(default)s, Label Studio's usual)")
    backend.add_argument("--label-studio-url", help="Label Studio's address, to read the images it serves "
                         "($LABEL_STUDIO_URL; default: the one /setup sends)")
    backend.add_argument("--label-studio-api-key", help="a Label Studio access token (legacy or personal) to read those "
                         "images with ($LABEL_STUDIO_API_KEY; default: the one /setup sends)")
    backend.add_argument("--label-prompts", help='the words to detect for each label, over the config\'s hint and predicted_values: '
                         'JSON such as \'{"Car": "car", "Person": ["person", "pedestrian"]}\' or a .json file holding it '
                         "(default: the label names)")
    backend.add_argument("--max-detections", type=int, help="keep only the best N objects per image")
    common.add_pipeline_arguments(backend)


def run(args: argparse.Namespace) -> int:
    common.require("uvicorn", "label-studio")
    common.require("label_studio_sdk", "label-studio")
    from lang_sam.interfaces.label_studio import build_backend
    from lang_sam.interfaces.label_studio.app import serve
    from lang_sam.vocabulary import Thresholds

    thresholds = Thresholds(args.box_threshold, args.text_threshold, None, args.max_detections)
    backend = build_backend(common.settings(args), thresholds, args.label_prompts, args.label_studio_url, args.label_studio_api_key)
    serve(backend, args.host, args.port)
    return 0
