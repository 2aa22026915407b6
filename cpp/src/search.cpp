// The searches: each is a result sink fed by the scan (scan.hpp).
#include "simkernel/search.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "scan.hpp"
#include "scoring.hpp"
#include "selection.hpp"
#include "simkernel/dispatch.hpp"

namespace simkernel {
namespace {

using detail::Entry;
using detail::ScoredTile;
using detail::TopK;

// The best k per query. Each worker keeps its own heaps for the queries of
// the chunk in progress (at most 4096 of them, and fewer where their
// buffers would pass kHeapBytes: so the heaps' memory is bounded however
// many queries come and however large k is); they are merged, sorted and
// written, on the workers, when the chunk is done.
class TopKSink : public detail::Sink {
 public:
  TopKSink(std::size_t k, Metric metric, bool integer_out, const RowFilter& filter,
           void* scores, std::int64_t* indices)
      : k_(k), metric_(metric), integer_out_(integer_out), filter_(filter),
        scores_(scores), indices_(indices) {}

  std::size_t query_chunk(unsigned workers) const override {
    std::size_t heap_bytes = 2 * k_ * sizeof(Entry) * std::max(workers, 1u);
    return std::clamp<std::size_t>(kHeapBytes / heap_bytes, 1, kQueryChunk);
  }
  bool takes_squares() const override { return true; }

  void begin(std::size_t q0, std::size_t nq, unsigned workers) override {
    // Each heap reserves its k entries here, on the calling thread, so the
    // workers never allocate (an allocation failure is then an exception the
    // caller sees, not one thrown inside a worker thread).
    heaps_.clear();
    heaps_.reserve(std::size_t{workers} * nq);
    for (std::size_t h = 0; h < std::size_t{workers} * nq; ++h) heaps_.emplace_back(k_);
    q0_ = q0;
    nq_ = nq;
    workers_ = workers;
  }

  bool take(unsigned worker, const ScoredTile& t) override {
    for (std::size_t i = 0; i < t.nq; ++i) {
      TopK& heap = heaps_[worker * nq_ + (t.q0 + i - q0_)];
      const float* f = t.f32 ? t.f32 + i * t.nc : nullptr;
      const std::int32_t* n = t.i32 ? t.i32 + i * t.nc : nullptr;
      if (t.rows == nullptr) {
        const std::uint8_t* allowed = allowed_of(t.q0 + i);
        if (f && t.squared) {
          detail::offer_square_roots(f, t.nc, t.first_row, allowed, heap);
        } else if (f) {
          detail::offer(f, t.nc, t.first_row, metric_, allowed, heap);
        }
        if (n) detail::offer(n, t.nc, t.first_row, metric_, allowed, heap);
      } else {
        // Candidates come in any row order: a key equal to the bar may still
        // win its tie (a lower row), so only strictly worse ones are skipped.
        double sign = detail::higher_is_better(metric_) ? 1.0 : -1.0;
        for (std::size_t j = 0; j < t.nc; ++j) {
          double key = sign * (f ? static_cast<double>(f[j]) : static_cast<double>(n[j]));
          if (key >= heap.bar()) heap.push({key, t.rows[j]});
        }
      }
    }
    return true;
  }

  void end(std::size_t q0, std::size_t nq) override {
    // Queries are merged, sorted and written in parallel: at large k that
    // is no small part of a call (measured on an AMD EPYC, Zen 3: 256
    // queries over 10k rows of 128 dimensions at k = 1000 took 45 ms,
    // 60 with a serial end and heaps that grew as they filled).
    std::size_t workers = heaps_.size() / nq;
    parallel_for(nq, threads_worth_sorting(nq), [&](std::size_t q, unsigned) {
      for (std::size_t w = 1; w < workers; ++w) heaps_[w * nq + q].push_all_into(heaps_[q]);
      detail::write_result(heaps_[q].sorted(), k_, q0 + q, metric_, integer_out_, scores_,
                           indices_);
    });
  }

 private:
  static constexpr std::size_t kQueryChunk = 4096;
  static constexpr std::size_t kHeapBytes = std::size_t{256} << 20;

  // The chunk's workers, but only where there are entries enough to sort
  // to pay for waking them: a few thousand, a guess by analogy with the
  // scan's threshold (kWorkPerWorker), not measured on its own.
  unsigned threads_worth_sorting(std::size_t nq) const {
    return nq * k_ >= 4096 ? workers_ : 1;
  }

  const std::uint8_t* allowed_of(std::size_t query) const {
    return filter_.bits == nullptr ? nullptr : filter_.bits + query * filter_.query_stride;
  }

  std::size_t k_;
  Metric metric_;
  bool integer_out_;
  RowFilter filter_;
  void* scores_;
  std::int64_t* indices_;
  std::vector<TopK> heaps_;
  std::size_t q0_ = 0, nq_ = 0;
  unsigned workers_ = 1;
};

// Every score, into a row-major queries x corpus matrix.
class MatrixSink : public detail::Sink {
 public:
  MatrixSink(std::size_t columns, void* scores) : columns_(columns), scores_(scores) {}

