"""Old module names (nbjobs 0.1's flat layout) imported as the modules they became.

Pickles written by nbjobs 0.1 name them; `import nbjobs` installs the finder, so that they
load however they are read (this module is cheap: `import nbjobs` loads little else)."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

# Where the modules of nbjobs 0.1's flat layout went: stores written then pickle these names
# (`nbjobs.refs.JobRef` in payloads, retry policies of `nbjobs.retrying`, `nbjobs.autokey.auto`).
MOVED = {
    "nbjobs.refs": "nbjobs.calls.refs",
    "nbjobs.retrying": "nbjobs.calls.retrying",
    "nbjobs.autokey": "nbjobs.calls.autokey",
    "nbjobs.arguments": "nbjobs.calls.arguments",
    "nbjobs.options": "nbjobs.calls.options",
    "nbjobs.reporting": "nbjobs.running.reporting",
    "nbjobs.runner": "nbjobs.running.runner",
    "nbjobs.recurring": "nbjobs.scheduling.manage",
    "nbjobs.job": "nbjobs.api.job",
    "nbjobs.tasks": "nbjobs.api.tasks",
    "nbjobs.workflows": "nbjobs.api.workflows",
    "nbjobs.futures": "nbjobs.api.futures",
}


class _MovedModules:
    """Imports an old module name (`MOVED`) as the module it became, so old pickles load.

    A finder and loader by their methods (`sys.meta_path` asks no more): `importlib.abc`
    would cost `import nbjobs` ~5 ms (it imports importlib.resources and its own imports)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, cast("Loader", self))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: Any) -> None:
        pass


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
