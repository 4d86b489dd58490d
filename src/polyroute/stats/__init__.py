"""Routing statistics: pure functions over xarray (no torch), METHODS sections 2-4.

`compute_stats(routing_ds, reference=...)` gives the statistics store; the building blocks are
importable one by one for notebooks.
"""

from polyroute.stats.compute import compute_stats, tables, write_tables
from polyroute.stats.consistency import routing_consistency
from polyroute.stats.correlation import pair_correlation, score_correlation
from polyroute.stats.distributions import frequency, hard_distribution, sequence_distributions, soft_distribution
from polyroute.stats.information import divergence_from_reference, entropy, jsd, similarity, specialisation
from polyroute.stats.isolation import top_expert_overlap
from polyroute.stats.parallel import divergence_parallel
from polyroute.stats.shift import routing_shift
from polyroute.stats.vocabulary import vocabulary_overlap, vocabulary_similarity_correlation
from polyroute.stats.zones import depth_zones

__all__ = [
    "compute_stats", "tables", "write_tables", "routing_consistency", "depth_zones", "pair_correlation",
    "score_correlation", "frequency", "hard_distribution", "soft_distribution", "sequence_distributions",
    "divergence_from_reference", "entropy", "jsd", "similarity", "specialisation", "top_expert_overlap",
    "divergence_parallel", "routing_shift", "vocabulary_overlap", "vocabulary_similarity_correlation",
]
