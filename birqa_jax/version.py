"""The package's version, in one place: ``birqa_jax.__version__``, ``birqa --version`` and the
package metadata (``pyproject.toml`` reads it without importing the package) all take it from
here. It imports nothing."""

__version__ = "0.1.0"
