"""BiRQA on PIPAL's released training part (288x288; Elo scores).

PIPAL's official validation/test labels are not public, so ``split="random"`` (reference-disjoint
6:2:2 of the training part) is the default; ``--config.data.split=official`` trains on the
whole training part, for evaluation on other datasets or the NTIRE server.
"""

from configs import kadid10k


def get_config():
    c = kadid10k.get_config()
    c.data.name = "pipal"
    c.data.manual_dir = "~/datasets/pipal"
    c.data.crop_size = (224, 224)
    c.num_steps = 40_000
    return c
