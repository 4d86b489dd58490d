"""One function per workflow step, taking plain arguments: the rules' scripts only unpack
`snakemake.*` and call these, so every step also runs (and is tested) outside Snakemake."""
