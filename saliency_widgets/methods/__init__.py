"""One file per method: ``name(ctx, x, **params) -> Tensor``, registered under its own name.

Importing this package registers them all.
"""

from . import (gradient, grad_cam, grad_cam_plusplus, guided_backprop, guided_grad_cam,  # noqa: F401
               input_x_gradient, integrated_gradients, kernel_shap, lime, occlusion, score_cam,
               smoothgrad)
from . import blur_ig, guided_ig, rise, xrai  # noqa: F401
from . import deconvolution, deeplift, deeplift_shap, gradient_shap, lrp  # noqa: F401
from . import (ablation_cam, attention_rollout, cam, eigen_cam, fullgrad,  # noqa: F401
               gradient_rollout, hires_cam, layer_cam, legrad, xgrad_cam)
