// The scan, written once: it walks the corpus (or each query's candidate
// rows) tile by tile on the worker threads, scores each tile, and hands the
// scores to a result sink. Every kind of search is a sink: top-k and the
// full matrix and ranges today (search.cpp), a max-per-document sink next.
#pragma once

#include <cstddef>
#include <cstdint>

#include "simkernel/parallel.hpp"
#include "simkernel/search.hpp"

namespace simkernel::detail {

// Finished scores (the metric's values) of queries [q0, q0 + nq) against
// nc corpus rows: rows first_row, first_row + 1, ... when `rows` is null (a
// block scan: rows arrive in increasing order per worker), else rows[0..nc)
// (candidates: any order). Row-major nq x nc; exactly one of f32 and i32 is
// set, by the pair and metric (integer_scores). `squared`: f32 holds the
// squares of float l2 distances, for a sink that asked for them.
struct ScoredTile {
  std::size_t q0;
  std::size_t nq;
  std::size_t first_row;
  const std::int64_t* rows;
  std::size_t nc;
  const float* f32;
  const std::int32_t* i32;
  bool squared = false;
};

class Sink {
 public:
  virtual ~Sink() = default;
  // Queries handled per pass over the corpus by `workers` workers (so
  // per-query state stays bounded); every query at once by default.
  virtual std::size_t query_chunk(unsigned) const { return static_cast<std::size_t>(-1); }
  // Whether the sink takes float l2 block scores as squares and roots only
  // what it keeps (top-k: a square root per kept score, not per score).
  virtual bool takes_squares() const { return false; }
  // Before a chunk [q0, q0 + nq) is scanned, on the calling thread, with
  // `workers` the number of workers that may call take.
  virtual void begin(std::size_t q0, std::size_t nq, unsigned workers) = 0;
  // One scored tile, from worker `worker` (< workers); tiles of one worker
  // arrive one at a time. false stops the scan, which then returns status().
  virtual bool take(unsigned worker, const ScoredTile& tile) = 0;
  // Why take refused a tile (Status::ok while it has not).
  virtual Status status() const { return Status::ok; }
  // After a chunk has been scanned completely, on the calling thread.
  virtual void end(std::size_t q0, std::size_t nq) = 0;
};

// Every corpus row against every query.
Status scan_corpus(const Problem& p, Sink& sink, unsigned threads, StopFlag& stop);

// Each query against its own candidate rows (query_rows x candidate_count,
// in range and distinct per query; a negative one is padding and skipped).
Status scan_candidates(const Problem& p, const std::int64_t* candidates,
                       std::size_t candidate_count, Sink& sink, unsigned threads,
                       StopFlag& stop);

}  // namespace simkernel::detail
