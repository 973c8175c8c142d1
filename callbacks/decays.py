"""The learning-rate decays of the short-run schedule (`schedule.WarmupDecay`): linear or cosine to 0 by
the last step, or constant after the warm-up. Apart from `schedule.py` (which imports Keras) so that the
training configuration and the flags list them before TensorFlow loads. The papers' own rule, the rate
divided by 10 on plateaus (AlexNet §5, VGG §3.1), is `plateau.py`."""

DECAYS = ("linear", "cosine", "constant")
