"""Speed benchmarks of birqa_jax (see benchmarks/README.md): python -m benchmarks.report."""
