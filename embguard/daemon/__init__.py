"""``embguard serve``: the scheduled jobs, the pager, the retrain policy, the metric catalogue, the HTTP
endpoints, and ``embguard status``.
"""
