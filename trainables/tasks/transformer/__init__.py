"""Transformer base on WMT14 en-de: the model, the text pipeline, BLEU, the study's recipe."""
