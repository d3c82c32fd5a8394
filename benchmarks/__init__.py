"""Speed benchmarks of birqa_jax (see README.md): python -m benchmarks.report."""
