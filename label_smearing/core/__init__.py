"""Plumbing shared by every stage: errors, configs, artifacts and their layout, the model spec, the
example schema, tf.data over artifacts, trained-model loading, strategies and plots.

Imports label_smearing.modeling and this package only: no stage, no plan.
"""
