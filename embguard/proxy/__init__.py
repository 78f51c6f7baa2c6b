"""``embguard proxy``: a Milvus wire sidecar. Applications that do not use ``embguard.Client`` (any SDK, any
language) point their Milvus URI at it; it relays every call byte for byte and taps their searches off the
request path. ``forwarder`` relays, ``frames`` reads copies of what was relayed, ``tap`` samples (reading the
protocol with ``embguard.milvus.wire``), ``metrics`` counts, ``service`` runs.
"""
