// The search driver: splits work into tiles, turns raw kernel output into the
// metric's values, keeps a running top-k per query, and spreads it on threads.
#include "simkernel/search.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "simkernel/dispatch.hpp"

namespace simkernel {
namespace {

// A tile of 16 queries x 128 rows keeps its scores (8 KiB) in L1 and a corpus
// block of 384-dim float32 rows (192 KiB) in L2.
constexpr std::size_t kQueryBlock = 16;
constexpr std::size_t kCorpusBlock = 128;

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

const void* row_at(const Matrix& m, std::size_t i) {
  return static_cast<const char*>(m.data) +
         static_cast<std::ptrdiff_t>(i) * m.row_stride;
}

bool integer_pair(Pair pair) {
  return pair == Pair::i8_i8 || pair == Pair::bits_bits;
}

bool higher_is_better(Metric metric) {
  return metric == Metric::dot || metric == Metric::cosine;
}

TileKernel kernel_for(const Kernels& k, Pair pair, Metric metric) {
  bool distance = metric == Metric::sqeuclidean || metric == Metric::l2;
  switch (pair) {
    case Pair::f32_f32: return distance ? k.sqeuclidean_f32 : k.dot_f32;
    case Pair::f32_f16: return distance ? k.sqeuclidean_f16 : k.dot_f16;
    case Pair::f32_i8: return distance ? k.sqeuclidean_i8f : k.dot_i8f;
    case Pair::f32_bits: return k.dot_bitsf;
    case Pair::i8_i8: return distance ? k.sqeuclidean_i8 : k.dot_i8;
    case Pair::bits_bits: return k.hamming;
  }
  return nullptr;
}

// One candidate in a running top-k. `key` is the score, negated for metrics
// where lower is better, so that "better" is one total order everywhere.
struct Entry {
  double key;
  std::int64_t index;
};

bool better(const Entry& a, const Entry& b) {
  return a.key > b.key || (a.key == b.key && a.index < b.index);
}

// The k best entries seen so far, as a heap whose front is the worst of them.
class TopK {
 public:
  explicit TopK(std::size_t k) : k_(k) { heap_.reserve(k); }

  void push(const Entry& e) {
    if (heap_.size() < k_) {
      heap_.push_back(e);
      std::push_heap(heap_.begin(), heap_.end(), better);
    } else if (k_ > 0 && better(e, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), better);
      heap_.back() = e;
      std::push_heap(heap_.begin(), heap_.end(), better);
    }
  }

  void push_all_into(TopK& other) const {
    for (const Entry& e : heap_) other.push(e);
  }

  std::vector<Entry> sorted() const {
    std::vector<Entry> entries = heap_;
    std::sort(entries.begin(), entries.end(), better);
    return entries;
  }

 private:
  std::size_t k_;
  std::vector<Entry> heap_;
};

// Turns kernel tiles into metric values (rounded to the output type, so that
// ranking ties are exactly the ties a caller sees) and flags non-finite ones.
class TileScorer {
 public:
  TileScorer(const Problem& p, const Kernels& kernels,
             const std::vector<double>& query_norms)
      : p_(p),
        kernel_(kernel_for(kernels, p.pair, p.metric)),
        integer_(integer_pair(p.pair)),
        query_norms_(query_norms),
        raw_f_(integer_ ? 0 : kQueryBlock * kCorpusBlock),
        raw_i_(integer_ ? kQueryBlock * kCorpusBlock : 0),
        norms_f_(integer_ ? 0 : kCorpusBlock),
        norms_i_(integer_ ? kCorpusBlock : 0) {}

