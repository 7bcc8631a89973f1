"""Drive a real IPython kernel the way Jupyter runs a notebook's kernel (jupyter_client)."""

from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import Any


class Kernel:
    """An IPython kernel run the way Jupyter runs a notebook's kernel."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        from jupyter_client import KernelManager

        self.env = env
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(cwd), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 90, streams: tuple[str, ...] = ("stdout",)) -> str:
        """Execute a cell until the kernel is idle again; the text of its output `streams`
        (stdout, stderr) as the cell shows it, or fail with its error."""
        out: list[str] = []
        errors: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream" and content["name"] in streams:
                out.append(content["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(content["traceback"]))

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=collect)
        assert reply["content"]["status"] == "ok", "\n".join(errors)
        return "".join(out)

    def json(self, code: str, timeout: float = 90) -> Any:
        """Run a cell whose last printed line is JSON; return it decoded."""
        return json.loads(self.run(code, timeout).strip().splitlines()[-1])

    def restart(self, now: bool, env: dict[str, str] | None = None) -> None:
        """Kernel > Restart: `now=False` asks the kernel to shut down, `now=True` kills it.
        `env` replaces the kernel's environment from now on."""
        if env is not None:
            self.env = env
        self.manager.restart_kernel(now=now, env=self.env)
        self.client.wait_for_ready(timeout=60)
        while True:
            try:
                self.client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                return

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
