"""Models: each an `eqx.Module` with a forward map, trainable parameters and their masses.

Concrete classes are final; the abstract ones name what families share (`AbstractModel`,
`AbstractLinearModel`, `AbstractLayeredModel`, `AbstractParticleModel`,
`AbstractResidualNetwork`, `AbstractNeuronMeasure`). `Wrapped` flows any equinox module or pure
function.
"""

from .._serialise import register_model as register_model
from ._base import AbstractLayeredModel as AbstractLayeredModel
from ._base import AbstractLinearModel as AbstractLinearModel
from ._base import AbstractModel as AbstractModel
from ._base import AbstractParticleModel as AbstractParticleModel
from ._base import masses_like as masses_like
from ._parameters import load_parameters as load_parameters
from ._parameters import parameter_arrays as parameter_arrays
from ._parameters import save_parameters as save_parameters
from ._particles import AbstractNeuronMeasure as AbstractNeuronMeasure
from ._plan import FlowPlan as FlowPlan
from ._plan import flow_plan as flow_plan
from ._residual import AbstractResidualNetwork as AbstractResidualNetwork
from ._two_layer import TwoLayerMeanField as TwoLayerMeanField
from ._wrapped import Wrapped as Wrapped
from .deep_linear import AdjacencyDeepLinear as AdjacencyDeepLinear
from .deep_linear import DeepLinear as DeepLinear
from .mean_field import MeanFieldResNet as MeanFieldResNet
from .neural_ode import NeuralODE as NeuralODE
from .resnet import ResNet as ResNet
from .resnet import relu_counter_example as relu_counter_example
