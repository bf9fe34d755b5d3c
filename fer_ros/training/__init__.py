"""Training and evaluation of expression models: configs, data sets, batch augmentation, the
training loop and the evaluator (which scores through the inference engine the node uses)."""
