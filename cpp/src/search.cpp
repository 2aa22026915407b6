// The search driver: splits work into tiles, turns raw kernel output into the
// metric's values, keeps a running top-k per query, and spreads it on threads.
#include "simkernel/search.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "simkernel/dispatch.hpp"

namespace simkernel {
namespace {

// A tile is 16 queries x 256 corpus rows: its scores (16 KiB) stay in L1 and
// a block of 384-dim float32 rows (384 KiB) in L2, where every query block
// reuses it before the next block is read from memory.
constexpr std::size_t kQueryBlock = 16;
constexpr std::size_t kCorpusBlock = 256;
// Queries whose heaps are live at once: bounds the heaps' memory at
// threads x 4096 x k entries however many queries come.
constexpr std::size_t kQueryChunk = 4096;

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

const void* row_at(const Matrix& m, std::size_t i) {
  return static_cast<const char*>(m.data) +
         static_cast<std::ptrdiff_t>(i) * m.row_stride;
}

// A run of at most kCorpusBlock rows inside one corpus piece: the unit of
// work that the drivers score, in increasing row order.
struct Block {
  const void* first;
  std::ptrdiff_t stride;
  std::size_t row;  // corpus row number of `first`
  std::size_t rows;
};

std::vector<Block> blocks_of(const Corpus& corpus) {
  std::vector<Block> blocks;
  for (std::size_t p = 0; p < corpus.pieces.size(); ++p) {
    const Matrix& piece = corpus.pieces[p];
    for (std::size_t r = 0; r < piece.rows; r += kCorpusBlock) {
      blocks.push_back({row_at(piece, r), piece.row_stride, corpus.starts[p] + r,
                        std::min(kCorpusBlock, piece.rows - r)});
    }
  }
  return blocks;
}

bool integer_pair(Pair pair) {
  return pair == Pair::i8_i8 || pair == Pair::bits_bits;
}

bool higher_is_better(Metric metric) {
  return metric == Metric::dot || metric == Metric::cosine;
}

bool distance(Metric metric) {
  return metric == Metric::sqeuclidean || metric == Metric::l2;
}

TileKernel kernel_for(const Kernels& k, Pair pair, Metric metric) {
  switch (pair) {
    case Pair::f32_f32: return k.dot_f32;
    case Pair::f32_f16: return k.dot_f16;
    case Pair::f32_i8: return k.dot_i8f;
    case Pair::f32_bits: return k.dot_bitsf;
    case Pair::i8_i8: return distance(metric) ? k.sqeuclidean_i8 : k.dot_i8;
    case Pair::bits_bits: return k.hamming;
  }
  return nullptr;
}

// Whether scoring needs every row's squared norm: cosine, and float
// distances, which are |q|^2 + |c|^2 - 2 q.c so that they run at the speed of
// a dot product (int8 distances are summed exactly instead). Bits have no
// norms to compute (each row's is dim).
bool uses_norms(Pair pair, Metric metric) {
  if (pair == Pair::f32_bits || pair == Pair::bits_bits) return false;
  return metric == Metric::cosine || (pair != Pair::i8_i8 && distance(metric));
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

  bool full() const { return heap_.size() == k_; }

  // The key a new entry must beat to get in: -inf until k are held (and
  // +inf when k is 0: nothing gets in).
  double bar() const {
    constexpr double kInfinity = std::numeric_limits<double>::infinity();
    if (k_ == 0) return kInfinity;
    return heap_.size() < k_ ? -kInfinity : heap_.front().key;
  }

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

  void clear() { heap_.clear(); }

  std::vector<Entry> sorted() const {
    std::vector<Entry> entries = heap_;
    std::sort(entries.begin(), entries.end(), better);
    return entries;
  }

 private:
  std::size_t k_;
  std::vector<Entry> heap_;
};

bool allowed(const std::uint8_t* bits, std::size_t row) {
  return bits == nullptr || ((bits[row / 8] >> (row % 8)) & 1u) != 0;
}

// Offers a row of scores for corpus rows first_row, first_row + 1, ... to a
// heap. Every row a heap gets arrives in increasing order, so a score equal
// to the bar would lose its tie: only strictly better ones are pushed. Once
// the heap is full almost nothing gets in, so each chunk is first tested as a
// whole with a compare-and-or loop the compiler vectorises. The filter's bits
// (null: none) are read only for scores that pass the bar.
template <bool Higher, typename Score>
void offer(const Score* scores, std::size_t count, std::size_t first_row,
           const std::uint8_t* filter_bits, TopK& heap) {
  constexpr std::size_t kChunk = 32;
  constexpr double sign = Higher ? 1.0 : -1.0;
  for (std::size_t start = 0; start < count; start += kChunk) {
    std::size_t end = std::min(count, start + kChunk);
    if (heap.full()) {
      // The bar is a score of this type, negated or not: exact either way.
      auto bar = static_cast<Score>(sign * heap.bar());
      bool any = false;
      for (std::size_t j = start; j < end; ++j) any |= Higher ? scores[j] > bar : scores[j] < bar;
      if (!any) continue;
    }
    for (std::size_t j = start; j < end; ++j) {
      double key = sign * static_cast<double>(scores[j]);
      if (key > heap.bar() && allowed(filter_bits, first_row + j)) {
        heap.push({key, static_cast<std::int64_t>(first_row + j)});
      }
    }
  }
}

template <typename Score>
void offer(const Score* scores, std::size_t count, std::size_t first_row, Metric metric,
           const std::uint8_t* filter_bits, TopK& heap) {
  if (higher_is_better(metric)) {
    offer<true>(scores, count, first_row, filter_bits, heap);
  } else {
    offer<false>(scores, count, first_row, filter_bits, heap);
  }
}

// NaN and infinity have an all-ones exponent; an integer test per value that
// the compiler vectorises, so the check costs little next to the kernel.
bool all_finite(const float* x, std::size_t n) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// 1 / |x| from |x|^2, and 0 for a zero vector (whose cosine is 0).
float inverse_norm(float norm2) { return norm2 > 0 ? 1.0f / std::sqrt(norm2) : 0.0f; }
double inverse_norm(double norm2) { return norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0; }

// Turns kernel tiles into the metric's values, flags non-finite ones. Scores
// are rounded to the output type here, so ranking ties are exactly the ties a
// caller sees.
class TileScorer {
 public:
  TileScorer(const Problem& p, const Kernels& kernels,
             const std::vector<double>& query_norm2)
      : p_(p),
        kernel_(kernel_for(kernels, p.pair, p.metric)),
        integer_in_(integer_pair(p.pair)),
        integer_out_(integer_scores(p.pair, p.metric)),
        corpus_norms_(uses_norms(p.pair, p.metric)),
        query_norm2_(query_norm2),
        raw_f_(integer_in_ ? 0 : kQueryBlock * kCorpusBlock),
        raw_i_(integer_in_ ? kQueryBlock * kCorpusBlock : 0),
        out_f_(integer_in_ && !integer_out_ ? kQueryBlock * kCorpusBlock : 0),
        norms_f_(integer_in_ ? 0 : kCorpusBlock),
        norms_i_(integer_in_ ? kCorpusBlock : 0),
        inverse_f_(integer_in_ ? 0 : kCorpusBlock),
        inverse_d_(integer_in_ ? kCorpusBlock : 0) {}

