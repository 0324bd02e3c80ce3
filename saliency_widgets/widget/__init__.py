"""The Jupyter widgets: ``sw.show`` (one image) and ``sw.explore`` (an audit); JS lives in js/."""

from .explorer import ExplorerWidget, explore
from .widget import SaliencyWidget, show

__all__ = ["ExplorerWidget", "SaliencyWidget", "explore", "show"]
