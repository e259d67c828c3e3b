"""Files shipped with dinogen: the bundled names list, the YAML configs and the pretrained dinosaur model."""

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# In a wheel the files are copied into the package; in a source checkout they sit beside it.
_ROOTS = (_PACKAGE / "_bundled", _PACKAGE.parent)
# The default config trained on the bundled list, kept without its training state (tools/bundle_model.py).
BUNDLED_MODEL = _PACKAGE / "pretrained" / "dinos.pt"


def bundled_file(relative: str | Path) -> Path | None:
    """The shipped file at `relative` (e.g. 'configs/default.yaml'), or None if there is none."""
    for root in _ROOTS:
        candidate = root / relative
        if os.path.isfile(candidate):  # os.path: a name too long for the system is just absent
            return candidate
    return None


def bundled_configs() -> list[str]:
    """Names of the shipped configs, e.g. ['default', 'gru', ...]."""
    for root in _ROOTS:
        if (root / "configs").is_dir():
            return sorted(p.stem for p in (root / "configs").glob("*.yaml"))
    return []


def bundled_model() -> Path | None:
    """The pretrained dinosaur model that comes with dinogen, or None if this copy lacks it."""
    return BUNDLED_MODEL if os.path.isfile(BUNDLED_MODEL) else None