  // Scores queries [q0, q0 + nq) against `nc` corpus rows starting at
  // `corpus` into out (nq x nc); false if any score is not finite.
  // nq <= kQueryBlock and nc <= kCorpusBlock.
  bool score(std::size_t q0, std::size_t nq, const void* corpus,
             std::ptrdiff_t corpus_stride, std::size_t nc, double* out) {
    bool cosine = p_.metric == Metric::cosine;
    bool want_norms = cosine && p_.pair != Pair::f32_bits;
    void* raw = integer_ ? static_cast<void*>(raw_i_.data()) : raw_f_.data();
    void* norms = integer_ ? static_cast<void*>(norms_i_.data())
                           : static_cast<void*>(norms_f_.data());
    Tile tile{row_at(p_.queries, q0), p_.queries.row_stride, nq, corpus,
              corpus_stride, nc, p_.dim, raw, want_norms ? norms : nullptr};
    kernel_(tile);
    if (want_norms && !integer_) {
      for (std::size_t j = 0; j < nc; ++j) {
        if (!std::isfinite(norms_f_[j])) return false;
      }
    }
    for (std::size_t i = 0; i < nq; ++i) {
      double query_norm2 = cosine ? query_norms_[q0 + i] : 0.0;
      for (std::size_t j = 0; j < nc; ++j) {
        std::size_t at = i * nc + j;
        if (integer_) {
          double norm2 = want_norms ? static_cast<double>(norms_i_[j]) : 0.0;
          out[at] = finish_integer(raw_i_[at], query_norm2, norm2);
        } else {
          if (!std::isfinite(raw_f_[at])) return false;
          double norm2 = want_norms ? static_cast<double>(norms_f_[j]) : 0.0;
          out[at] = finish_float(raw_f_[at], query_norm2, norm2);
        }
      }
    }
    return true;
  }

 private:
  static double cosine_of(double dot, double norm_product) {
    return norm_product == 0.0 ? 0.0 : dot / norm_product;
  }

  double finish_integer(std::int32_t raw, double query_norm2,
                        double corpus_norm2) const {
    switch (p_.metric) {
      case Metric::cosine:
        return static_cast<float>(
            cosine_of(raw, std::sqrt(query_norm2 * corpus_norm2)));
      case Metric::l2:
        return static_cast<float>(std::sqrt(static_cast<double>(raw)));
      default:
        return raw;
    }
  }

  double finish_float(float raw, double query_norm2,
                      double corpus_norm2) const {
    switch (p_.metric) {
      case Metric::cosine: {
        double corpus_norm = p_.pair == Pair::f32_bits
                                 ? std::sqrt(static_cast<double>(p_.dim))
                                 : std::sqrt(corpus_norm2);
        return static_cast<float>(
            cosine_of(raw, std::sqrt(query_norm2) * corpus_norm));
      }
      case Metric::sqeuclidean:
        return std::max(raw, 0.0f);
      case Metric::l2:
        return std::sqrt(std::max(raw, 0.0f));
      default:
        return raw;
    }
  }

  const Problem& p_;
  TileKernel kernel_;
  bool integer_;
  const std::vector<double>& query_norms_;
  std::vector<float> raw_f_;
  std::vector<std::int32_t> raw_i_;
  std::vector<float> norms_f_;
  std::vector<std::int32_t> norms_i_;
};

// Squared query norms for cosine (empty otherwise), from the same dot kernel
// as the scores; false if any is not finite.
bool query_norms(const Problem& p, const Kernels& kernels,
                 std::vector<double>* norms) {
  if (p.metric != Metric::cosine) return true;
  bool integer = p.pair == Pair::i8_i8;
  TileKernel dot = integer ? kernels.dot_i8 : kernels.dot_f32;
  norms->resize(p.queries.rows);
  for (std::size_t i = 0; i < p.queries.rows; ++i) {
    const void* q = row_at(p.queries, i);
    float f = 0;
    std::int32_t n = 0;
    void* out = integer ? static_cast<void*>(&n) : static_cast<void*>(&f);
    dot(Tile{q, 0, 1, q, 0, 1, p.dim, out, nullptr});
    if (!integer && !std::isfinite(f)) return false;
    (*norms)[i] = integer ? static_cast<double>(n) : static_cast<double>(f);
  }
  return true;
}

double key_of(double score, Metric metric) {
  return higher_is_better(metric) ? score : -score;
}

void write_result(const std::vector<Entry>& entries, std::size_t k,
                  std::size_t query, Metric metric, bool integer_out,
                  void* scores, std::int64_t* indices) {
  for (std::size_t r = 0; r < k; ++r) {
    double score = key_of(entries[r].key, metric);
    if (integer_out) {
      static_cast<std::int32_t*>(scores)[query * k + r] =
          static_cast<std::int32_t>(score);
    } else {
      static_cast<float*>(scores)[query * k + r] = static_cast<float>(score);
    }
    indices[query * k + r] = entries[r].index;
  }
}

// Per-call state shared by the three entry points.
struct Run {
  Run(const Problem& p, unsigned threads) : threads(std::max(threads, 1u)) {
    const Kernels& kernels = active_kernels();
    finite = query_norms(p, kernels, &norms);
    for (unsigned w = 0; w < this->threads; ++w) {
      scorers.emplace_back(p, kernels, norms);
    }
  }

