"""Evaluation: correlation statistics (``stats``), the one scoring loop (``runner``), the
adversarial robustness protocol (``robustness``), figures and tables (``report``) and the job
behind ``eval.py`` (``job``, which needs the ``data`` extras)."""
