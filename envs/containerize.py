"""Print the Apptainer definition of all envs/ (Snakemake's own `--containerize apptainer`), without conda.

    .venv/bin/python envs/containerize.py > envs/apptainer.def      # from the repository root

Snakemake asks conda only for its platform name, to look for `envs/<env>.<platform>.pin.txt`;
polyroute ships no pin files (tests/unit/test_envs.py checks), so that lookup is skipped here and
the output equals `snakemake --containerize apptainer` on a machine with conda.
"""

from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.deployment.conda import Env
from snakemake.settings.types import OutputSettings, ResourceSettings

Env.pin_file = None  # no pin files: see the docstring

with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path("Snakefile"))
    workflow.dag().containerize(fmt="apptainer")
