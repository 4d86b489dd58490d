# Two commands from a fresh clone (README.md): `make run` (the demo, end to end) and `make test`.
# torch is installed first, pinned, so pip takes the local CPU wheel here and the CUDA build on a
# cluster instead of resolving a different release through another package.
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
STAMP := $(VENV)/.polyroute-installed
TORCH := torch==2.13.0
CORES ?= 2
RUN ?= demo
export DS_BUILD_OPS := 0
export DS_ACCELERATOR ?= cpu
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.torch_extensions

.PHONY: install run test report dag clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]" $(TORCH)
	touch $(STAMP)

run: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES)
	$(SNAKEMAKE) --cores $(CORES) --report results/$(RUN)/report.html

test: $(STAMP)
	$(PY) -m pytest

dag: $(STAMP)
	$(SNAKEMAKE) --rulegraph | dot -Tpng > docs/dag.png

clean:
	rm -rf results/$(RUN) logs/$(RUN) benchmarks/$(RUN) .snakemake
