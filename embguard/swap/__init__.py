"""The hot-swap: a versioned collection built with the candidate's vectors (local or on Ray, behind one seam),
reconciled and verified, the alias switched, rolled back, and old collections retired.
"""
