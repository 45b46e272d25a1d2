"""HashEE's clustered hash: the hand-written k-means (``elue_hf.hashee.kmeans``) against scikit-learn's ``KMeans``.

Same input as ``cluster_table`` (all 30,522 rows of the MiniLM input embedding matrix), same k, same k-means++ seeding
rule, same restarts and tolerance. Prints inertia, wall time, the agreement of the cluster assignments (adjusted Rand
index) and of the resulting exit tables, side by side in one run. scikit-learn is not in the project's stack: install
it outside the project's venv, e.g. ``pip install --target /tmp/sk scikit-learn`` and run with
``PYTHONPATH=src:/tmp/sk``. Without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import time

import torch


def _table(config, embeddings, labels):
    """The exit table ``cluster_table`` builds from given cluster labels (clusters ordered by summed norms)."""
    norms = embeddings.double().norm(dim=1)
    stat = torch.zeros(config.num_buckets, dtype=torch.float64).index_add_(0, labels, norms)
    order = torch.argsort(stat, stable=True)
    bucket_of_cluster = torch.empty_like(order)
    bucket_of_cluster[order] = torch.arange(config.num_buckets)
    exits = config.bucket_exits(bucket_of_cluster[labels])
    exits[config.special_ids] = config.special_exit
    return exits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", type=int, default=6)
    parser.add_argument("--n-init", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    try:
        from sklearn.cluster import KMeans
        from sklearn.metrics import adjusted_rand_score
    except ImportError:
        print("scikit-learn is not installed (it is not in the stack); see the module docstring")
        return 0
    import sklearn
    from transformers import AutoModel

    from elue_hf.assets import minilm_path
    from elue_hf.hashee.config import HashEEConfig
    from elue_hf.hashee.kmeans import kmeans

    torch.set_num_threads(2)
    emb = AutoModel.from_pretrained(minilm_path()).get_input_embeddings().weight.detach().float()
    config = HashEEConfig(num_layers=6, num_buckets=args.buckets, vocab_size=emb.shape[0], special_ids=[0, 100, 101])
    x = emb - emb.mean(0, keepdim=True)
    print(f"input: {tuple(emb.shape)} MiniLM embeddings, k={args.buckets}, n_init={args.n_init}, max_iter=300, "
          f"tol=1e-4; scikit-learn {sklearn.__version__}, torch threads 2")
    print("seed  ours: inertia  time s | sklearn: inertia  time s | ARI    same exit")
    for seed in range(args.seeds):
        start = time.perf_counter()
        ours, _, inertia = kmeans(emb, args.buckets, n_init=args.n_init, seed=seed)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        km = KMeans(args.buckets, init="k-means++", n_init=args.n_init, max_iter=300, tol=1e-4, random_state=seed,
                    algorithm="lloyd").fit(x.numpy())
        t_sk = time.perf_counter() - start
        theirs = torch.from_numpy(km.labels_).long()
        same = float((_table(config, emb, ours) == _table(config, emb, theirs)).float().mean())
        print(f"{seed:>4}  {inertia:>13.1f} {t_ours:>7.1f} | {km.inertia_:>16.1f} {t_sk:>7.1f} | "
              f"{adjusted_rand_score(km.labels_, ours.numpy()):.3f}  {100 * same:6.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
