"""The application side: ``embguard.Client`` (search, insert, feedback), its input checks, the query tap and
its writer, the alias/model caches, and the retention of the tap and feedback collections.
"""