  bool integer_output() const { return integer_out_; }
  const std::int32_t* int_scores() const { return raw_i_.data(); }
  const float* float_scores() const {
    return integer_in_ ? out_f_.data() : raw_f_.data();
  }

  // Scores queries [q0, q0 + nq) against `nc` corpus rows starting at
  // `corpus` (nq x nc, row-major); false if any score is not finite.
  // nq <= kQueryBlock and nc <= kCorpusBlock.
  bool score(std::size_t q0, std::size_t nq, const void* corpus,
             std::ptrdiff_t corpus_stride, std::size_t nc) {
    // Corpus norms depend only on the rows: a block scored against several
    // query blocks in a row has them computed once.
    bool new_norms = corpus_norms_ && (corpus != norms_of_ || nc != norms_count_);
    void* raw = integer_in_ ? static_cast<void*>(raw_i_.data()) : raw_f_.data();
    void* norms = integer_in_ ? static_cast<void*>(norms_i_.data())
                              : static_cast<void*>(norms_f_.data());
    kernel_(Tile{row_at(p_.queries, q0), p_.queries.row_stride, nq, corpus,
                 corpus_stride, nc, p_.dim, raw, new_norms ? norms : nullptr});
    if (new_norms) {
      if (!integer_in_ && !all_finite(norms_f_.data(), nc)) return false;
      norms_of_ = corpus;
      norms_count_ = nc;
      for (std::size_t j = 0; j < nc; ++j) {
        if (integer_in_) {
          inverse_d_[j] = inverse_norm(static_cast<double>(norms_i_[j]));
        } else {
          inverse_f_[j] = inverse_norm(norms_f_[j]);
        }
      }
    }
    if (integer_in_) {
      if (!integer_out_) finish_int8(q0, nq, nc);
      return true;
    }
    if (!all_finite(raw_f_.data(), nq * nc)) return false;
    finish_float(q0, nq, nc);
    return true;
  }

