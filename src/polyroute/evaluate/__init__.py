"""Evaluation of base and adapted models: tasks, scoring, generation, metrics, results."""
