"""Prompt grammar, captions with one token span per class, and long prompts split by whole classes."""

from __future__ import annotations

import pytest

from lang_sam import InvalidPromptError
from lang_sam.detector.prompts import build_caption, parse_classes, split_into_captions


@pytest.mark.parametrize(
    "prompt", ["car, wheel", "car. wheel.", "Car . WHEEL", " car,,wheel ,", "car\nwheel", "car\r\nwheel\n", "car, wheel, car"]
)
def test_equivalent_prompts_mean_the_same_classes(prompt):
    assert parse_classes(prompt) == ["car", "wheel"]


def test_multi_word_classes_keep_their_words_and_order():
    assert parse_classes("Traffic   light, person,dog. traffic light") == ["traffic light", "person", "dog"]


def test_non_ascii_and_control_characters():
    assert parse_classes("café\tau lait, 🐶 dog, \x00chat") == ["café au lait", "🐶 dog", "chat"]


@pytest.mark.parametrize("prompt", ["", "   ", ",,,", ". . .", "\n\n", "123, 456", "🙂"])
def test_prompts_without_a_class_are_rejected(prompt):
    with pytest.raises(InvalidPromptError, match="names no class"):
        parse_classes(prompt)


@pytest.mark.parametrize("prompt", [None, 3, {"car"}, b"car"])  # a list of names is allowed: see below
def test_prompt_must_be_text(prompt):
    with pytest.raises(InvalidPromptError, match="must be a string"):
        parse_classes(prompt)


def test_each_class_owns_its_token_span(bert_tokenizer):
    caption = build_caption(["car", "traffic light", "sneakers"], bert_tokenizer)
    assert caption.text == "car . traffic light . sneakers ."
    tokens = bert_tokenizer.convert_ids_to_tokens(bert_tokenizer(caption.text)["input_ids"])
    assert [tokens[start:end] for start, end in caption.token_spans] == [["car"], ["traffic", "light"], ["sneakers"]]


def test_word_pieces_stay_inside_their_class(bert_tokenizer):
    caption = build_caption(["dog", "zyxwvut"], bert_tokenizer)
    tokens = bert_tokenizer.convert_ids_to_tokens(bert_tokenizer(caption.text)["input_ids"])
    start, end = caption.token_spans[1]
    assert end - start > 1 and all(token != "." for token in tokens[start:end])
    assert "".join(token.removeprefix("##") for token in tokens[start:end]) == "zyxwvut"


def test_long_prompts_are_split_by_whole_classes(bert_tokenizer):
    classes = [f"object number {index}" for index in range(1000)]
    captions = split_into_captions(classes, bert_tokenizer, max_tokens=256)
    assert len(captions) > 1
    assert [name for caption in captions for name in caption.classes] == classes
    for caption in captions:
        assert len(bert_tokenizer(caption.text)["input_ids"]) <= 256


def test_a_class_longer_than_the_encoder_is_an_error(bert_tokenizer):
    with pytest.raises(InvalidPromptError, match="longer than the text encoder"):
        split_into_captions(["word " * 300], bert_tokenizer, max_tokens=256)


def test_short_prompt_is_one_caption(bert_tokenizer):
    captions = split_into_captions(["car", "wheel"], bert_tokenizer, max_tokens=256)
    assert len(captions) == 1 and captions[0].classes == ["car", "wheel"]


def test_a_list_of_class_names_is_taken_as_it_is():
    assert parse_classes(["St. Bernard", " Cat ", "cat", "race\tcar", "a, b"]) == ["st. bernard", "cat", "race car", "a, b"]
    with pytest.raises(InvalidPromptError, match="list of class names"):
        parse_classes(["cat", 3])
    with pytest.raises(InvalidPromptError, match="names no class"):
        parse_classes([" ", "..."])