 private:
  void finish_float(std::size_t q0, std::size_t nq, std::size_t nc) {
    float* s = raw_f_.data();
    if (distance(p_.metric)) {
      // Rounding can take |q|^2 + |c|^2 - 2 q.c a little below zero.
      for (std::size_t i = 0; i < nq; ++i) {
        float query_norm2 = static_cast<float>(query_norm2_[q0 + i]);
        for (std::size_t j = 0; j < nc; ++j) {
          float& v = s[i * nc + j];
          v = std::max(query_norm2 + norms_f_[j] - 2.0f * v, 0.0f);
        }
      }
      if (p_.metric == Metric::l2) {
        for (std::size_t a = 0; a < nq * nc; ++a) s[a] = std::sqrt(s[a]);
      }
    } else if (p_.metric == Metric::cosine) {
      if (p_.pair == Pair::f32_bits) {
        std::fill_n(inverse_f_.data(), nc, inverse_norm(static_cast<float>(p_.dim)));
      }
      for (std::size_t i = 0; i < nq; ++i) {
        float inverse_q = inverse_norm(static_cast<float>(query_norm2_[q0 + i]));
        for (std::size_t j = 0; j < nc; ++j) {
          s[i * nc + j] *= inverse_q * inverse_f_[j];
        }
      }
    }
  }

  // int8 cosine and l2 in double from exact integers, then rounded once:
  // cosine as raw * (1/|q| * 1/|c|), which the numpy backend computes in the
  // same order, so these agree bit for bit too; both loops vectorise.
  void finish_int8(std::size_t q0, std::size_t nq, std::size_t nc) {
    if (p_.metric == Metric::l2) {
      for (std::size_t a = 0; a < nq * nc; ++a) {
        out_f_[a] = static_cast<float>(std::sqrt(static_cast<double>(raw_i_[a])));
      }
      return;
    }
    for (std::size_t i = 0; i < nq; ++i) {
      double inverse_q = inverse_norm(query_norm2_[q0 + i]);
      for (std::size_t j = 0; j < nc; ++j) {
        out_f_[i * nc + j] = static_cast<float>(static_cast<double>(raw_i_[i * nc + j]) *
                                                (inverse_q * inverse_d_[j]));
      }
    }
  }

