"""Whole datasets: label image folders into COCO (and YOLO) files, and measure quality with COCO metrics."""