  void begin(std::size_t, std::size_t, unsigned) override {}

  bool take(unsigned, const ScoredTile& t) override {
    // Both score types are 4 bytes wide.
    const char* from = t.f32 ? reinterpret_cast<const char*>(t.f32)
                             : reinterpret_cast<const char*>(t.i32);
    for (std::size_t i = 0; i < t.nq; ++i) {
      std::size_t at = (t.q0 + i) * columns_ + t.first_row;
      std::memcpy(static_cast<char*>(scores_) + 4 * at, from + 4 * i * t.nc, 4 * t.nc);
    }
    return true;
  }

  void end(std::size_t, std::size_t) override {}

 private:
  std::size_t columns_;
  void* scores_;
};

// Every row at or past a threshold. Each worker appends what it finds for
// the chunk's queries to lists of its own, grown as they fill (how many
// results there are is not known in advance); when the chunk is done, each
// query's lists are joined, sorted best first and appended to the results.
// Entries are counted, across workers, before they are held: past
// max_results the scan stops with none of the excess held.
class RangeSink : public detail::Sink {
 public:
  RangeSink(double threshold, Metric metric, bool integer_out, const RowFilter& filter,
            std::size_t max_results, RangeResults* out)
      : f32_test_(detail::range_test_f32(threshold, detail::higher_is_better(metric))),
        i32_test_(detail::range_test_i32(threshold, detail::higher_is_better(metric))),
        integer_out_(integer_out), filter_(filter), max_results_(max_results), out_(out) {}

  // Per-query state is a list per worker: bounded as the top-k sink's is.
  std::size_t query_chunk(unsigned) const override { return kQueryChunk; }

  void begin(std::size_t q0, std::size_t nq, unsigned workers) override {
    found_.assign(std::size_t{workers} * nq, {});
    scratch_.assign(workers, std::vector<Entry>(detail::kCorpusBlock));
    q0_ = q0;
    nq_ = nq;
    workers_ = workers;
  }

  bool take(unsigned worker, const ScoredTile& t) override {
    // A worker must not throw: a list that cannot grow stops the scan.
    try {
      std::vector<Entry>& scratch = scratch_[worker];
      if (scratch.size() < t.nc) scratch.resize(t.nc);
      for (std::size_t i = 0; i < t.nq; ++i) {
        const std::uint8_t* allowed =
            filter_.bits == nullptr ? nullptr : filter_.bits + (t.q0 + i) * filter_.query_stride;
        std::size_t n = t.f32 != nullptr
            ? detail::collect_in_range(t.f32 + i * t.nc, t.nc, f32_test_, t.first_row, t.rows,
                                       allowed, scratch.data())
            : detail::collect_in_range(t.i32 + i * t.nc, t.nc, i32_test_, t.first_row, t.rows,
                                       allowed, scratch.data());
        if (n == 0) continue;
        if (held_.fetch_add(n) + n > max_results_) return refuse(Status::too_many_results);
        std::vector<Entry>& list = found_[worker * nq_ + (t.q0 + i - q0_)];
        list.insert(list.end(), scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(n));
      }
    } catch (const std::bad_alloc&) {
      return refuse(Status::out_of_memory);
    }
    return true;
  }

  Status status() const override { return status_.load(); }

  void end(std::size_t, std::size_t nq) override {
    // Sized here, on the calling thread (where running out of memory is an
    // exception the caller sees), so the workers below never allocate.
    std::vector<std::int64_t>& lims = out_->lims;
    std::size_t first = static_cast<std::size_t>(lims.back()), workers = found_.size() / nq;
    for (std::size_t q = 0; q < nq; ++q) {
      std::size_t count = 0;
      for (std::size_t w = 0; w < workers; ++w) count += found_[w * nq + q].size();
      found_[q].reserve(count);
      lims.push_back(lims.back() + static_cast<std::int64_t>(count));
    }
    std::size_t total = static_cast<std::size_t>(lims.back());
    if (integer_out_) {
      out_->i32.resize(total);
    } else {
      out_->f32.resize(total);
    }
    out_->indices.resize(total);
    std::size_t lim0 = lims.size() - nq - 1;  // lims[lim0 + q] starts query q of the chunk
    unsigned sorters = total - first >= 4096 ? workers_ : 1;  // as TopKSink sorts
    double sign = f32_test_.higher ? 1.0 : -1.0;
    parallel_for(nq, sorters, [&](std::size_t q, unsigned) {
      std::vector<Entry>& all = found_[q];
      for (std::size_t w = 1; w < workers; ++w) {
        all.insert(all.end(), found_[w * nq + q].begin(), found_[w * nq + q].end());
      }
      std::sort(all.begin(), all.end(), detail::Better{});
      auto at = static_cast<std::size_t>(lims[lim0 + q]);
      for (std::size_t r = 0; r < all.size(); ++r, ++at) {
        if (integer_out_) {
          out_->i32[at] = static_cast<std::int32_t>(sign * all[r].key);
        } else {
          out_->f32[at] = static_cast<float>(sign * all[r].key);
        }
        out_->indices[at] = all[r].index;
      }
    });
    found_.clear();
  }

