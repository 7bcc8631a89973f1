"""The widget toolkit: the only module that imports ipywidgets and IPython.

The views build their widgets from the classes re-exported here, set traits with
`set_traits` (only what changed is sent: the IOPub rate limit drops floods), and ask
`cell_context()` / `in_kernel()` about the kernel they run in.
"""

from __future__ import annotations

from typing import Any

from ipywidgets import (
    HTML,
    Button,
    Dropdown,
    FloatProgress,
    HBox,
    Layout,
    Text,
    VBox,
    Widget,
)

__all__ = [
    "CSS",
    "HTML",
    "WIDGET_MIME",
    "Button",
    "Dropdown",
    "FloatProgress",
    "HBox",
    "Layout",
    "Text",
    "VBox",
    "Widget",
    "cell_context",
    "close_tree",
    "display",
    "in_kernel",
    "root",
    "set_traits",
    "show_if",
]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

CSS = """<style>
.nbjobs-root { font-family: var(--jp-ui-font-family); font-size: var(--jp-ui-font-size1);
  color: var(--jp-ui-font-color1); }
.nbjobs-root .widget-html-content { line-height: 1.45; }
.nbjobs-panel { border: 1px solid var(--jp-border-color2); border-radius: 6px;
  padding: 6px 10px 8px; background: var(--jp-layout-color1); max-width: 1180px; }
.nbjobs-job { border: 1px solid var(--jp-border-color2); border-radius: 6px;
  padding: 4px 10px; background: var(--jp-layout-color1); max-width: 760px; }
.nbjobs-muted { color: var(--jp-ui-font-color2); }
.nbjobs-err { color: var(--jp-error-color1); }
.nbjobs-ok { color: var(--jp-success-color1); }
.nbjobs-code { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size); }
.nbjobs-row { border-top: 1px solid var(--jp-border-color3); align-items: center; }
.nbjobs-row:hover { background: var(--jp-layout-color2); }
.nbjobs-th { font-size: var(--jp-ui-font-size0); color: var(--jp-ui-font-color2);
  text-transform: uppercase; letter-spacing: .04em; }
.nbjobs-line { display: flex; align-items: center; white-space: nowrap; overflow: hidden; }
.nbjobs-c { flex: 0 0 auto; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  padding-right: 8px; box-sizing: border-box; }
.nbjobs-name { width: 250px; } .nbjobs-status { width: 95px; }
.nbjobs-msg { width: 200px; } .nbjobs-prog { width: 326px; }
.nbjobs-att { width: 48px; text-align: right; }
.nbjobs-start { width: 78px; } .nbjobs-el { width: 64px; text-align: right; }
.nbjobs-out { flex: 1 1 auto; min-width: 60px; padding-left: 8px; }
.nbjobs-when { width: 265px; } .nbjobs-next { width: 110px; }
.nbjobs-sched { align-items: center; }
.nbjobs-busy { position: relative; overflow: hidden; height: 8px; border-radius: 4px;
  background: var(--jp-layout-color3); }
.nbjobs-busy::after { content: ''; position: absolute; top: 0; bottom: 0; width: 35%;
  background: var(--jp-brand-color1); border-radius: 4px;
  animation: nbjobs-slide 1.4s ease-in-out infinite; }
@keyframes nbjobs-slide { from { left: -35%; } to { left: 100%; } }
@media (prefers-reduced-motion: reduce) { .nbjobs-busy::after { animation: none; left: 0;
  width: 100%; opacity: .4; } }
.nbjobs-pre { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size);
  background: var(--jp-layout-color2); color: var(--jp-content-font-color1);
  padding: 6px 8px; margin: 4px 0; max-height: 260px; overflow: auto; white-space: pre; }
.nbjobs-details { border-left: 3px solid var(--jp-brand-color2); margin: 2px 0 8px 34px;
  padding: 4px 10px; background: var(--jp-layout-color1); }
.nbjobs-details table { border-collapse: collapse; }
.nbjobs-details td, .nbjobs-details th { padding: 1px 12px 1px 0; text-align: left;
  vertical-align: top; }
.nbjobs-root .widget-button { height: 24px; line-height: 24px; }
.nbjobs-stack { flex: 0 0 auto; display: inline-flex; height: 10px; margin-right: 10px;
  border-radius: 5px; overflow: hidden; background: var(--jp-layout-color3); }
.nbjobs-seg { display: block; height: 100%; }
.nbjobs-gline { width: 310px; font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size); }
.nbjobs-group { align-items: center; border-top: 1px solid var(--jp-border-color3);
  background: var(--jp-layout-color2); }
.nbjobs-root .nbjobs-pill.widget-button { height: 20px; line-height: 20px; font-size: 0.85em;
  border-radius: 10px; padding: 0 8px; width: auto; }
.nbjobs-toggle.widget-button { width: 28px; padding: 0; background: transparent;
  color: var(--jp-ui-font-color2); box-shadow: none; }
</style>"""


def set_traits(widget: Widget, **values: Any) -> int:
    """Set only the traits whose value differs; returns how many were set (= messages sent).

    >>> set_traits(HTML("a"), value="a")
    0
    """
    n = 0
    for name, value in values.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)
            n += 1
    return n


def show_if(widget: Widget, visible: bool) -> int:
    """Show or hide a widget; returns 1 if that changed (a message sent), else 0."""
    return set_traits(widget.layout, display="" if visible else "none")


def root(kind: str, children: list[Widget]) -> VBox:
    """The outer box of a view (`kind`: its CSS class): our style sheet, then `children`."""
    box = VBox([HTML(CSS, layout=Layout(display="none")), *children])
    box.add_class("nbjobs-root")
    box.add_class(kind)
    return box


def cell_context() -> tuple[str | None, str | None]:
    """(cell id, request message id) of the cell being executed, or (None, None)."""
    try:
        import IPython

        kernel = getattr(IPython.get_ipython(), "kernel", None)
        parent = kernel.get_parent() if kernel is not None else None
    except Exception:
        return None, None
    if not parent:
        return None, None
    cell = (parent.get("metadata") or {}).get("cellId")
    return cell, (parent.get("header") or {}).get("msg_id")


def display(obj: Any) -> None:
    """Display `obj` in the output of the cell being run (IPython's `display`)."""
    from IPython.display import display as show

    show(obj)  # type: ignore[no-untyped-call]


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can render)."""
    try:
        import IPython
    except ImportError:
        return False
    return getattr(IPython.get_ipython(), "kernel", None) is not None


def close_tree(widget: Widget) -> None:
    """Close a widget, the widgets it contains and their layouts and styles.

    `Widget.close()` closes only the one model: ipywidgets keeps every open model (and
    the callbacks it holds) for the rest of the session.
    """
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
        if isinstance(part, Widget):
            part.close()
    widget.close()
