"""simkernel: the nearest vectors, fast and exact.

>>> import simkernel as sk
>>> scores, indices = sk.topk(queries, corpus, k=10, metric="cosine")
"""

__version__ = "0.1.0"

from ._backend import capabilities
from ._types import TopK
from .index import Index, IndexFileError
from .quantize import Int8Quantizer, binary_quantize
from .search import cdist, rescore, topk

__all__ = ["Index", "IndexFileError", "Int8Quantizer", "TopK", "binary_quantize",
           "capabilities", "cdist", "rescore", "topk", "__version__"]
