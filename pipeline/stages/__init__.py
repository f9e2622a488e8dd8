"""The TensorFlow stages (train, evaluate, report with its claims) and the synthetic experiments.

Each imports keras_components and pipeline.core only: never another stage, a Beam job or the plan.
"""
