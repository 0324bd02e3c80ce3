"""Error and warning classes. Every message says what was wrong, what was received, and the fix."""

from __future__ import annotations


class SaliencyError(ValueError):
    """Bad input to saliency_widgets: the message names the value received and how to fix it."""


class Cancelled(Exception):
    """Raised when the ``cancel`` event was set; the work stopped at a chunk boundary, cleaned
    up."""


class SaliencyWarning(UserWarning):
    """Something worth knowing about a result (blank map, model in training mode, …)."""
