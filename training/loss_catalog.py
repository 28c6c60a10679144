"""The loss registry for the training side, readable without importing Keras.

`losses/__init__.py` imports every loss module, and with them Keras and TensorFlow (about 6 s).
Config validation and `--help` need only the catalogue (`losses/catalog.py` and
`losses/spec.py`, standard library only). So the two files are loaded under their own names,
`losses.spec` and `losses.catalog`, without running the package's `__init__`; when the
package is imported later it finds them in `sys.modules` and reuses them, so there is still
one registry. Names the catalogue does not hold (a user's "module:Class" path, or a loss a
plugin registered) are resolved by the full package, which is then imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from training.errors import ConfigError


def catalog():
    """The `losses.catalog` module (loaded without Keras unless `losses` is imported)."""
    if "losses.catalog" in sys.modules:
        return sys.modules["losses.catalog"]
    found = importlib.util.find_spec("losses")  # locates the package without running it
    if found is None or not found.submodule_search_locations:
        raise ConfigError("the losses package is not installed (make venv installs it)")
    folder = Path(next(iter(found.submodule_search_locations)))
    for name in ("spec", "catalog"):
        spec = importlib.util.spec_from_file_location(f"losses.{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["losses.catalog"]


def import_plugins(plugins: str | None) -> None:
    """Imports each comma-separated module of `plugins=` (it registers its losses)."""
    for module in filter(None, (m.strip() for m in (plugins or "").split(","))):
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 (the user's module: report any failure)
            raise ConfigError(
                f"plugins={module!r} does not import ({type(exc).__name__}: {exc})"
            ) from None


def loss_spec(name: str):
    """The `LossSpec` of `name`: from the catalogue, else from the full package (a user's
    import path or a registered plugin loss). Raises ConfigError naming the valid losses."""
    found = catalog().find(name)
    if found is not None:
        return found
    if ":" not in name and "losses" not in sys.modules:
        raise ConfigError(str(catalog().unknown(name)))
    try:
        return importlib.import_module("losses").spec(name)  # Keras: only for such names
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
