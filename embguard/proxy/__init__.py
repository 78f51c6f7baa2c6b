"""``embguard proxy``: a Milvus wire sidecar. Applications that do not use ``embguard.Client`` (any SDK, any
language) point their Milvus URI at it; it forwards every call unchanged and taps their searches off the request
path. ``forwarder`` forwards, ``tap`` samples (reading the protocol with ``embguard.milvus.wire``), ``metrics``
counts, ``service`` runs.
"""
