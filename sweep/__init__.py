"""Sweeps: spec -> plan of trials -> Ray Tune run. `sparsity` is the command line."""
