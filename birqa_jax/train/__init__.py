"""Training: the data-parallel train step with the fused adversarial attack (``step``), the
losses (``losses``), Theorem 1's anchor diagnostics (``theorem1``), Orbax checkpoints
(``checkpoints``) and the resumable loop behind ``train.py`` (``loop``).

``loop`` needs the ``data`` extras (tensorflow-datasets, grain, ml-collections); import it as
``birqa_jax.train.loop``. Everything else here runs without them.
"""
