"""The SGD update rule of AlexNet §5, with the weight decay inside the momentum (VGG §3.1 uses it too).

    v ← μ·v − λ·ε·w − ε·⟨∂L/∂w⟩,   w ← w + v        (μ = 0.9, λ = 0.0005, ε = learning rate)

Keras' `SGD(weight_decay=λ)` is decoupled (w ← w − ε·λ·w outside the momentum) and is not this rule;
an L2 penalty `c·Σw²` on the loss gives it only with c = λ/2 = 2.5e-4. Whether biases decay is an
option: Caffe's reference AlexNet exempts them (`decay_mult: 0`), the paper's formula does not.
"""

import keras
from keras import ops

from keras_alexnet.training.config import OptimizerConfig

_PAPER = OptimizerConfig()  # AlexNet §5: ε, μ, λ and whether biases decay, the defaults of PaperSGD


def is_bias(variable) -> bool:
    """Biases (and other 1-D parameters): the variables Caffe exempts from weight decay."""
    return len(variable.shape) <= 1


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PaperSGD(keras.optimizers.Optimizer):
    """SGD with momentum and the coupled weight decay of AlexNet §5.

    Args:
        learning_rate: ε, a float or a schedule. [AlexNet §5: 0.01]
        momentum: μ. [AlexNet §5: 0.9]
        decay: λ, the weight decay inside the momentum. [AlexNet §5: 0.0005]
        decay_biases: whether 1-D variables (biases) decay too; the paper's formula says yes.
    """

    def __init__(self, learning_rate=_PAPER.learning_rate, momentum=_PAPER.momentum, decay=_PAPER.weight_decay,
                 decay_biases=_PAPER.decay_biases, name="paper_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if float(decay) < 0.0:
            raise ValueError(f"decay must be >= 0, got {decay}")
        self.momentum = float(momentum)
        self.decay = float(decay)
        self.decay_biases = bool(decay_biases)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        v = self.velocities[self._get_variable_index(variable)]
        step = ops.multiply(gradient, lr)
        if self.decay and (self.decay_biases or not is_bias(variable)):
            step = ops.add(step, ops.multiply(variable, ops.multiply(lr, self.decay)))
        self.assign(v, ops.subtract(ops.multiply(v, self.momentum), step))
        self.assign_add(variable, v)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, decay=self.decay, decay_biases=self.decay_biases)
        return config
