"""Training candidates: feedback and labels as training data, recipes, the gate report, and active-learning
picks for annotators.
"""
