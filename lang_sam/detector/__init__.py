"""Text prompt to boxes: Grounding DINO through transformers, with one user class per box."""

from lang_sam.detector.grounding_dino import DEFAULT_DETECTOR, DETECTOR_MODELS, DetectorInput, GroundingDinoDetector
from lang_sam.detector.postprocess import BoxDetections
from lang_sam.detector.prompts import parse_classes

__all__ = ["DEFAULT_DETECTOR", "DETECTOR_MODELS", "BoxDetections", "DetectorInput", "GroundingDinoDetector", "parse_classes"]
