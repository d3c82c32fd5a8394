"""BiRQA on CSIQ (512x512 PNG, DMOS flipped to higher = better)."""

from configs import kadid10k


def get_config():
    c = kadid10k.get_config()
    c.data.name = "csiq"
    c.data.manual_dir = "~/datasets/csiq"
    c.num_steps = 4_000
    return c
