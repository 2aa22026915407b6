#include "selection.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace simkernel::detail {
namespace {

bool allowed_row(const std::uint8_t* bits, std::size_t row) {
  return bits == nullptr || ((bits[row / 8] >> (row % 8)) & 1u) != 0;
}

// Once the heap is full almost nothing gets in, so each chunk is first
// tested as a whole with a compare-and-or loop the compiler vectorises.
template <bool Higher, typename Score>
void offer_in_order(const Score* scores, std::size_t count, std::size_t first_row,
                    const std::uint8_t* allowed, TopK& heap) {
  constexpr std::size_t kChunk = 32;
  constexpr double sign = Higher ? 1.0 : -1.0;
  for (std::size_t start = 0; start < count; start += kChunk) {
    std::size_t end = std::min(count, start + kChunk);
    if (heap.full()) {
      // The bar is a score of this type, negated or not: exact either way.
      auto bar = static_cast<Score>(sign * heap.bar());
      // A count, not a bool |=: GCC 12 vectorises an integer sum of
      // comparisons but leaves a boolean reduction scalar.
      int hits = 0;
      for (std::size_t j = start; j < end; ++j) hits += Higher ? scores[j] > bar : scores[j] < bar;
      if (hits == 0) continue;
    }
    for (std::size_t j = start; j < end; ++j) {
      double key = sign * static_cast<double>(scores[j]);
      if (key > heap.bar() && allowed_row(allowed, first_row + j)) {
        heap.push({key, static_cast<std::int64_t>(first_row + j)});
      }
    }
  }
}

template <typename Score>
void offer_any(const Score* scores, std::size_t count, std::size_t first_row, Metric metric,
               const std::uint8_t* allowed, TopK& heap) {
  if (higher_is_better(metric)) {
    offer_in_order<true>(scores, count, first_row, allowed, heap);
  } else {
    offer_in_order<false>(scores, count, first_row, allowed, heap);
  }
}

template <typename Score>
std::size_t collect_passing(const Score* scores, std::size_t count, const RangeTest<Score>& test,
                            std::size_t first_row, const std::int64_t* rows,
                            const std::uint8_t* allowed, Entry* out) {
  if (test.none) return 0;
  // Almost every score fails: a vectorised count first (see offer_in_order).
  int hits = 0;
  for (std::size_t j = 0; j < count; ++j) hits += test.passes(scores[j]);
  if (hits == 0) return 0;
  double sign = test.higher ? 1.0 : -1.0;
  std::size_t n = 0;
  for (std::size_t j = 0; j < count; ++j) {
    auto row = rows != nullptr ? rows[j] : static_cast<std::int64_t>(first_row + j);
    if (test.passes(scores[j]) && allowed_row(allowed, static_cast<std::size_t>(row))) {
      out[n++] = {sign * static_cast<double>(scores[j]), row};
    }
  }
  return n;
}

}  // namespace

RangeTest<float> range_test_f32(double threshold, bool higher) {
  constexpr double kMax = std::numeric_limits<float>::max();
  constexpr float kInfinity = std::numeric_limits<float>::infinity();
  if (std::isnan(threshold)) return {0.0f, higher, true};
  // Beyond float range only an infinity passes, and scores are finite.
  if (threshold > kMax) return {kInfinity, higher, higher};
  if (threshold < -kMax) return {-kInfinity, higher, !higher};
  auto bound = static_cast<float>(threshold);
  if (higher && static_cast<double>(bound) < threshold) bound = std::nextafter(bound, kInfinity);
  if (!higher && static_cast<double>(bound) > threshold) bound = std::nextafter(bound, -kInfinity);
  return {bound, higher, false};
}

RangeTest<std::int32_t> range_test_i32(double threshold, bool higher) {
  constexpr double kMin = std::numeric_limits<std::int32_t>::min();
  constexpr double kMax = std::numeric_limits<std::int32_t>::max();
  if (std::isnan(threshold)) return {0, higher, true};
  double bound = higher ? std::ceil(threshold) : std::floor(threshold);
  if (higher ? bound > kMax : bound < kMin) return {0, higher, true};
  bound = std::clamp(bound, kMin, kMax);  // past the other end every score passes
  return {static_cast<std::int32_t>(bound), higher, false};
}

