"""Drift checks: reference windows, the windows sampled from Milvus, each collection's monitors, and the typed
report of one check.
"""