  const Problem& p_;
  TileKernel kernel_;
  bool integer_in_;
  bool integer_out_;
  bool corpus_norms_;
  const std::vector<double>& query_norm2_;
  std::vector<float> raw_f_;
  std::vector<std::int32_t> raw_i_;
  std::vector<float> out_f_;
  std::vector<float> norms_f_;
  std::vector<std::int32_t> norms_i_;
  std::vector<float> inverse_f_;
  std::vector<double> inverse_d_;
  const void* norms_of_ = nullptr;
  std::size_t norms_count_ = 0;
};

// Squared query norms where scoring uses norms (empty otherwise), from the
// same dot kernel as the scores; false if any is not finite.
bool query_norms(const Problem& p, const Kernels& kernels,
                 std::vector<double>* norms) {
  if (p.metric != Metric::cosine && !uses_norms(p.pair, p.metric)) return true;
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

double sign_of(Metric metric) { return higher_is_better(metric) ? 1.0 : -1.0; }

// Writes the first k of `entries` (best first) as query's results; when
// there are fewer, the rest is padding: index -1, score NaN (or 0 for int32).
void write_result(const std::vector<Entry>& entries, std::size_t k,
                  std::size_t query, Metric metric, bool integer_out,
                  void* scores, std::int64_t* indices) {
  constexpr Entry kPadding{std::numeric_limits<double>::quiet_NaN(), -1};
  for (std::size_t r = 0; r < k; ++r) {
    const Entry& entry = r < entries.size() ? entries[r] : kPadding;
    double score = entry.index < 0 && integer_out ? 0.0 : sign_of(metric) * entry.key;
    if (integer_out) {
      static_cast<std::int32_t*>(scores)[query * k + r] =
          static_cast<std::int32_t>(score);
    } else {
      static_cast<float*>(scores)[query * k + r] = static_cast<float>(score);
    }
    indices[query * k + r] = entry.index;
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

Corpus::Corpus(std::vector<Matrix> corpus_pieces) : pieces(std::move(corpus_pieces)) {
  for (const Matrix& piece : pieces) {
    starts.push_back(rows);
    rows += piece.rows;
  }
}

const void* Corpus::row(std::size_t i) const {
  // The last piece starting at or before row i holds it.
  std::size_t p = static_cast<std::size_t>(
      std::upper_bound(starts.begin(), starts.end(), i) - starts.begin() - 1);
  return row_at(pieces[p], i - starts[p]);
}

std::size_t result_count(std::size_t k, std::size_t rows) {
  return std::min(k, rows);
}

bool integer_scores(Pair pair, Metric metric) {
  return pair == Pair::bits_bits ||
         (pair == Pair::i8_i8 &&
          (metric == Metric::dot || metric == Metric::sqeuclidean));
}

Status topk(const Problem& p, std::size_t k, const RowFilter& filter,
            unsigned threads, StopFlag& stop, void* scores,
            std::int64_t* indices) {
  std::size_t nq = p.queries.rows, n = p.corpus.rows;
  std::size_t kk = result_count(k, n);
  if (nq == 0 || kk == 0) return Status::ok;
  Run run(p, threads);
  if (!run.finite) return Status::non_finite;
  bool integer_out = integer_scores(p.pair, p.metric);

  // The corpus is read once per chunk of queries: workers take slices of
  // corpus blocks in increasing order, and each block, while in cache, is
  // scored against every query of the chunk. Each worker keeps its own heaps;
  // they are merged at the end.
  std::vector<Block> blocks = blocks_of(p.corpus);
  std::size_t slices = std::min<std::size_t>(blocks.size(), 4 * run.threads);
  std::size_t blocks_per_slice = ceil_div(blocks.size(), slices);
  slices = ceil_div(blocks.size(), blocks_per_slice);
  std::size_t chunk_size = std::min(nq, kQueryChunk);
  std::vector<TopK> heaps(run.threads * chunk_size, TopK(kk));

  for (std::size_t chunk = 0; chunk < nq; chunk += chunk_size) {
    std::size_t chunk_rows = std::min(chunk_size, nq - chunk);
    for (TopK& heap : heaps) heap.clear();
    parallel_for(slices, run.threads, [&](std::size_t slice, unsigned worker) {
      TileScorer& scorer = run.scorers[worker];
      TopK* mine = &heaps[worker * chunk_size];
      std::size_t b_end = std::min(blocks.size(), (slice + 1) * blocks_per_slice);
      for (std::size_t b = slice * blocks_per_slice; b < b_end; ++b) {
        const Block& block = blocks[b];
        std::size_t c0 = block.row, cn = block.rows;
        for (std::size_t q0 = 0; q0 < chunk_rows; q0 += kQueryBlock) {
          if (stop.stopped(worker) || run.non_finite.load()) return;
          std::size_t qn = std::min(kQueryBlock, chunk_rows - q0);
          if (!scorer.score(chunk + q0, qn, block.first, block.stride, cn)) {
            run.non_finite.store(true);
            return;
          }
          for (std::size_t i = 0; i < qn; ++i) {
            const std::uint8_t* bits =
                filter.bits == nullptr
                    ? nullptr
                    : filter.bits + (chunk + q0 + i) * filter.query_stride;
            if (scorer.integer_output()) {
              offer(scorer.int_scores() + i * cn, cn, c0, p.metric, bits, mine[q0 + i]);
            } else {
              offer(scorer.float_scores() + i * cn, cn, c0, p.metric, bits, mine[q0 + i]);
            }
          }
        }
      }
    });
    Status status = run.status(stop);
    if (status != Status::ok) return status;
    for (std::size_t q = 0; q < chunk_rows; ++q) {
      for (unsigned w = 1; w < run.threads; ++w) {
        heaps[w * chunk_size + q].push_all_into(heaps[q]);
      }
      write_result(heaps[q].sorted(), kk, chunk + q, p.metric, integer_out,
                   scores, indices);
    }
  }
  return Status::ok;
}

Status cdist(const Problem& p, unsigned threads, StopFlag& stop,
             void* scores) {
  std::size_t nq = p.queries.rows, n = p.corpus.rows;
  if (nq == 0 || n == 0) return Status::ok;
  Run run(p, threads);
  if (!run.finite) return Status::non_finite;
  std::vector<Block> blocks = blocks_of(p.corpus);

  parallel_for(blocks.size(), run.threads, [&](std::size_t b, unsigned worker) {
    TileScorer& scorer = run.scorers[worker];
    std::size_t c0 = blocks[b].row, cn = blocks[b].rows;
    for (std::size_t q0 = 0; q0 < nq; q0 += kQueryBlock) {
      if (stop.stopped(worker) || run.non_finite.load()) return;
      std::size_t qn = std::min(kQueryBlock, nq - q0);
      if (!scorer.score(q0, qn, blocks[b].first, blocks[b].stride, cn)) {
        run.non_finite.store(true);
        return;
      }
      for (std::size_t i = 0; i < qn; ++i) {
        std::size_t at = (q0 + i) * n + c0;
        const void* from = scorer.integer_output()
                               ? static_cast<const void*>(scorer.int_scores() + i * cn)
                               : static_cast<const void*>(scorer.float_scores() + i * cn);
        // Both score types are 4 bytes wide.
        std::memcpy(static_cast<char*>(scores) + 4 * at, from, 4 * cn);
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
  double sign = sign_of(p.metric);
  std::vector<std::vector<Entry>> scratch(run.threads);
  for (std::vector<Entry>& entries : scratch) entries.reserve(candidate_count);

  parallel_for(nq, run.threads, [&](std::size_t q, unsigned worker) {
    if (stop.stopped(worker) || run.non_finite.load()) return;
    TileScorer& scorer = run.scorers[worker];
    std::vector<Entry>& entries = scratch[worker];
    entries.clear();
    for (std::size_t j = 0; j < candidate_count; ++j) {
      std::int64_t row = candidates[q * candidate_count + j];
      if (row < 0) continue;
      if (!scorer.score(q, 1, p.corpus.row(static_cast<std::size_t>(row)), 0, 1)) {
        run.non_finite.store(true);
        return;
      }
      double value = integer_out ? static_cast<double>(scorer.int_scores()[0])
                                 : static_cast<double>(scorer.float_scores()[0]);
      entries.push_back({sign * value, row});
    }
    auto best_end = entries.begin() + static_cast<std::ptrdiff_t>(std::min(kk, entries.size()));
    std::partial_sort(entries.begin(), best_end, entries.end(), better);
    write_result(entries, kk, q, p.metric, integer_out, scores, indices);
  });
  return run.status(stop);
}

double stream_sum(const float* data, std::size_t n, unsigned threads) {
  const Kernels& kernels = active_kernels();
  unsigned workers = std::max(threads, 1u);
  std::vector<double> sums(workers, 0.0);
  std::size_t slice = ceil_div(n, workers);
  parallel_for(workers, workers, [&](std::size_t w, unsigned) {
    std::size_t begin = std::min(n, w * slice);
    sums[w] = kernels.stream_sum(data + begin, std::min(n, begin + slice) - begin);
  });
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

}  // namespace simkernel
