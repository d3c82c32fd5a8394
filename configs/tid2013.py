"""BiRQA on TID2013 (512x384 BMP; 25 references, reference-disjoint 6:2:2 splits)."""

from configs import kadid10k


def get_config():
    c = kadid10k.get_config()
    c.data.name = "tid2013"
    c.data.manual_dir = "~/datasets/tid2013"
    c.num_steps = 8_000
    return c
