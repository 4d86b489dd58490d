"""polyroute: language routing in Mixture-of-Experts LLMs, and adaptation or steering built on it."""

__version__ = "0.1.0"
