"""One module per stage kind (registry.STAGES): noisify, train, export_logits, estimate_transition, evaluate, report (with its claims).

Each imports label_smearing.modeling, .core and .beam_core only: never another stage or the plan.
"""
