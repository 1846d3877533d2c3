"""One LangSAM serving many threads: every answer equals the same call made alone, set_sam swaps
the model between calls, never inside one, and a failed encode leaves nothing in the cache."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from lang_sam import LangSAM
from lang_sam.pipeline import EmbeddingCache
from tests.detector.test_grounding_dino import ASSETS

LOOSE = {"box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 4}
IMAGES = [ASSETS / "chelsea.jpg", ASSETS / "coffee.jpg"]
PROMPTS = ["cat, sofa", "cup, spoon"]


@pytest.fixture(scope="module")
def model(sam_files, tiny_detector_dir):
    return LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")


def answer(result) -> tuple:
    return tuple(result.phrases), result.boxes.tobytes(), result.masks.tobytes(), result.mask_scores.tobytes()


def test_four_threads_get_the_answers_of_calls_made_alone(model):
    cases = [(image, prompt) for image in IMAGES for prompt in PROMPTS]
    alone = {}
    for image, prompt in cases:
        model.embeddings.clear()  # each reference call encodes its image itself
        alone[image, prompt] = answer(model.predict(image, prompt, **LOOSE))
    model.embeddings.clear()
    calls = cases * 4
    random.Random(0).shuffle(calls)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda case: answer(model.predict(*case, **LOOSE)), calls))
    for case, got in zip(calls, answers):
        assert got == alone[case], f"{case} answered from another image's embedding or model"


def test_set_sam_while_others_predict_runs_each_call_on_one_model(model, sam_files):
    image, prompt = IMAGES[0], PROMPTS[0]
    expected = {}
    for index, path in enumerate(sam_files):
        model.set_sam(sam_checkpoint=path)
        expected[answer(model.predict(image, prompt, **LOOSE))] = index
    assert len(expected) == 2, "the two SAMs give different masks"
    stop = threading.Event()
    seen = []

    def predict_until_stopped():
        while not stop.is_set():
            seen.append(answer(model.predict(image, prompt, **LOOSE)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        running = [pool.submit(predict_until_stopped) for _ in range(2)]
        for path in [*sam_files, *sam_files]:
            model.set_sam(sam_checkpoint=path)
        stop.set()
        for future in running:
            future.result()
    model.set_sam(sam_checkpoint=sam_files[0])
    assert seen and all(result in expected for result in seen), "a call mixed the two models"


def test_a_failed_encode_leaves_nothing_and_the_next_call_encodes_again(model, monkeypatch):
    model.embeddings.clear()
    encoder = model.sam.image_encoder
    original = encoder.forward

    def failing(_):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(encoder, "forward", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        model.predict(IMAGES[0], PROMPTS[0], **LOOSE)
    assert len(model.embeddings) == 0
    monkeypatch.setattr(encoder, "forward", original)
    assert model.predict(IMAGES[0], PROMPTS[0], **LOOSE).num_detections == 4


def test_two_threads_asking_for_one_new_image_encode_it_once():
    cache = EmbeddingCache(capacity=2)
    started, release = threading.Event(), threading.Event()
    encodes = []

    def slow_encode():
        encodes.append(threading.get_ident())
        started.set()
        release.wait(timeout=60)
        return torch.zeros(1)

    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(cache.get_or_encode, "image", slow_encode)
        started.wait(timeout=60)
        second = pool.submit(cache.get_or_encode, "image", slow_encode)
        release.set()
        assert first.result() is second.result()
    assert len(encodes) == 1 and len(cache) == 1
    failures = []

    def failing_encode():
        failures.append(1)
        raise ValueError("bad image")

    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get_or_encode("bad", failing_encode)
    assert failures == [1, 1] and "bad" not in cache, "a failure is not cached"
    np.testing.assert_array_equal(cache.get_or_encode("image", failing_encode), torch.zeros(1))
