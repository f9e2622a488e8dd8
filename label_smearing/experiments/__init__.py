"""Experiments outside the pipeline's plan: the paper's synthetic Figure 1, Figure 5 and Theorem 1."""
