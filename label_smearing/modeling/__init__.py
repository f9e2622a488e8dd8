"""Pure Keras 3 (keras.ops, any backend): losses, noise models, metrics, optimizers and their
schedules, models, and the distillation pieces (an online teacher).

Imports no other part of label_smearing. Its public names are re-exported by `label_smearing`.
"""
