// Top-k selection: the running best-k of one query, and how its results are
// written out. Baseline code, shared by the sinks of search.cpp and tested
// on its own by cpp/tests/driver_tests.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "simkernel/search.hpp"

namespace simkernel::detail {

// One candidate. `key` is the score, negated for metrics where lower is
// better, so that "better" is one total order everywhere.
struct Entry {
  double key;
  std::int64_t index;
};

// Higher key first; equal keys go to the lower index. Inline, and as a
// function object for the standard algorithms: a function pointer there is
// called, not inlined (its calls were 5% of the samples of a 16-query,
// k = 1000 search over 1M rows).
inline bool better(const Entry& a, const Entry& b) {
  return a.key > b.key || (a.key == b.key && a.index < b.index);
}
struct Better {
  bool operator()(const Entry& a, const Entry& b) const { return better(a, b); }
};

bool higher_is_better(Metric metric);

// The k best entries seen so far. Entries that beat the bar are appended to
// a buffer; when it holds 2k, it is cut back to its k best (nth_element)
// and the worst of those becomes the bar. That is amortised O(1) per entry
// where a heap costs O(log k) (at k = 1000, 16 queries over 1M rows, the
// heap's pushes cost 14% of the search); the bar only rises, and at least
// k held entries beat it, so what it turns away could never be among the k
// best.
class TopK {
 public:
  // Reserves the buffer's 2k entries: pushes never allocate, so workers
  // may push (the caller bounds how many heaps there are: kHeapBytes).
  explicit TopK(std::size_t k) : k_(k) { entries_.reserve(2 * k); }

  bool full() const { return has_bar_; }
  // The key a new entry must beat to get in: -inf until the first cut,
  // +inf when k is 0 (nothing gets in). Inline: it is asked once per score.
  double bar() const {
    constexpr double kInfinity = std::numeric_limits<double>::infinity();
    if (k_ == 0) return kInfinity;
    return has_bar_ ? bar_.key : -kInfinity;
  }
  // Keeps `e` if it may be among the k best so far, in any arrival order.
  void push(const Entry& e) {
    if (k_ == 0 || (has_bar_ && !better(e, bar_))) return;
    entries_.push_back(e);
    if (entries_.size() >= 2 * k_) cut();
  }
  void push_all_into(TopK& other) const;
  // The k best, best first: the buffer sorted in place and cut to k (no
  // allocation, so a worker may call it); pushing on afterwards is fine.
  const std::vector<Entry>& sorted();

 private:
  void cut();

  std::size_t k_;
  std::vector<Entry> entries_;
  bool has_bar_ = false;
  Entry bar_{0.0, 0};
};

// Offers scores of consecutive rows first_row, first_row + 1, ... to a heap
// that only ever gets rows in increasing order, so a score equal to the bar
// loses its tie and only strictly better ones are pushed. `allowed` is a
// row bitmap (bit r % 8 of byte r / 8), or null for every row; it is read
// only for scores that pass the bar.
void offer(const float* scores, std::size_t count, std::size_t first_row, Metric metric,
           const std::uint8_t* allowed, TopK& heap);
void offer(const std::int32_t* scores, std::size_t count, std::size_t first_row, Metric metric,
           const std::uint8_t* allowed, TopK& heap);

// offer of l2 distances given as their squares: the square root (the l2
// score exactly as the scorer would round it) is taken only of squares
// that can beat the bar, so a search roots about k scores per query, not
// one per row, and keeps exactly what offering the roots would keep.
void offer_square_roots(const float* squares, std::size_t count, std::size_t first_row,
                        const std::uint8_t* allowed, TopK& heap);

// The test of a range search in the score's own type, which the compiler
// vectorises: a score passes when, widened to double, it is at least the
// threshold (similarities) or at most it (distances). `bound` is the
// threshold rounded inward to the type, so the test is exact; `none` marks a
// threshold no score of the type can pass.
template <typename Score>
struct RangeTest {
  Score bound;
  bool higher;
  bool none;
  bool passes(Score s) const { return !none && (higher ? s >= bound : s <= bound); }
};

RangeTest<float> range_test_f32(double threshold, bool higher);
RangeTest<std::int32_t> range_test_i32(double threshold, bool higher);

// Writes to `out` the entries of the scores that pass `test` and the row
// filter (rows first_row + j, or rows[j] when rows is not null), in order;
// returns how many. `out` has room for `count`. The keys are signed as
// TopK's are.
std::size_t collect_in_range(const float* scores, std::size_t count, const RangeTest<float>& test,
                             std::size_t first_row, const std::int64_t* rows,
                             const std::uint8_t* allowed, Entry* out);
std::size_t collect_in_range(const std::int32_t* scores, std::size_t count,
                             const RangeTest<std::int32_t>& test, std::size_t first_row,
                             const std::int64_t* rows, const std::uint8_t* allowed, Entry* out);

// Writes the first k of `entries` (best first) as row `query` of the
// results; when there are fewer, the rest is padding: index -1, score NaN
// (or 0 for int32 scores).
void write_result(const std::vector<Entry>& entries, std::size_t k, std::size_t query,
                  Metric metric, bool integer_out, void* scores, std::int64_t* indices);

}  // namespace simkernel::detail
