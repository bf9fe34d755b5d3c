"""Commands that drive the whole package: the end-to-end demo and the model benchmark."""
