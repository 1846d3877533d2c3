"""lang-segment-anything's argument names reach LangSAM under its own names, one name per value."""

from __future__ import annotations

import pytest

from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.pipeline import compat
from lang_sam.registry import DEFAULT_DETECTOR


class Recorder:
    """Stands in for LangSAM: records what the wrapped methods receive."""

    @compat.old_init_names
    def __init__(self, sam_type=None, sam_checkpoint=None, detector=DEFAULT_DETECTOR, device=None, **options):
        self.received = dict(sam_type=sam_type, sam_checkpoint=sam_checkpoint, detector=detector, device=device, **options)

    @compat.old_predict_names
    def predict(self, images=None, prompts=None, box_threshold=0.3, *, classes=None, **options):
        return dict(images=images, prompts=prompts, box_threshold=box_threshold, classes=classes, **options)


@pytest.mark.parametrize("given, expected", [
    (dict(ckpt_path="a.pth"), dict(sam_checkpoint="a.pth", detector=DEFAULT_DETECTOR)),
    (dict(sam_ckpt_path="a.pth", gdino_model_ckpt_path="gd"), dict(sam_checkpoint="a.pth", detector="gd")),
    (dict(gdino_model_ckpt_path="gd", detector=DEFAULT_DETECTOR), dict(sam_checkpoint=None, detector="gd")),
    (dict(sam_checkpoint="b.pth", detector="owl"), dict(sam_checkpoint="b.pth", detector="owl")),
])
def test_old_init_names_become_sam_checkpoint_and_detector(given, expected):
    received = Recorder(**given).received
    assert {name: received[name] for name in expected} == expected


def test_a_positional_detector_is_replaced_by_gdino_model_ckpt_path_only_when_it_is_the_default():
    assert Recorder("vit_b", None, DEFAULT_DETECTOR, "cpu", gdino_model_ckpt_path="gd").received["detector"] == "gd"
    assert Recorder("vit_b", None, DEFAULT_DETECTOR, "cpu", gdino_model_ckpt_path="gd").received["device"] == "cpu"
    with pytest.raises(InvalidOptionError, match="detector= or gdino_model_ckpt_path="):
        Recorder("vit_b", None, "owl", gdino_model_ckpt_path="gd")
    with pytest.raises(InvalidOptionError, match="sam_checkpoint and sam_ckpt_path"):
        Recorder(sam_checkpoint="a", sam_ckpt_path="b")


def test_old_predict_names_become_images_and_prompts():
    recorder = Recorder()
    assert recorder.predict(image_pil="img", text_prompt="cat", box_threshold=0.1) == dict(
        images="img", prompts="cat", box_threshold=0.1, classes=None)
    assert recorder.predict(images_pil=["a", "b"], texts_prompt=["cat", "dog"])["prompts"] == ["cat", "dog"]
    assert recorder.predict("img", classes=["a.b"]) == dict(images="img", prompts=None, box_threshold=0.3, classes=["a.b"])
    with pytest.raises(InvalidOptionError, match="text_prompt and classes"):
        recorder.predict("img", text_prompt="cat", classes=["cat"])
    with pytest.raises(InvalidOptionError, match="images and images_pil"):
        recorder.predict("img", "cat", images_pil=["img"])


def test_classes_are_one_list_per_image_and_never_a_string():
    assert compat.class_lists(("a.b", "c,d"), 2) == [["a.b", "c,d"], ["a.b", "c,d"]]
    with pytest.raises(InvalidPromptError, match="a string goes in prompts"):
        compat.class_lists("cat", 1)
