"""The LitAPI: decode and check each request, predict a batch in groups of equal options, answer
JSON or the PNG drawing. A bad request or a model failure answers only itself."""

from __future__ import annotations

import base64
import io
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import litserve as ls
from fastapi.responses import JSONResponse, Response
from PIL import Image

from lang_sam.drawing import draw_image
from lang_sam.errors import InvalidImageError, InvalidOptionError, InvalidPromptError, LangSAMError
from lang_sam.interfaces.models import ModelPool, served_detectors, served_sam_types, served_semantic_models
from lang_sam.segmenter.embedding_store import DEFAULT_CAPACITY, EmbeddingStore
from lang_sam.interfaces.server.cancel import RequestCancelled, ServerFiles
from lang_sam.interfaces.server.validation import (
    DecodeRequest, EmbedRequest, EverythingRequest, Limits, PredictRequest, RasterRequest, Rejected, parse_request,
)
from lang_sam.pipeline import image_key
from lang_sam.results import LangSAMResult
from lang_sam.settings import Settings
from lang_sam.vocabulary.detections import Detections

PREDICT_PATH = "/predict"
LOGGER = logging.getLogger("lang_sam.server")


def log_to_stderr() -> None:
    """In a spawned worker process: the server's INFO lines to its stderr, the server's log."""
    if not LOGGER.handlers:
        LOGGER.addHandler(logging.StreamHandler(sys.stderr))
        LOGGER.setLevel(logging.INFO)


def response_json(result: LangSAMResult, model: str) -> dict[str, Any]:
    exported = result.to_json()
    return {"image": exported["image"], "model": model, "detections": exported["detections"]}


class LangSAMAPI(ls.LitAPI):
    """Decode and check each request, predict a batch in groups, encode JSON or PNG."""

    def __init__(
        self,
        settings: Settings,
        limits: Limits,
        max_batch_size: int = 4,
        batch_timeout: float = 0.05,
        sam_types: Sequence[str] | None = None,
        preload: bool = False,
        embeddings_kept: int = DEFAULT_CAPACITY,
        detectors: Sequence[str] | None = None,
        semantic_models: Sequence[str] | None = None,
        files: ServerFiles | None = None,
    ):
        """embeddings_kept: how many /embed embeddings are kept for /decode; detectors: those
        requests may name in a ``detector`` field besides the settings' own; semantic_models: those
        that mode=everything's ``semantic`` field may name (none by default); files: the server
        run's folder, shared by the workers: the embeddings, and the flags of requests whose client
        left (None: one of this worker's own, as a LitAPI used without build_server has)."""
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=PREDICT_PATH)
        self.settings = settings
        self.limits = limits
        self.sam_types = served_sam_types(settings, sam_types)
        self.preload = preload
        self.embeddings_kept = embeddings_kept
        self.detectors = served_detectors(settings, detectors)
        self.semantic_models = served_semantic_models(semantic_models)
        self.files = files

    def setup(self, device: str) -> None:
        log_to_stderr()
        self.pool = ModelPool(replace(self.settings, device=self.settings.device or device), allowed=self.sam_types,
                              detectors=self.detectors, semantic_models=self.semantic_models)
        if self.files is None:  # a LitAPI used without build_server
            self.files = ServerFiles.create()
        self.store = EmbeddingStore(self.files.embeddings_folder(), self.embeddings_kept)
        self.pool.get()  # the default SAM is ready before /health says so
        for name in self.pool.sam_types if self.preload else []:
            try:
                self.pool.get(name)
            except LangSAMError as error:  # remembered by the pool, answered as 503 to requests for it
                LOGGER.warning("lang-sam: could not preload SAM %s: %s", name, error)

    def decode_request(self, request) -> PredictRequest | EverythingRequest | EmbedRequest | DecodeRequest | Rejected:  # a JSON object or a multipart FormData
        try:
            return parse_request(request, self.pool.settings.sam_type, self.limits, self.pool.check, self.pool.check_detector,
                                 self.pool.check_semantic)
        except LangSAMError as error:  # one bad request must not fail the others in its batch
            return Rejected(422 if isinstance(error, InvalidOptionError) else 400, str(error))
        except Exception as error:  # noqa: BLE001 - a body no check foresaw is still only its own 400
            return Rejected(400, f"The request could not be read ({type(error).__name__}: {error}).")

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, inputs):
        if not isinstance(inputs, list):  # max_batch_size == 1: LitServe passes one input
            return predict_batch(self.pool, [inputs], self.store, self.files)[0]
        LOGGER.info("lang-sam: a batch of %d requests", len(inputs))
        return predict_batch(self.pool, inputs, self.store, self.files)

    def unbatch(self, outputs: list) -> list:
        return outputs

    def encode_response(self, output):
        if isinstance(output, Rejected):
            return JSONResponse({"detail": output.detail}, status_code=output.status)
        request, result, model = output
        if isinstance(request, RasterRequest):
            return JSONResponse({**result, "model": model}, media_type="application/geo+json")
        if isinstance(request, EmbedRequest):
            image_id, cached = result
            height, width = request.image.shape[:2]
            return {"image_id": image_id, "sam_type": request.sam_type, "image": {"height": height, "width": width},
                    "model": model, "cached": cached}
        if isinstance(request, DecodeRequest):
            return {"image_id": request.image_id, **response_json(result, model)}
        if isinstance(request, EverythingRequest):
            from lang_sam.everything import draw_everything, everything_json

            draw = partial(draw_everything, request.image, result)  # drawn only when asked for
            answer = {"model": model, **everything_json(result)}
        else:
            draw = partial(draw_image, request.image, result)
            answer = response_json(result, model)
        if request.response_format == "png":
            return _png(draw())
        if request.include_drawing:  # the mounted app shows the server's drawing: no mask decoded there
            answer["drawing"] = base64.b64encode(_png(draw()).body).decode("ascii")
        return answer


