"""BiRQA on LIVE release 2 (realigned DMOS by default: ``data.name="live/original"`` for the
original ``dmos``; images of several sizes, evaluated one per batch at full resolution)."""

from configs import kadid10k


def get_config():
    c = kadid10k.get_config()
    c.data.name = "live/realigned"
    c.data.manual_dir = "~/datasets/live"
    c.num_steps = 4_000
    c.eval_batch_size = 1
    return c
