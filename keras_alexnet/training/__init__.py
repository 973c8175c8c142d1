"""Training: `train(TrainConfig(...))`, the paper's SGD rule, one training loop for every strategy,
checkpoints and the default-run preset. Importing this package does not import TensorFlow."""

from keras_alexnet.training.config import ModelConfig, OptimizerConfig, ScheduleConfig, TrainConfig, config_from_values
from keras_alexnet.training.run import RunResult, TrainingInterrupted, train

__all__ = ["ModelConfig", "OptimizerConfig", "RunResult", "ScheduleConfig", "TrainConfig", "TrainingInterrupted",
           "config_from_values", "train"]
