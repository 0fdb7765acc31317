"""Measuring the product: ``kb eval`` on labelled question sets, and benchmarks.

Uses the public API of ``ingest`` and ``retriever`` only.
"""
