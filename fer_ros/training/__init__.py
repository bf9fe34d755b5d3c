"""Training and evaluation of expression models, no ROS.

config.py      the settings, each an option() with its range or choices; configs/ the bundled YAMLs
datasets/      a loader per data set family, all through load_splits
augment.py     batch augmentation and input preparation on the training device
train.py       the loop and `fer-ros train`; beside it schedule.py (learning rate), sampling.py
               (sampler, class weights, loader), splits.py (the faces a run uses), distributed.py
               (torchrun, device, AMP), build.py (model, optimizer, EMA, checkpoint metadata) and
               runstate.py (the run and its resumable state)
evaluate.py    `fer-ros evaluate`, which scores through the inference engine the node uses
"""
