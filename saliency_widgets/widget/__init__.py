"""The Jupyter widget (``sw.show``): traits and orchestration over the engine; JS lives in js/."""

from .widget import SaliencyWidget, show

__all__ = ["SaliencyWidget", "show"]
