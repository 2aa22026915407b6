#include "scan.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "scoring.hpp"
#include "simkernel/dispatch.hpp"

namespace simkernel::detail {
namespace {

// A block holds at most this many bytes of corpus rows (and at most
// kCorpusBlock rows): only rows past 16 KiB (4096 float32) get shorter
// blocks, so that one tile's work, the time between two stop checks, stays
// small however long the rows.
constexpr std::size_t kBlockBytes = std::size_t{4} << 20;
// A candidate walk checks for a stop every this many candidates, so one
// query with millions of them still stops promptly.
constexpr std::size_t kCandidateStep = 256;

// Each worker past the first needs this much more work (queries x rows x
// dimensions, the multiply-adds of a float scan) to pay off: waking a pool
// thread and merging its results costs about as much as scanning 1,000 to
// 1,500 rows of 384 dimensions for one query (measured on an AMD EPYC, Zen
// 3: one worker beat two below that, for float32, float16 and int8 rows
// alike), so a small call runs on the calling thread alone.
constexpr double kWorkPerWorker = double{1 << 19};

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// How many threads a call of `pairs` (query, row) scores of `dim`
// dimensions is worth, at most `threads`. A Hamming score costs about a
// quarter of a float multiply-add per bit (measured as above: two workers
// paid off from about 2,000 rows of 1,024 bits).
unsigned threads_worth(unsigned threads, double pairs, Pair pair, std::size_t dim) {
  double work = pairs * static_cast<double>(pair == Pair::bits_bits ? dim / 4 : dim);
  double worth = 1.0 + std::floor(work / kWorkPerWorker);
  return worth >= threads ? threads : static_cast<unsigned>(worth);
}

std::size_t corpus_row_bytes(Pair pair, std::size_t dim) {
  switch (pair) {
    case Pair::f32_f32: return 4 * dim;
    case Pair::f32_f16:
    case Pair::f32_bf16: return 2 * dim;
    case Pair::f32_i8:
    case Pair::i8_i8: return dim;
    case Pair::f32_bits:
    case Pair::bits_bits: return (dim + 7) / 8;
  }
  return dim;
}

// A run of rows inside one corpus piece: the unit the scan scores.
struct Block {
  const void* first;
  std::ptrdiff_t stride;
  std::size_t row;  // corpus row number of `first`
  std::size_t rows;
};

// The corpus's blocks, numbered across its pieces in row order and found on
// demand: O(pieces) memory, however many rows (a zero-stride view may claim
// 10^12).
class Blocks {
 public:
  Blocks(const Corpus& corpus, std::size_t rows_per_block)
      : corpus_(corpus), rows_per_block_(rows_per_block) {
    for (const Matrix& piece : corpus.pieces) {
      first_.push_back(count_);
      count_ += ceil_div(piece.rows, rows_per_block);
    }
  }

  std::size_t count() const { return count_; }

  Block operator[](std::size_t b) const {
    // The last piece whose first block is at or before b holds it.
    std::size_t p = static_cast<std::size_t>(
        std::upper_bound(first_.begin(), first_.end(), b) - first_.begin() - 1);
    const Matrix& piece = corpus_.pieces[p];
    std::size_t r = (b - first_[p]) * rows_per_block_;
    return {row_at(piece, r), piece.row_stride, corpus_.starts[p] + r,
            std::min(rows_per_block_, piece.rows - r)};
  }

