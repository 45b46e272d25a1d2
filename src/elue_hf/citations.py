"""BibTeX of the three papers elue-hf implements (used by model cards, Space cards and the leaderboard's About tab)."""

from __future__ import annotations

__all__ = ["CITATIONS", "bibtex"]

CITATIONS: dict[str, str] = {
    "elue": """@inproceedings{liu-etal-2022-towards,
  title     = {Towards Efficient {NLP}: A Standard Evaluation and A Strong Baseline},
  author    = {Liu, Xiangyang and Sun, Tianxiang and He, Junliang and Wu, Jiawen and Wu, Lingling and
               Zhang, Xinyu and Jiang, Hao and Cao, Zhao and Huang, Xuanjing and Qiu, Xipeng},
  booktitle = {Proceedings of the 2022 Conference of the North American Chapter of the Association for
               Computational Linguistics: Human Language Technologies (NAACL-HLT)},
  year      = {2022},
  note      = {arXiv:2110.07038}
}""",
    "hashee": """@inproceedings{sun-etal-2022-simple,
  title     = {A Simple Hash-Based Early Exiting Approach For Language Understanding and Generation},
  author    = {Sun, Tianxiang and Liu, Xiangyang and Zhu, Wei and Geng, Zhichao and Wu, Lingling and
               He, Yilong and Ni, Yuan and Xie, Guotong and Huang, Xuanjing and Qiu, Xipeng},
  booktitle = {Findings of the Association for Computational Linguistics: ACL 2022},
  year      = {2022},
  note      = {arXiv:2203.01670}
}""",
    "lpt": """@inproceedings{liu-etal-2022-late,
  title     = {Late Prompt Tuning: A Late Prompt Could Be Better Than Many Prompts},
  author    = {Liu, Xiangyang and Sun, Tianxiang and Huang, Xuanjing and Qiu, Xipeng},
  booktitle = {Findings of the Association for Computational Linguistics: EMNLP 2022},
  year      = {2022}
}""",
}


def bibtex(*keys: str) -> str:
    """The BibTeX entries for ``keys`` (``"elue"``, ``"hashee"``, ``"lpt"``; all three when none are given)."""
    keys = keys or tuple(CITATIONS)
    unknown = [k for k in keys if k not in CITATIONS]
    if unknown:
        raise ValueError(f"unknown citation keys {unknown}; known: {', '.join(CITATIONS)}")
    return "\n\n".join(CITATIONS[k] for k in keys)