def _png(drawing) -> Response:
    buffer = io.BytesIO()
    Image.fromarray(drawing).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")


def predict_batch(pool: ModelPool, inputs: list, store: EmbeddingStore, files: ServerFiles | None = None) -> list:
    """One predict call per group of requests with equal options; a failing group is retried one by
    one, so that only the request at fault gets an error. Requests of the other modes (everything,
    embed, decode) run one by one; store keeps the embeddings of embed for decode; files holds the
    cancel flags, looked at by mode=everything before each point batch."""
    outputs: list = list(inputs)
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(inputs):
        if isinstance(item, PredictRequest):
            groups.setdefault(item.options, []).append(index)
        elif isinstance(item, EverythingRequest):
            outputs[index] = _answer(item, partial(_everything, pool, item, files), pool)
        elif isinstance(item, RasterRequest):
            outputs[index] = _answer(item, partial(_raster, pool, item, files), pool)
        elif isinstance(item, EmbedRequest):
            outputs[index] = _answer(item, partial(_embed, pool, store, item), pool)
        elif isinstance(item, DecodeRequest):
            outputs[index] = _answer(item, partial(_decode, pool, store, item), pool)
    for (sam_type, detector, box_threshold, text_threshold, max_detections, nms_iou_threshold, multimask_output, _), indices in groups.items():
        requests = [inputs[i] for i in indices]

        def run(chosen: list[PredictRequest]) -> list[LangSAMResult]:
            options = dict(detector=detector, box_threshold=box_threshold, text_threshold=text_threshold,
                           max_detections=max_detections, nms_iou_threshold=nms_iou_threshold, multimask_output=multimask_output)
            if chosen[0].user_prompts:  # a request with its own clicks or boxes: alone (its group holds only it)
                own = _prompts(chosen[0].user_prompts, chosen[0].image.shape[:2])
                return [pool.predict(chosen[0].image, chosen[0].prompt, sam_type, **options, **own)]
            return pool.predict([r.image for r in chosen], [r.prompt for r in chosen], sam_type, **options)

        try:
            results = run(requests)
        except Exception:  # noqa: BLE001 - isolate the request at fault below
            results = None
        for position, (index, request) in enumerate(zip(indices, requests)):
            def alone_if_needed(position=position, request=request) -> LangSAMResult:
                return results[position] if results is not None else run([request])[0]

            outputs[index] = _answer(request, alone_if_needed, pool)
    return outputs


def _everything(pool: ModelPool, request: EverythingRequest, files: ServerFiles | None) -> Detections:
    """The generator's Detections; RequestCancelled at the first point batch after its client left."""
    def stop_if_cancelled(done: int, total: int) -> None:
        if files is not None and files.cancelled(request.token):
            LOGGER.info("lang-sam: a mode=everything client left after %d of %d point batches; its work stopped", done, total)
            raise RequestCancelled("The client left before the answer was ready; its work stopped.")

    try:
        return pool.everything(request.image, request.sam_type, progress=stop_if_cancelled, semantic=request.semantic,
                               **request.generator_options)
    finally:
        if files is not None:
            files.forget(request.token)


