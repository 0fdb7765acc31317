"""Thread pools for answering questions.

Native libraries share two cores here: ONNX Runtime (e5, MiniLM), FAISS's OpenMP, numpy's
OpenBLAS, and torch for an embedder configured with ``runtime = "torch"``. Idle pool threads spin,
and a spinning pool slows the others several times over (measured: e5 from ~25 to ~65 ms per
question; see also ``OMP_WAIT_POLICY`` in :mod:`kb.environment`). Each question's models run one per core
(:class:`retriever.components.DenseRetrievers`), each on one thread of its own.
"""

from __future__ import annotations

from functools import cache


@cache
def limit_query_threads() -> None:
    """One BLAS and one FAISS thread, for the whole process (once)."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")
