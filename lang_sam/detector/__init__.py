"""Text prompt to boxes: Grounding DINO through transformers, with one user class per box."""

from lang_sam.detector.grounding_dino import DetectorInput, GroundingDinoDetector
from lang_sam.detector.prompts import parse_classes
from lang_sam.registry import DEFAULT_DETECTOR, DETECTORS

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "DetectorInput", "GroundingDinoDetector", "parse_classes"]
