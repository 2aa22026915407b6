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

// Higher key first; equal keys go to the lower index.
bool better(const Entry& a, const Entry& b);

bool higher_is_better(Metric metric);

// The k best entries seen so far, as a heap whose front is the worst of them.
class TopK {
 public:
  explicit TopK(std::size_t k);

  bool full() const { return heap_.size() == k_; }
  // The key a new entry must beat to get in: -inf until k are held, +inf
  // when k is 0 (nothing gets in). Inline: it is asked once per score.
  double bar() const {
    constexpr double kInfinity = std::numeric_limits<double>::infinity();
    if (k_ == 0) return kInfinity;
    return heap_.size() < k_ ? -kInfinity : heap_.front().key;
  }
  // Keeps `e` if it is among the k best so far, in any arrival order.
  void push(const Entry& e);
  void push_all_into(TopK& other) const;
  void clear() { heap_.clear(); }
  std::vector<Entry> sorted() const;

 private:
  std::size_t k_;
  std::vector<Entry> heap_;
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

// Writes the first k of `entries` (best first) as row `query` of the
// results; when there are fewer, the rest is padding: index -1, score NaN
// (or 0 for int32 scores).
void write_result(const std::vector<Entry>& entries, std::size_t k, std::size_t query,
                  Metric metric, bool integer_out, void* scores, std::int64_t* indices);

}  // namespace simkernel::detail
