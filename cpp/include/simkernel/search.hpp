// The search driver: blocking, metric finishing, top-k selection, threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "simkernel/parallel.hpp"

namespace simkernel {

// Element types of (queries, corpus). Float16, bfloat16 and float64 queries
// are widened to float32 before they get here; they are small, the corpus is
// not.
enum class Pair { f32_f32, f32_f16, f32_bf16, f32_i8, f32_bits, i8_i8, bits_bits };
enum class Metric { dot, cosine, sqeuclidean, l2, hamming };

struct Matrix {
  const void* data;
  std::ptrdiff_t row_stride;  // bytes; may be negative
  std::size_t rows;
};

// A corpus in one or more pieces of the same element type and width, its
// rows numbered across the pieces in order (an Index grows by adding pieces
// rather than by copying what it holds).
struct Corpus {
  explicit Corpus(std::vector<Matrix> pieces);
  const void* row(std::size_t i) const;

  std::vector<Matrix> pieces;
  std::vector<std::size_t> starts;  // first row of each piece
  std::size_t rows = 0;
};

// int8 codes quantized per dimension (Pair::f32_i8 only): row r stands for
// the vector offsets + steps * code_r, and is scored as that vector. The
// scan scales the queries by the steps once, so the kernels' dot with the
// codes is q . (x_r - offsets); q . offsets, one number per query, completes
// it, and the decoded rows' squared norms (kept beside the codes) finish
// cosine and distances. No steps: plain codes.
struct AffineCodes {
  const float* steps = nullptr;        // dim
  const float* offsets = nullptr;      // dim
  const double* row_sqnorms = nullptr;  // corpus rows
};

struct Problem {
  Pair pair;
  Metric metric;
  Matrix queries;
  Corpus corpus;
  std::size_t dim;  // elements per row; bits for bit-packed rows
  AffineCodes affine = {};
};

// too_many_results: a range search found more than its max_results;
// out_of_memory: a worker could not grow its result lists. Either stops the
// scan with nothing returned.
enum class Status { ok, non_finite, interrupted, too_many_results, out_of_memory };

// The corpus rows a search may return: bit (r % 8) of byte (r / 8) set means
// row r is allowed. One bitmap for every query (query_stride 0) or one per
// query; no bitmap allows every row. Filtered rows are still scored (the
// kernels stay branch-free); only the top-k selection consults the bits.
struct RowFilter {
  const std::uint8_t* bits = nullptr;
  std::size_t query_stride = 0;  // bytes
};

// Results per query of topk and rescore: min(k, rows to choose from).
std::size_t result_count(std::size_t k, std::size_t rows);

// True when the metric's scores are exact int32 rather than float32.
bool integer_scores(Pair pair, Metric metric);

// Best k' = min(k, corpus rows) per query, best first, ties to the lower row.
// `scores` is float* or int32_t* (see integer_scores), both query_rows x k'.
// A query with fewer than k' allowed rows has its row of results padded with
// index -1 and score NaN (float) or 0 (int32).
Status topk(const Problem& problem, std::size_t k, const RowFilter& filter,
            unsigned threads, StopFlag& stop, void* scores,
            std::int64_t* indices);

// The full query_rows x corpus_rows score matrix, row-major.
Status cdist(const Problem& problem, unsigned threads, StopFlag& stop,
             void* scores);

// Re-ranks `candidates` (query_rows x candidate_count row numbers, each in
// range and distinct within its row, as the caller has checked) against the
// corpus: best k' = min(k, candidate_count) per query. A negative candidate
// is padding (a filtered first stage found fewer rows) and is skipped; the
// results are then padded as topk's are.
Status rescore(const Problem& problem, const std::int64_t* candidates,
               std::size_t candidate_count, std::size_t k, unsigned threads,
               StopFlag& stop, void* scores, std::int64_t* indices);

// What a range search returns: the results of query i are entries
// [lims[i], lims[i + 1]) of scores (f32, or i32 for integer_scores) and
// indices, best first, ties to the lower row.
struct RangeResults {
  std::vector<std::int64_t> lims{0};
  std::vector<float> f32;
  std::vector<std::int32_t> i32;
  std::vector<std::int64_t> indices;
};

// Every allowed corpus row whose score is at least `threshold` (similarities)
// or at most it (distances), compared exactly (the score widened to double),
// for each query. More than `max_results` results in all stops the search
// with Status::too_many_results before their entries are held.
Status range_search(const Problem& problem, double threshold, const RowFilter& filter,
                    std::size_t max_results, unsigned threads, StopFlag& stop,
                    RangeResults* out);

// The sum of n floats, each of `threads` workers streaming its own slice with
// the active ISA's widest loads: timed, it measures read bandwidth.
double stream_sum(const float* data, std::size_t n, unsigned threads);

// Every one of `threads` workers runs the active ISA's FMA chains for
// `steps` rounds: timed, it measures the float compute peak. Returns the
// floating-point operations done by all workers.
double fma_peak(std::size_t steps, unsigned threads);

// float32 calls of at least this many queries take the active ISA's batch
// kernel (0 where it has none): docs/semantics.md.
std::size_t batch_queries();

// Calls of at least this many queries take the batch kernels that pack rows
// (0 where the ISA has none); the same scores as below it, bit for bit.
std::size_t packed_batch_queries();

// The same with the active ISA's int8 multiply-add chains: the int8 peak.
// Returns the multiply-adds done by all workers.
double int8_peak(std::size_t steps, unsigned threads);

}  // namespace simkernel
