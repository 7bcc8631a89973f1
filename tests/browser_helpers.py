"""Drive a real JupyterLab / Notebook 7 server in headless Chromium (Playwright, sync API).

Borrowed from the team's lab_screenshot.py: a private temporary root for the server's
config, settings, runtime files and the browser profile; 127.0.0.1, a random port and token;
windowing off so every cell stays in the DOM; `window.jupyterapp` exposed for commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gates import poll

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Output text that means a widget did not render or the server dropped messages.
OUTPUT_FAILURES = (
    "Error displaying widget",
    "model not found",
    "Failed to display Jupyter Widget",
    "IOPub message rate exceeded",
    "IOPub data rate exceeded",
)

JS_APP_READY = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  return !!(w && w.sessionContext && w.content && w.content.widgets && w.content.widgets.length);
}"""

JS_KERNEL_STATUS = """async () => {
  const w = window.jupyterapp.shell.currentWidget;
  await w.sessionContext.ready;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return k ? k.status : 'no-kernel';
}"""

JS_NEXT_FRAME = """() => new Promise(
  done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"""

JS_CELLS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return {kernel: k ? k.status : 'no-kernel', cells: w.content.widgets.map(c => ({
    type: c.model.type,
    prompt: c.promptNode ? c.promptNode.textContent.trim() : '',
    count: c.model.type === 'code' ? c.model.executionCount : null,
    text: (c.node.querySelector('.jp-OutputArea') || {}).innerText || '',
    errors: c.model.type === 'code' ? c.model.outputs.toJSON()
        .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue) : [],
  }))};
}"""


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    token: str
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_settings(settings: Path) -> None:
    """All cells in the DOM, no news or update toasts over the screenshots."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
            "windowingMode": "none",
            "scrollPastEnd": False,
        },
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for rel, content in files.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


@contextlib.contextmanager
def jupyter_server(root: Path, work: Path, env_extra: dict[str, str]) -> Iterator[Server]:
    """JupyterLab (which also serves Notebook 7's /notebooks/) on 127.0.0.1; stopped after."""
    for d in ("config", "runtime", "settings", "workspaces"):
        (root / d).mkdir(parents=True, exist_ok=True)
    write_settings(root / "settings")
    expose = {"expose_app_in_browser": True}  # window.jupyterapp, for commands
    config = {"LabApp": expose, "JupyterNotebookApp": expose}
    (root / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        f"--LabApp.user_settings_dir={root / 'settings'}",
        f"--LabApp.workspaces_dir={root / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # jupyter refuses to run as root without it
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        **env_extra,
    }
    log = root / "server.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        server = Server(proc, port, token, log)
        try:
            wait_ready(server)
            yield server
        finally:
            stop(server)


def wait_ready(server: Server, timeout: float = 60) -> None:
    if not poll(lambda: answering(server), timeout, 0.2):
        raise RuntimeError(f"jupyter lab not answering after {timeout} s")


def answering(server: Server) -> bool:
    """Whether the server answers its status API; raises if it has exited."""
    if server.proc.poll() is not None:
        raise RuntimeError(f"jupyter lab exited: {server.log.read_text()[-2000:]}")
    with contextlib.suppress(OSError):
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/api/status",
            headers={"Authorization": f"token {server.token}"},
        )
        with urllib.request.urlopen(req, timeout=2) as r:
            return bool(r.status == 200)
    return False


def stop(server: Server) -> None:
    """REST shutdown (kernels too), then SIGTERM / SIGKILL of the server's process group."""
    with contextlib.suppress(OSError):
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/api/shutdown",
            method="POST",
            headers={"Authorization": f"token {server.token}"},
        )
        urllib.request.urlopen(req, timeout=5).read()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)


def wait_js(page: Any, script: str, check: Any, timeout: float = 30, what: str = "") -> Any:
    """Evaluate `script` until `check(value)` is truthy; raise after `timeout` s."""
    seen: list[Any] = []

    def met() -> bool:
        seen[:] = [page.evaluate(script)]
        return bool(check(seen[0]))

    if not poll(met, timeout, 0.2):
        raise AssertionError(f"timed out waiting for {what or script[:80]}: {seen[0]!r}")
    return seen[0]


def open_notebook(page: Any, server: Server, path: str) -> None:
    """Open a notebook page and wait until its kernel is idle."""
    page.goto(server.url(path), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function(JS_APP_READY, timeout=60_000, polling=200)
    wait_js(page, JS_KERNEL_STATUS, lambda s: s == "idle", 60, "an idle kernel")


def fit_viewport(page: Any, width: int = 1400, max_height: int = 3000) -> None:
    """Grow the viewport so the whole notebook is in one screenshot."""
    need = page.evaluate(
        """() => {
      const w = window.jupyterapp.shell.currentWidget;
      const outer = w.node.querySelector('.jp-WindowedPanel-outer') || w.content.node;
      return Math.ceil(window.innerHeight + Math.max(0, outer.scrollHeight - outer.clientHeight)
                       + 10);
    }"""
    )
    height = max(700, min(int(need), max_height))
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function("h => window.innerHeight === h", arg=height, timeout=10_000)
    page.evaluate(JS_NEXT_FRAME)  # the layout's resize, done in an animation frame, is drawn
