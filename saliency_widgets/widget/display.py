"""Show a widget once: ``sw.show`` / ``sw.explore`` display the widget and return it.

When such a call ends a cell, IPython would display the returned widget a second time; the
mixin skips exactly that one display (the same execution count), and only that one.
"""

from __future__ import annotations

from typing import TypeVar

W = TypeVar("W")


class DisplayOnce:
    """Mixin for an anywidget: ``shown(widget)`` displays it now and skips the echo."""

    _suppress_display_at: int | None = None

    def _ipython_display_(self) -> None:
        from IPython import get_ipython
        from IPython.display import display

        ip = get_ipython()
        count = getattr(ip, "execution_count", None)
        if self._suppress_display_at is not None and self._suppress_display_at == count:
            self._suppress_display_at = None
            return
        data = self._repr_mimebundle_()  # type: ignore[attr-defined]
        if isinstance(data, tuple):
            display(data[0], metadata=data[1], raw=True)  # type: ignore[no-untyped-call]
        elif data:
            display(data, raw=True)  # type: ignore[no-untyped-call]  # IPython is untyped


def shown(widget: W) -> W:
    """Display ``widget`` in a Jupyter kernel (nowhere else) and return it."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return widget
    ip = get_ipython()
    if ip is not None and getattr(ip, "kernel", None) is not None:
        display(widget)  # type: ignore[no-untyped-call]
        widget._suppress_display_at = getattr(ip, "execution_count", None)  # type: ignore[attr-defined]
    return widget