  Status status(const StopFlag& stop) const {
    if (!finite || non_finite.load()) return Status::non_finite;
    return stop.stopped() ? Status::interrupted : Status::ok;
  }

  unsigned threads;
  std::vector<double> norms;
  bool finite;
  std::atomic<bool> non_finite{false};
  std::vector<TileScorer> scorers;
};

}  // namespace

std::size_t result_count(std::size_t k, std::size_t rows) {
  return std::min(k, rows);
}

bool integer_scores(Pair pair, Metric metric) {
  return pair == Pair::bits_bits ||
         (pair == Pair::i8_i8 &&
          (metric == Metric::dot || metric == Metric::sqeuclidean));
}

Status topk(const Problem& p, std::size_t k, unsigned threads, StopFlag& stop,
            void* scores, std::int64_t* indices) {
  std::size_t nq = p.queries.rows, n = p.corpus.rows;
  std::size_t kk = result_count(k, n);
  if (nq == 0 || kk == 0) return Status::ok;
  Run run(p, threads);
  if (!run.finite) return Status::non_finite;

  // Few queries: each thread scans its own slice of the corpus with its own
  // heaps, merged at the end. Many queries: each task is a block of queries.
  std::size_t query_blocks = ceil_div(nq, kQueryBlock);
  std::size_t corpus_blocks = ceil_div(n, kCorpusBlock);
  std::size_t slices =
      query_blocks >= run.threads
          ? 1
          : std::min<std::size_t>(ceil_div(run.threads, query_blocks),
                                  corpus_blocks);
  std::size_t blocks_per_slice = ceil_div(corpus_blocks, slices);
  std::vector<TopK> heaps(slices * nq, TopK(kk));

  parallel_for(query_blocks * slices, run.threads,
               [&](std::size_t task, unsigned worker) {
    std::size_t q0 = (task / slices) * kQueryBlock;
    std::size_t qn = std::min(kQueryBlock, nq - q0);
    std::size_t slice = task % slices;
    std::size_t c_begin = slice * blocks_per_slice * kCorpusBlock;
    std::size_t c_end = std::min(n, c_begin + blocks_per_slice * kCorpusBlock);
    double tile[kQueryBlock * kCorpusBlock];
    for (std::size_t c0 = c_begin; c0 < c_end; c0 += kCorpusBlock) {
      if (stop.stopped(worker) || run.non_finite.load()) return;
      std::size_t cn = std::min(kCorpusBlock, c_end - c0);
      if (!run.scorers[worker].score(q0, qn, row_at(p.corpus, c0),
                                     p.corpus.row_stride, cn, tile)) {
        run.non_finite.store(true);
        return;
      }
      for (std::size_t i = 0; i < qn; ++i) {
        TopK& heap = heaps[slice * nq + q0 + i];
        for (std::size_t j = 0; j < cn; ++j) {
          heap.push({key_of(tile[i * cn + j], p.metric),
                     static_cast<std::int64_t>(c0 + j)});
        }
      }
    }
  });
  Status status = run.status(stop);
  if (status != Status::ok) return status;

  bool integer_out = integer_scores(p.pair, p.metric);
  for (std::size_t q = 0; q < nq; ++q) {
    for (std::size_t s = 1; s < slices; ++s) {
      heaps[s * nq + q].push_all_into(heaps[q]);
    }
    write_result(heaps[q].sorted(), kk, q, p.metric, integer_out, scores,
                 indices);
  }
  return Status::ok;
}