 private:
  static constexpr std::size_t kQueryChunk = 4096;

  bool refuse(Status why) {
    Status none = Status::ok;
    status_.compare_exchange_strong(none, why);
    return false;
  }

  detail::RangeTest<float> f32_test_;
  detail::RangeTest<std::int32_t> i32_test_;
  bool integer_out_;
  RowFilter filter_;
  std::size_t max_results_;
  RangeResults* out_;
  std::vector<std::vector<Entry>> found_;
  std::vector<std::vector<Entry>> scratch_;
  std::atomic<std::size_t> held_{0};
  std::atomic<Status> status_{Status::ok};
  std::size_t q0_ = 0, nq_ = 0;
  unsigned workers_ = 1;
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
  return detail::row_at(pieces[p], i - starts[p]);
}

std::size_t result_count(std::size_t k, std::size_t rows) { return std::min(k, rows); }

bool integer_scores(Pair pair, Metric metric) {
  return pair == Pair::bits_bits ||
         (pair == Pair::i8_i8 && (metric == Metric::dot || metric == Metric::sqeuclidean));
}

Status topk(const Problem& p, std::size_t k, const RowFilter& filter, unsigned threads,
            StopFlag& stop, void* scores, std::int64_t* indices) {
  std::size_t kk = result_count(k, p.corpus.rows);
  if (kk == 0) return Status::ok;
  TopKSink sink(kk, p.metric, integer_scores(p.pair, p.metric), filter, scores, indices);
  return detail::scan_corpus(p, sink, threads, stop);
}

Status cdist(const Problem& p, unsigned threads, StopFlag& stop, void* scores) {
  MatrixSink sink(p.corpus.rows, scores);
  return detail::scan_corpus(p, sink, threads, stop);
}

Status rescore(const Problem& p, const std::int64_t* candidates, std::size_t candidate_count,
               std::size_t k, unsigned threads, StopFlag& stop, void* scores,
               std::int64_t* indices) {
  std::size_t kk = result_count(k, candidate_count);
  if (kk == 0) return Status::ok;
  TopKSink sink(kk, p.metric, integer_scores(p.pair, p.metric), RowFilter{}, scores, indices);
  return detail::scan_candidates(p, candidates, candidate_count, sink, threads, stop);
}

Status range_search(const Problem& p, double threshold, const RowFilter& filter,
                    std::size_t max_results, unsigned threads, StopFlag& stop,
                    RangeResults* out) {
  *out = RangeResults{};
  RangeSink sink(threshold, p.metric, integer_scores(p.pair, p.metric), filter, max_results, out);
  Status status = detail::scan_corpus(p, sink, threads, stop);
  if (status != Status::ok) {
    *out = RangeResults{};
    return status;
  }
  // A call with no corpus rows scans nothing: every query has no results.
  out->lims.resize(p.queries.rows + 1, out->lims.back());
  return status;
}

double stream_sum(const float* data, std::size_t n, unsigned threads) {
  const Kernels& kernels = active_kernels();
  // At least 64 Ki floats per worker: more threads than that only cost.
  std::size_t tasks = std::max<std::size_t>(1, std::min<std::size_t>(threads, n >> 16));
  std::vector<double> sums(tasks, 0.0);
  std::size_t slice = (n + tasks - 1) / tasks;
  parallel_for(tasks, static_cast<unsigned>(tasks), [&](std::size_t w, unsigned) {
    std::size_t begin = std::min(n, w * slice);
    sums[w] = kernels.stream_sum(data + begin, std::min(n, begin + slice) - begin);
  });
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

namespace {

// Each worker runs `chains(steps)` once; the work they report, summed.
template <typename Result, typename Chains>
double run_on_every_worker(unsigned threads, Chains chains) {
  unsigned workers = std::max(threads, 1u);
  std::vector<double> done(workers, 0.0);
  std::vector<Result> results(workers);
  parallel_for(workers, workers, [&](std::size_t w, unsigned) { done[w] = chains(&results[w]); });
  double total = 0;
  for (double d : done) total += d;
  return total;
}

}  // namespace

std::size_t batch_queries() {
  const Kernels& kernels = active_kernels();
  return kernels.batch_f32 != nullptr ? detail::batch_threshold(kernels.micro_batch_group) : 0;
}

std::size_t packed_batch_queries() {
  return active_kernels().batch_f32 != nullptr ? detail::kMinPackedBatch : 0;
}

double fma_peak(std::size_t steps, unsigned threads) {
  const Kernels& kernels = active_kernels();
  return run_on_every_worker<float>(threads, [&](float* r) { return kernels.fma_chains(steps, r); });
}

double int8_peak(std::size_t steps, unsigned threads) {
  const Kernels& kernels = active_kernels();
  return run_on_every_worker<std::int32_t>(
      threads, [&](std::int32_t* r) { return kernels.int8_chains(steps, r); });
}

}  // namespace simkernel
