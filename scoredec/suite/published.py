"""Published normalized scores of the anchors, shown beside ours in results/TABLE.md.

Source: the OMAR paper (Pan et al., "Plan Better Amid Conservatism: Offline Multi-Agent
Reinforcement Learning with Actor Rectification", ICML 2022), as reprinted in the MADiff paper
(Zhu et al., NeurIPS 2024, Table 1, which says its MPE baselines are Pan et al.'s numbers) and
checked cell by cell against the OMAR ICLR 2022 submission text (its Table 6 for HalfCheetah
2x3). Mean and std over that paper's seeds, normalized as in DESIGN.md 1.7.

Not here: the OMSD paper's own table (arXiv 2505.05968) could not be read from the sources
available offline (only two cells surfaced, on an aggregator site, with no baselines beside
them), and no number goes here unverified. The datasets differ too: OMAR's were collected by
its own online-trained agents, ours are made by scoredec.datagen.factory, and the cpu preset
trains for a fraction of the published steps. Compare directions, not values.
"""

from __future__ import annotations

__all__ = ["PUBLISHED", "PUBLISHED_SOURCE", "PUBLISHED_NAMES"]

PUBLISHED_SOURCE = "OMAR paper (Pan et al., ICML 2022; via MADiff Table 1)"

PUBLISHED_NAMES = {"matd3bc": "MA-TD3+BC", "macql": "MA-CQL", "omar": "OMAR"}
"""Our method name -> the paper's column."""

PUBLISHED: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("spread", "expert"): {"matd3bc": (108.3, 3.3), "macql": (98.2, 5.2), "omar": (114.9, 2.6)},
    ("spread", "medium-replay"): {"matd3bc": (15.4, 5.6), "macql": (20.0, 8.4), "omar": (37.9, 12.3)},
    ("spread", "medium"): {"matd3bc": (29.3, 4.8), "macql": (34.1, 7.2), "omar": (47.9, 18.9)},
    ("spread", "random"): {"matd3bc": (9.8, 4.9), "macql": (24.0, 9.8), "omar": (34.4, 5.3)},
    ("tag", "expert"): {"matd3bc": (115.2, 12.5), "macql": (93.9, 14.0), "omar": (116.2, 19.8)},
    ("tag", "medium-replay"): {"matd3bc": (28.7, 20.9), "macql": (24.8, 17.3), "omar": (47.1, 15.3)},
    ("tag", "medium"): {"matd3bc": (65.1, 29.5), "macql": (61.7, 23.1), "omar": (66.7, 23.2)},
    ("tag", "random"): {"matd3bc": (5.7, 3.5), "macql": (5.0, 8.2), "omar": (11.1, 2.8)},
    ("world", "expert"): {"matd3bc": (110.3, 21.3), "macql": (71.9, 28.1), "omar": (110.4, 25.7)},
    ("world", "medium-replay"): {"matd3bc": (17.4, 8.1), "macql": (29.6, 13.8), "omar": (42.9, 19.5)},
    ("world", "medium"): {"matd3bc": (73.4, 9.3), "macql": (58.6, 11.2), "omar": (74.6, 11.5)},
    ("world", "random"): {"matd3bc": (2.8, 5.5), "macql": (0.6, 2.0), "omar": (5.9, 5.2)},
    ("halfcheetah-2x3", "random"): {"matd3bc": (7.4, 0.0), "macql": (7.4, 0.0), "omar": (15.4, 12.3)},
    ("halfcheetah-2x3", "medium-replay"): {"matd3bc": (27.1, 5.5), "macql": (41.2, 10.1), "omar": (57.7, 5.1)},
    ("halfcheetah-2x3", "medium"): {"matd3bc": (75.5, 3.7), "macql": (50.4, 10.8), "omar": (80.7, 10.2)},
    ("halfcheetah-2x3", "expert"): {"matd3bc": (114.4, 3.8), "macql": (64.2, 24.9), "omar": (113.5, 4.3)},
}
"""(task, quality) -> {our method name: (published mean, std)}."""
