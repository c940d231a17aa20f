"""The ways a dependent stage's trial starts (trainables/training/reinit.py does them), torch-free for the spec."""

VARIANTS = {
    # name: (weights, time multiplier from the stage (else 1), sparsity-aware init)
    "scratch_e": ("fresh", False, False),
    "scratch_b": ("fresh", True, False),
    "lottery": ("parent", False, False),
    "sparsity_aware_init": ("fresh", False, True),
    "scratch_b_sparsity_aware_init": ("fresh", True, True),
}