Status cdist(const Problem& p, unsigned threads, StopFlag& stop,
             void* scores) {
  std::size_t nq = p.queries.rows, n = p.corpus.rows;
  if (nq == 0 || n == 0) return Status::ok;
  Run run(p, threads);
  if (!run.finite) return Status::non_finite;
  bool integer_out = integer_scores(p.pair, p.metric);
  std::size_t query_blocks = ceil_div(nq, kQueryBlock);
  std::size_t corpus_blocks = ceil_div(n, kCorpusBlock);

  parallel_for(query_blocks * corpus_blocks, run.threads,
               [&](std::size_t task, unsigned worker) {
    if (stop.stopped(worker) || run.non_finite.load()) return;
    std::size_t q0 = (task / corpus_blocks) * kQueryBlock;
    std::size_t c0 = (task % corpus_blocks) * kCorpusBlock;
    std::size_t qn = std::min(kQueryBlock, nq - q0);
    std::size_t cn = std::min(kCorpusBlock, n - c0);
    double tile[kQueryBlock * kCorpusBlock];
    if (!run.scorers[worker].score(q0, qn, row_at(p.corpus, c0),
                                   p.corpus.row_stride, cn, tile)) {
      run.non_finite.store(true);
      return;
    }
    for (std::size_t i = 0; i < qn; ++i) {
      std::size_t at = (q0 + i) * n + c0;
      for (std::size_t j = 0; j < cn; ++j) {
        if (integer_out) {
          static_cast<std::int32_t*>(scores)[at + j] =
              static_cast<std::int32_t>(tile[i * cn + j]);
        } else {
          static_cast<float*>(scores)[at + j] =
              static_cast<float>(tile[i * cn + j]);
        }
      }
    }
  });
  return run.status(stop);
}

Status rescore(const Problem& p, const std::int64_t* candidates,
               std::size_t candidate_count, std::size_t k, unsigned threads,
               StopFlag& stop, void* scores, std::int64_t* indices) {
  std::size_t nq = p.queries.rows;
  std::size_t kk = result_count(k, candidate_count);
  if (nq == 0 || kk == 0) return Status::ok;
  Run run(p, threads);
  if (!run.finite) return Status::non_finite;
  bool integer_out = integer_scores(p.pair, p.metric);

  std::vector<std::vector<Entry>> scratch(
      run.threads, std::vector<Entry>(candidate_count));

  parallel_for(nq, run.threads, [&](std::size_t q, unsigned worker) {
    if (stop.stopped(worker) || run.non_finite.load()) return;
    std::vector<Entry>& entries = scratch[worker];
    for (std::size_t j = 0; j < candidate_count; ++j) {
      std::int64_t row = candidates[q * candidate_count + j];
      double value;
      if (!run.scorers[worker].score(q, 1, row_at(p.corpus, row), 0, 1,
                                     &value)) {
        run.non_finite.store(true);
        return;
      }
      entries[j] = {key_of(value, p.metric), row};
    }
    std::partial_sort(entries.begin(), entries.begin() + kk, entries.end(),
                      better);
    write_result(entries, kk, q, p.metric, integer_out, scores, indices);
  });
  return run.status(stop);
}

}  // namespace simkernel
