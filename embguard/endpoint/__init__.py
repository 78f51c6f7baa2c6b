"""``embguard endpoint``: the embedding door. Applications that embed through an OpenAI-compatible or TEI
service point their embedding client's base URL here and get each collection's current model, switched with
the alias by approve and rollback. ``app`` routes, ``shapes`` checks requests and shapes answers and errors,
``batcher`` batches across requests, ``names`` resolves a request's ``model``, ``feedback`` takes clicks over
HTTP, ``metrics`` counts, ``service`` runs.
"""
