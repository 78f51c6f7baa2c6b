"""Milvus: the one home of pymilvus (connection, schemas, rows, filters, indexes), the local Lite server, and
the collections embguard manages (names, creation, adoption).
"""
