"""Video: frames read lazily (frames.py), detections matched to tracks (association.py), the
detect-then-propagate tracker over a video segmenter (tracker.py) and clicked objects followed
through a video (clicks.py)."""