 private:
  const Corpus& corpus_;
  std::size_t rows_per_block_;
  std::vector<std::size_t> first_;  // first block of each piece
  std::size_t count_ = 0;
};

// Per-call state: query norms, and one scorer per worker (allocated only for
// the workers there is work for, whatever `threads` asked).
// A corpus scan packs its queries for the batch kernel when the call is
// large enough; a candidate walk scores one pair at a time and never does.
// Affine codes are scored with the queries scaled by the steps: `problem`
// is the call's problem with those queries in place of the caller's.
struct Run {
  // Tiles are at most max_queries x max_rows.
  Run(const Problem& p, unsigned workers, bool batch, bool squares, std::size_t max_queries,
      std::size_t max_rows)
      : problem(p) {
    const Kernels& kernels = active_kernels();
    bool affine = p.affine.steps != nullptr;
    if (affine) {
      finite = affine_queries(p, &scaled_queries, &shifts, &norms);
      problem.queries = {scaled_queries.data(), static_cast<std::ptrdiff_t>(p.dim * sizeof(float)),
                         p.queries.rows};
    }
    if (batch) batch_queries = pack_batch_queries(problem, kernels);
    if (!affine) finite = query_norms(problem, kernels, batch_queries, &norms);
    scorers.reserve(workers);
    for (unsigned w = 0; w < workers; ++w) {
      scorers.emplace_back(problem, kernels, batch_queries, norms, shifts, max_queries, max_rows,
                           squares);
    }
  }

  // Whether worker `worker` must stop now; a non-finite score, or a sink
  // that refused a tile, stops everyone.
  bool must_stop(StopFlag& stop, unsigned worker) {
    return stop.stopped(worker) || non_finite.load(std::memory_order_relaxed) ||
           sink_refused.load(std::memory_order_relaxed);
  }

  Status status(const StopFlag& stop, const Sink& sink) const {
    if (!finite || non_finite.load()) return Status::non_finite;
    if (sink_refused.load()) return sink.status();
    return stop.stopped() ? Status::interrupted : Status::ok;
  }

