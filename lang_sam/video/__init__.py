"""Video: frames read lazily (frames.py), detections matched to tracks (association.py) and the
detect-then-propagate tracker over a video segmenter (tracker.py)."""
