"""The intervention kinds and their defaults (no torch: the config checks read them)."""

KINDS = ("mask", "soft", "hard", "affinity")
DEFAULT_STRENGTH = {"soft": 0.5, "affinity": 0.022}  # Bandarkar's lambda; Chen's lambda
DEFAULT_EPS = 1e-3  # the margin of `hard` over the token's largest logit
TAKES_STRENGTH = tuple(DEFAULT_STRENGTH)
VARIANT_PREFIX = {"mask": "mask", "soft": "steer", "hard": "steer", "affinity": "steer"}
