"""Speed of the KNN detector (matmul top-k, difair.eval.posthoc.knn_scores) against scikit-learn's exact search.

    python benchmarks/knn_speed.py [--train 30000] [--queries 10000] [--dim 512] [--k 50] [--threads 1] [--repeats 3]

Synthetic ReLU features (as after a backbone's global pooling), L2-normalised by both. Reported: seconds for all
queries with difair's chunked matmul + top-k on the CPU (and on CUDA when present), and scikit-learn's
``NearestNeighbors`` (what pytorch-ood's KNN uses) on a slice of the queries, extrapolated; plus the largest
difference of the k-th distances on that slice. Each timing is repeated; the smallest and the median are printed
(the shared development machine stalls now and then, so single timings can be several times too long).
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=30000)
    p.add_argument("--queries", type=int, default=10000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sklearn-queries", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    import numpy as np
    import torch
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    from difair.eval.posthoc import knn_scores

    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    bank = torch.relu(torch.randn(a.train, a.dim, generator=g))
    query = torch.relu(torch.randn(a.queries, a.dim, generator=g))

    def timed(fn) -> tuple[float, float, object]:
        times, out = [], None
        for _ in range(a.repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), statistics.median(times), out

    lo, med, ours = timed(lambda: knn_scores(query, bank, a.k))
    print(
        f"difair matmul top-k, CPU, {a.threads} thread(s), {a.queries} queries: min {lo:.2f} s, median {med:.2f} s"
    )
    if torch.cuda.is_available():
        gpu = bank.cuda()
        knn_scores(query[:100], gpu, a.k)  # warm-up

        def on_gpu():
            out = knn_scores(query, gpu, a.k)
            torch.cuda.synchronize()
            return out

        lo, med, _ = timed(on_gpu)
        print(f"difair matmul top-k, CUDA: min {lo:.3f} s, median {med:.3f} s")
    b = (bank / bank.norm(dim=1, keepdim=True)).numpy()
    q = (query[: a.sklearn_queries] / query[: a.sklearn_queries].norm(dim=1, keepdim=True)).numpy()
    with threadpool_limits(a.threads):
        lo, med, (dist, _) = timed(lambda: NearestNeighbors(n_jobs=a.threads).fit(b).kneighbors(q, a.k))
    scale = a.queries / len(q)
    print(
        f"scikit-learn NearestNeighbors, {len(q)} queries: min {lo:.2f} s, median {med:.2f} s "
        f"(x{scale:.0f} for all: ~{lo * scale:.1f} s)"
    )
    print(
        f"largest |difference| of the k-th distance: {np.abs(dist[:, -1] + ours[: len(q)].numpy()).max():.2e}"
    )


if __name__ == "__main__":
    main()
