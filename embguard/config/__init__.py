"""Settings: the TOML file and ``EMBGUARD_*`` environment read once into a frozen object, the secrets rules,
and the state directory's layout (the one way anything under it is written).
"""
