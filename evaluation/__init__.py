"""Evaluation of labels, or of any detector's COCO results, against annotated sets."""
