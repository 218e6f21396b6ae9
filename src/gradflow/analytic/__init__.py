"""Closed forms and analytic predictions, used as ground truth for the integrator and as the
predictions experiments compare with.

- Deep linear networks (docs/deep-linear.md): the balanced flow of one mode u' = H u^{2−2/H}(s − u)
  solved exactly (`balanced_mode_strength`, `learning_time`), the prediction aligned on a measured
  escape (`aligned_balanced_prediction`), the data's modes and critical values (`teacher_modes`,
  `critical_value`), balanced networks (`balanced_factorisation`, `balanced_aligned_init`), and the
  effective balanced start of a random small init (`effective_balanced_init`,
  `predicted_learning_times`), and the survey's initialisations with the conservation laws they
  fix (`delta_balanced_init`, `decoupled_init`, `aligned_init`).
- ResNets of Marion et al. (docs/resnets.md): the ReLU counter-example's fixed point
  (`relu_fixed_point`, `relu_successive_difference`) and the paper's GD steps against gradflow's
  flow time (`resnet_flow_time`, `resnet_gd_steps`).
- Implicit bias (docs/implicit-bias.md): the max-margin separator of labelled data with its KKT
  certificate (`max_margin`), the direction logistic regression's flow converges to.
"""

from ._balanced import AlignedPrediction as AlignedPrediction
from ._balanced import aligned_balanced_prediction as aligned_balanced_prediction
from ._balanced import balanced_mode_strength as balanced_mode_strength
from ._balanced import learning_time as learning_time
from ._deep_linear import balanced_aligned_init as balanced_aligned_init
from ._deep_linear import balanced_factorisation as balanced_factorisation
from ._deep_linear import critical_value as critical_value
from ._deep_linear import effective_balanced_init as effective_balanced_init
from ._deep_linear import predicted_learning_times as predicted_learning_times
from ._deep_linear import teacher_modes as teacher_modes
from ._inits import LinearInit as LinearInit
from ._inits import aligned_init as aligned_init
from ._inits import decoupled_init as decoupled_init
from ._inits import delta_balanced_init as delta_balanced_init
from ._margin import MaxMargin as MaxMargin
from ._margin import max_margin as max_margin
from ._resnet import relu_fixed_point as relu_fixed_point
from ._resnet import relu_successive_difference as relu_successive_difference
from ._resnet import resnet_flow_time as resnet_flow_time
from ._resnet import resnet_gd_steps as resnet_gd_steps
