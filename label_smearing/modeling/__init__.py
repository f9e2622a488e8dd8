"""Pure Keras 3 (keras.ops only, any backend): the losses, noise models, metrics, optimizers and models.

Imports no other part of label_smearing. Its public names are re-exported by `label_smearing`.
"""
