"""lang-sam app: the Gradio web app on models loaded in this process."""

from __future__ import annotations

import argparse

from lang_sam.interfaces.cli import common

NAME = "app"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    app = subparsers.add_parser(
        NAME,
        help="open the Gradio web app",
        description="Serve the Gradio app (also: python app.py). Models load on first use, once per SAM size. "
        "Needs the app extra: pip install 'lang-sam[app]'.",
    )
    app.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    app.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    app.add_argument("--share", action="store_true", help="also open a public gradio.live link (or $GRADIO_SHARE=True)")
    common.add_model_arguments(app)


def run(args: argparse.Namespace) -> int:
    common.require("gradio", "app")
    from lang_sam.interfaces.app import launch

    launch(common.settings(args), args.host, args.port, args.share)
    return 0
