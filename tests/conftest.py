"""Session-wide test hooks."""

from __future__ import annotations

import contextlib


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    # Widgets still alive when the interpreter exits are collected after ipywidgets' module
    # globals are gone, and ipywidgets' own __del__ then prints an AttributeError per widget
    # (about 40 after a full run: 190 lines of noise in CI). Closing them here, while every
    # module is intact, does what that __del__ would have done.
    with contextlib.suppress(ImportError):
        import ipywidgets

        ipywidgets.Widget.close_all()