std::size_t collect_in_range(const float* scores, std::size_t count, const RangeTest<float>& test,
                             std::size_t first_row, const std::int64_t* rows,
                             const std::uint8_t* allowed, Entry* out) {
  return collect_passing(scores, count, test, first_row, rows, allowed, out);
}

std::size_t collect_in_range(const std::int32_t* scores, std::size_t count,
                             const RangeTest<std::int32_t>& test, std::size_t first_row,
                             const std::int64_t* rows, const std::uint8_t* allowed, Entry* out) {
  return collect_passing(scores, count, test, first_row, rows, allowed, out);
}

void offer_square_roots(const float* squares, std::size_t count, std::size_t first_row,
                        const std::uint8_t* allowed, TopK& heap) {
  constexpr std::size_t kChunk = 32;
  for (std::size_t start = 0; start < count; start += kChunk) {
    std::size_t end = std::min(count, start + kChunk);
    if (heap.full()) {
      // A root below the bar b (a float) means a square below b^2 (in
      // reals: sqrt rounds to nearest, so sqrt(s) < b needs s < b^2). b^2
      // is exact in double; rounded up to float it is a test that misses
      // no square that can enter.
      double b = -heap.bar();
      double b2 = b * b;
      auto limit = static_cast<float>(b2);
      if (static_cast<double>(limit) < b2) limit = std::nextafter(limit, HUGE_VALF);
      int hits = 0;
      for (std::size_t j = start; j < end; ++j) hits += squares[j] <= limit;
      if (hits == 0) continue;
    }
    for (std::size_t j = start; j < end; ++j) {
      double key = -static_cast<double>(std::sqrt(squares[j]));
      if (key > heap.bar() && allowed_row(allowed, first_row + j)) {
        heap.push({key, static_cast<std::int64_t>(first_row + j)});
      }
    }
  }
}

bool higher_is_better(Metric metric) {
  return metric == Metric::dot || metric == Metric::cosine;
}

void TopK::cut() {
  auto kth = entries_.begin() + static_cast<std::ptrdiff_t>(k_ - 1);
  std::nth_element(entries_.begin(), kth, entries_.end(), Better{});
  entries_.resize(k_);
  bar_ = entries_.back();
  has_bar_ = true;
}

void TopK::push_all_into(TopK& other) const {
  for (const Entry& e : entries_) other.push(e);
}

const std::vector<Entry>& TopK::sorted() {
  std::sort(entries_.begin(), entries_.end(), Better{});
  if (entries_.size() > k_) {
    entries_.resize(k_);
    bar_ = entries_.back();
    has_bar_ = true;
  }
  return entries_;
}

void offer(const float* scores, std::size_t count, std::size_t first_row, Metric metric,
           const std::uint8_t* allowed, TopK& heap) {
  offer_any(scores, count, first_row, metric, allowed, heap);
}

void offer(const std::int32_t* scores, std::size_t count, std::size_t first_row, Metric metric,
           const std::uint8_t* allowed, TopK& heap) {
  offer_any(scores, count, first_row, metric, allowed, heap);
}

void write_result(const std::vector<Entry>& entries, std::size_t k, std::size_t query,
                  Metric metric, bool integer_out, void* scores, std::int64_t* indices) {
  constexpr Entry kPadding{std::numeric_limits<double>::quiet_NaN(), -1};
  double sign = higher_is_better(metric) ? 1.0 : -1.0;
  for (std::size_t r = 0; r < k; ++r) {
    const Entry& entry = r < entries.size() ? entries[r] : kPadding;
    double score = entry.index < 0 && integer_out ? 0.0 : sign * entry.key;
    if (integer_out) {
      static_cast<std::int32_t*>(scores)[query * k + r] = static_cast<std::int32_t>(score);
    } else {
      static_cast<float*>(scores)[query * k + r] = static_cast<float>(score);
    }
    indices[query * k + r] = entry.index;
  }
}

}  // namespace simkernel::detail
