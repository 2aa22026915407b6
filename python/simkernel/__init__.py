"""simkernel: the nearest vectors, fast and exact.

>>> import simkernel as sk
>>> scores, indices = sk.topk(queries, corpus, k=10, metric="cosine")
"""

__version__ = "0.1.0"

from ._backend import capabilities, use_isa
from ._types import Calibration, RangeResult, TopK
from .fusion import fuse
from .index import Index, IndexFileError
from .quality import hit_rate_at_k, ndcg_at_k, quantization_report, recall_at_k
from .quantize import Int8Codes, Int8Quantizer, binary_quantize
from .search import cdist, merge_topk, range_search, rescore, topk

__all__ = ["Calibration", "Index", "IndexFileError", "Int8Codes", "Int8Quantizer", "RangeResult", "TopK",
           "binary_quantize", "capabilities", "cdist", "fuse", "hit_rate_at_k", "merge_topk", "ndcg_at_k",
           "quantization_report", "range_search", "recall_at_k", "rescore", "topk", "use_isa",
           "__version__"]
