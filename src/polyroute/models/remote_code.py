"""Whether code shipped with a checkpoint may run (DESIGN: trust_remote_code off unless the config turns it on).

Even when turned on, a checkpoint whose ``model_type`` transformers implements loads with transformers'
own code: the shipped files never run. Only an architecture transformers does not know runs its own
code, after a loud warning that names the files.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def shipped_code(model_id: str, raw_config: dict) -> list[str]:
    """The Python files a checkpoint ships: a local directory's ``*.py``, else the modules its auto_map names."""
    if Path(model_id).is_dir():
        return sorted(p.name for p in Path(model_id).glob("*.py"))
    refs = [v for value in raw_config.get("auto_map", {}).values() for v in (value if isinstance(value, list) else [value])]
    return sorted({ref.split("--")[-1].split(".")[0] + ".py" for ref in refs if isinstance(ref, str)})


@functools.lru_cache(maxsize=None)
def allowed_remote_code(model_id: str, revision: str | None, requested: bool) -> bool:
    """The trust_remote_code to pass to transformers for this checkpoint (decided, and warned, once)."""
    if not requested:
        return False
    from transformers import CONFIG_MAPPING, PretrainedConfig

    raw, _ = PretrainedConfig.get_config_dict(model_id, revision=revision)
    model_type = raw.get("model_type")
    if model_type in CONFIG_MAPPING:
        log.info("%s: transformers implements model_type %r, so the checkpoint's own code does not run "
                 "(model.trust_remote_code: true is ignored)", model_id, model_type)
        return False
    files = shipped_code(model_id, raw)
    log.warning("RUNNING CODE SHIPPED WITH %s (model_type %r, model.trust_remote_code: true): %s. It runs with "
                "your permissions: read it first, or use a transformers-native checkpoint", model_id, model_type,
                ", ".join(files) or "files named in its config's auto_map")
    return True
