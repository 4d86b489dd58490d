"""Job sizing before a cluster run: model size -> GPUs and host memory, data -> work, work -> GPU time.

`polyroute plan` prints it per rule (offline: no GPU, no download); the workflow's GPU rules take their
Slurm `gpu`, `mem_mb` and `runtime` from the same functions (`polyroute.sizing.resources`), and
`polyroute calibrate` measures the throughput figures on the user's own GPU.
"""