def _raster(pool: ModelPool, request: RasterRequest, files: ServerFiles | None) -> dict[str, Any]:
    """The uploaded raster segmented in tiles, as lang_sam.tiling.outputs.geojson (its CRS named);
    RequestCancelled at the first tile after its client left. The upload is a temporary file while it runs."""
    import tempfile
    from pathlib import Path

    from lang_sam.io.images import check_size
    from lang_sam.tiling import RasterReader
    from lang_sam.tiling.outputs import geojson

    def stop_if_cancelled(done: int, total: int) -> None:
        if files is not None and files.cancelled(request.token):
            LOGGER.info("lang-sam: a format=geojson client left after %d of %d tiles; its work stopped", done, total)
            raise RequestCancelled("The client left before the answer was ready; its work stopped.")

    try:
        with tempfile.TemporaryDirectory(prefix="lang-sam-raster-") as folder:
            path = Path(folder) / "upload"
            path.write_bytes(request.raster)
            with RasterReader(path) as reader:
                check_size((reader.width, reader.height), "The uploaded raster", request.max_pixels)
                found = pool.tiles(reader, request.prompt, request.sam_type, request.detector, tile=request.tile,
                                   overlap=request.overlap, progress=stop_if_cancelled, **request.options)
                return geojson(found, reader.transform, reader.crs)
    finally:
        if files is not None:
            files.forget(request.token)


class _UnknownImage(LookupError):
    """A decode names an image_id whose embedding is not (or no longer) kept: answered 404."""


def _embed(pool: ModelPool, store: EmbeddingStore, request: EmbedRequest) -> tuple[str, bool]:
    """(image_id, whether it was kept already): the embedding is computed only if not."""
    image_id = image_key(request.image)
    if store.touch(request.sam_type, image_id):
        return image_id, True
    store.put(request.sam_type, image_id, pool.embed(request.image, request.sam_type))
    return image_id, False


def _decode(pool: ModelPool, store: EmbeddingStore, request: DecodeRequest) -> LangSAMResult:
    embedding = store.get(request.sam_type, request.image_id, device=pool.settings.device)
    if embedding is None:
        raise _UnknownImage(
            f"No embedding of image {request.image_id} for SAM {request.sam_type} is kept (the server keeps the "
            f"last {store.capacity}); POST the image to /embed again, then decode."
        )
    multimask = {} if request.multimask_output is None else {"multimask_output": request.multimask_output}
    return pool.decode(embedding, request.sam_type, **multimask, **_prompts(request.user_prompts, embedding.original_size))


def _prompts(user_prompts: dict, image_size: tuple[int, int]) -> dict:
    """A request's own prompts as LangSAM.predict takes them; a COCO RLE mask becomes SAM's mask_input."""
    prompts = dict(user_prompts)
    rle = prompts.pop("mask", None)
    if rle is not None:
        from lang_sam.results import decode_rle
        from lang_sam.segmenter.processing import mask_to_low_res_logits

        if tuple(rle["size"]) != tuple(image_size):
            raise InvalidPromptError(f"The mask is {rle['size'][0]}x{rle['size'][1]}, the image {image_size[0]}x"
                                     f"{image_size[1]}; send the mask of this image.")
        try:
            mask = decode_rle(rle)
        except Exception:  # noqa: BLE001 - pycocotools raises several types for bad counts
            raise InvalidPromptError("The mask's RLE counts could not be decoded.") from None
        prompts["mask_input"] = mask_to_low_res_logits(mask)
    return prompts


def _answer(request, compute, pool: ModelPool):
    """(request, what compute() returns, the model's description), or the Rejected that says why not."""
    try:
        detector = request.detector if isinstance(request, (PredictRequest, RasterRequest)) else None
        semantic = request.semantic if isinstance(request, EverythingRequest) else None
        return request, compute(), pool.describe(request.sam_type, detector, semantic)
    except _UnknownImage as error:
        return Rejected(404, str(error))
    except RequestCancelled as error:  # nobody reads it: the status says what happened, in logs
        return Rejected(499, str(error))
    except LangSAMError as error:
        return Rejected(503 if _is_model_problem(error) else 400, str(error))
    except Exception as error:  # noqa: BLE001 - a model failure answers this request only
        return Rejected(500, f"The model failed on this request ({type(error).__name__}: {error}).")


def _is_model_problem(error: LangSAMError) -> bool:
    return not isinstance(error, (InvalidImageError, InvalidPromptError, InvalidOptionError))
