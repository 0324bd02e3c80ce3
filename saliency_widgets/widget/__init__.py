"""The Jupyter widgets: ``sw.show`` (one image) and ``sw.explore`` (an audit); JS lives in js/."""

from .explorer import ExplorerWidget, explore
from .show import show
from .widget import SaliencyWidget

__all__ = ["ExplorerWidget", "SaliencyWidget", "explore", "show"]
