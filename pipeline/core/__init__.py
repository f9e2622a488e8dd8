"""Plumbing shared by every stage: errors, configs, artifacts and their layout, the model spec, the
example schema, tf.data over artifacts, trained-model loading, strategies and plots.

Imports keras_components and this package only: no stage, no Beam job, no plan.
"""
