"""Training and evaluation configs (``get_config()`` in each module), and ``override``, the one
dotted-key setter that recipes (``robust.py``) and the robustness study's arms share."""

from collections.abc import Mapping
from typing import Any


def override(config, overrides: Mapping[str, Any]):
    """Set ``config``'s dotted fields in place (``{"loss.plcc": 1.0}``) and return it. A value
    that is callable is called with the config first (e.g. a fraction of ``num_steps``)."""
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = config
        for part in path:
            node = node[part]
        node[last] = value(config) if callable(value) else value
    return config
