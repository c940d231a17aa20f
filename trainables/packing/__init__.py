"""Packed trials: K small trials of one shape trained as one stacked computation (DESIGN.md §Pack).

model.py   stacked layers (a leading member axis) and SGD with per-member hyper-parameters
pack.py    a pack: its members (ordinary Trials), stored once per sweep as JSON
loop.py    the pack's training loop: per-member init, batches, learning rates, masks, divergence and rows
"""
