"""Evaluation: leave-one-kernel-out (`python -m chronos.eval +exp=loko`) and run reports."""