  Problem problem;
  std::vector<float> scaled_queries;
  BatchQueries batch_queries;
  std::vector<double> norms;
  std::vector<double> shifts;
  bool finite = true;
  std::atomic<bool> non_finite{false};
  std::atomic<bool> sink_refused{false};
  std::vector<TileScorer> scorers;
};

ScoredTile scored(const TileScorer& scorer, std::size_t q0, std::size_t nq, std::size_t first_row,
                  const std::int64_t* rows, std::size_t nc) {
  bool integer = scorer.integer_output();
  return {q0, nq, first_row, rows, nc, integer ? nullptr : scorer.float_scores(),
          integer ? scorer.int_scores() : nullptr, scorer.squared_output()};
}

}  // namespace

Status scan_corpus(const Problem& p, Sink& sink, unsigned threads, StopFlag& stop) {
  std::size_t nq = p.queries.rows;
  std::size_t row_bytes = std::max<std::size_t>(1, corpus_row_bytes(p.pair, p.dim));
  std::size_t block_rows = std::clamp<std::size_t>(kBlockBytes / row_bytes, 1, kCorpusBlock);
  Blocks blocks(p.corpus, block_rows);
  if (nq == 0 || blocks.count() == 0) return Status::ok;
  threads = threads_worth(threads, static_cast<double>(nq) * static_cast<double>(p.corpus.rows),
                          p.pair, p.dim);

  // The corpus is read once per chunk of queries: workers take slices of
  // consecutive blocks in increasing order, and each block, while in cache,
  // is scored against every query of the chunk.
  std::size_t slices = std::min(blocks.count(), 4 * std::size_t{std::max(threads, 1u)});
  std::size_t blocks_per_slice = ceil_div(blocks.count(), slices);
  slices = ceil_div(blocks.count(), blocks_per_slice);
  unsigned workers = worker_count(slices, threads);
  std::size_t chunk_size = std::min(nq, sink.query_chunk(workers));
  Run run(p, workers, true, sink.takes_squares(), std::min(chunk_size, kQueryBlock),
          std::min(block_rows, p.corpus.rows));
  if (!run.finite) return Status::non_finite;

  for (std::size_t chunk = 0; chunk < nq; chunk += chunk_size) {
    std::size_t chunk_rows = std::min(chunk_size, nq - chunk);
    sink.begin(chunk, chunk_rows, workers);
    parallel_for(slices, workers, [&](std::size_t slice, unsigned worker) {
      TileScorer& scorer = run.scorers[worker];
      std::size_t end = std::min(blocks.count(), (slice + 1) * blocks_per_slice);
      for (std::size_t b = slice * blocks_per_slice; b < end; ++b) {
        Block block = blocks[b];
        // The first query block asks for the next block's rows (when they
        // are one run of memory) while it computes.
        Block next = b + 1 < end ? blocks[b + 1] : Block{nullptr, 0, 0, 0};
        bool dense = next.stride == static_cast<std::ptrdiff_t>(row_bytes);
        for (std::size_t q0 = chunk; q0 < chunk + chunk_rows; q0 += kQueryBlock) {
          if (run.must_stop(stop, worker)) return;
          std::size_t qn = std::min(kQueryBlock, chunk + chunk_rows - q0);
          bool ask = q0 == chunk && dense;
          if (!scorer.score(q0, qn, block.row, block.first, block.stride, block.rows,
                            ask ? next.first : nullptr, ask ? next.rows * row_bytes : 0)) {
            run.non_finite.store(true);
            return;
          }
          if (!sink.take(worker, scored(scorer, q0, qn, block.row, nullptr, block.rows))) {
            run.sink_refused.store(true);
            return;
          }
        }
      }
    });
    Status status = run.status(stop, sink);
    if (status != Status::ok) return status;
    sink.end(chunk, chunk_rows);
  }
  return Status::ok;
}

Status scan_candidates(const Problem& p, const std::int64_t* candidates,
                       std::size_t candidate_count, Sink& sink, unsigned threads,
                       StopFlag& stop) {
  std::size_t nq = p.queries.rows;
  if (nq == 0) return Status::ok;
  threads = threads_worth(threads, static_cast<double>(nq) * static_cast<double>(candidate_count),
                          p.pair, p.dim);
  // A chunk sized for the most workers there could be; fewer take no more.
  std::size_t chunk_size = std::min(nq, sink.query_chunk(worker_count(nq, threads)));
  unsigned workers = worker_count(chunk_size, threads);
  Run run(p, workers, false, false, 1, 1);
  if (!run.finite) return Status::non_finite;
  // Each worker gathers one query's scores and rows, then hands them to the
  // sink as one tile; the buffers are sized here, so workers never allocate.
  bool integer = integer_scores(p.pair, p.metric);
  struct Gathered {
    std::vector<float> f32;
    std::vector<std::int32_t> i32;
    std::vector<std::int64_t> rows;
  };
  std::vector<Gathered> gathered(workers);
  for (Gathered& g : gathered) {
    g.f32.reserve(integer ? 0 : candidate_count);
    g.i32.reserve(integer ? candidate_count : 0);
    g.rows.reserve(candidate_count);
  }

  for (std::size_t chunk = 0; chunk < nq; chunk += chunk_size) {
    std::size_t chunk_rows = std::min(chunk_size, nq - chunk);
    sink.begin(chunk, chunk_rows, workers);
    parallel_for(chunk_rows, workers, [&](std::size_t i, unsigned worker) {
      TileScorer& scorer = run.scorers[worker];
      Gathered& g = gathered[worker];
      g.f32.clear();
      g.i32.clear();
      g.rows.clear();
      std::size_t q = chunk + i;
      const std::int64_t* rows = candidates + q * candidate_count;
      for (std::size_t j = 0; j < candidate_count; ++j) {
        if (j % kCandidateStep == 0 && run.must_stop(stop, worker)) return;
        if (rows[j] < 0) continue;
        auto row = static_cast<std::size_t>(rows[j]);
        if (!scorer.score(q, 1, row, p.corpus.row(row), 0, 1)) {
          run.non_finite.store(true);
          return;
        }
        if (integer) {
          g.i32.push_back(scorer.int_scores()[0]);
        } else {
          g.f32.push_back(scorer.float_scores()[0]);
        }
        g.rows.push_back(rows[j]);
      }
      if (!sink.take(worker, {q, 1, 0, g.rows.data(), g.rows.size(),
                              integer ? nullptr : g.f32.data(), integer ? g.i32.data() : nullptr})) {
        run.sink_refused.store(true);
      }
    });
    Status status = run.status(stop, sink);
    if (status != Status::ok) return status;
    sink.end(chunk, chunk_rows);
  }
  return Status::ok;
}

}  // namespace simkernel::detail
