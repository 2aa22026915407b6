// The selection and the search driver, on the active ISA: ties, k against n,
// k = 0, padding, filters, pieces, thread counts, candidates, non-finite
// input, stopping, and a corpus of 10^12 rows that must cost no memory. Run
// by CI under AddressSanitizer + UBSan. Usage: driver_tests [isa]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "../src/selection.hpp"
#include "simkernel/dispatch.hpp"
#include "simkernel/search.hpp"

using namespace simkernel;

namespace {

int checks = 0;
int failures = 0;

void check(bool ok, const char* what, int line) {
  ++checks;
  if (!ok && ++failures <= 30) std::printf("FAILED line %d: %s\n", line, what);
}
#define CHECK(condition) check((condition), #condition, __LINE__)

StopFlag never_stop() { return StopFlag(); }

std::vector<float> normal_rows(std::size_t n, std::size_t dim, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> x(n * dim);
  for (float& v : x) v = normal(rng);
  return x;
}

Matrix rows_of(const void* data, std::size_t row_bytes, std::size_t n) {
  return {data, static_cast<std::ptrdiff_t>(row_bytes), n};
}

Problem float_problem(const std::vector<float>& q, const std::vector<float>& c, std::size_t dim,
                      Metric metric) {
  return {Pair::f32_f32, metric, rows_of(q.data(), 4 * dim, q.size() / dim),
          Corpus({rows_of(c.data(), 4 * dim, c.size() / dim)}), dim};
}

struct Found {
  std::vector<float> scores;
  std::vector<std::int64_t> indices;
};

Found run_topk(const Problem& p, std::size_t k, unsigned threads, const RowFilter& filter = {}) {
  std::size_t kk = result_count(k, p.corpus.rows);
  Found f{std::vector<float>(p.queries.rows * kk), std::vector<std::int64_t>(p.queries.rows * kk)};
  StopFlag stop = never_stop();
  Status s = topk(p, k, filter, threads, stop, f.scores.data(), f.indices.data());
  CHECK(s == Status::ok);
  return f;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

void test_selection() {
  using detail::Entry;
  using detail::TopK;
  // Ties go to the lower index whatever order they arrive in.
  TopK heap(3);
  for (std::int64_t i : {7, 2, 9, 4, 1}) heap.push({1.0, i});
  std::vector<Entry> best = heap.sorted();
  CHECK(best.size() == 3 && best[0].index == 1 && best[1].index == 2 && best[2].index == 4);
  heap.push({2.0, 50});
  best = heap.sorted();
  CHECK(best[0].index == 50 && best[1].index == 1 && best[2].index == 2);

  // Many entries, in any order and with ties, through many cuts of the
  // buffer: the k best of a full sort, and a bar that only rises.
  for (std::size_t k : {1, 5, 64}) {
    TopK many(k);
    std::vector<Entry> all;
    std::uint32_t state = 12345;
    double last_bar = -std::numeric_limits<double>::infinity();
    bool rising = true;
    for (std::int64_t i = 0; i < 3000; ++i) {
      state = state * 1664525u + 1013904223u;
      Entry e{static_cast<double>(state >> 24), (i * 7919) % 3000};  // 256 keys: ties
      all.push_back(e);
      many.push(e);
      rising = rising && many.bar() >= last_bar;
      last_bar = many.bar();
    }
    std::sort(all.begin(), all.end(), detail::Better{});
    std::vector<Entry> kept = many.sorted();
    bool same = kept.size() == k;
    for (std::size_t r = 0; same && r < k; ++r) {
      same = kept[r].key == all[r].key && kept[r].index == all[r].index;
    }
    CHECK(same && rising && many.full());
  }

  // k = 0 admits nothing.
  TopK none(0);
  none.push({1e300, 0});
  CHECK(none.sorted().empty() && std::isinf(none.bar()));

  // In-order offers: a score equal to the bar loses to the earlier row; the
  // filter is honoured; lower-is-better metrics keep the smallest.
  float scores[6] = {3, 5, 5, 1, 5, 4};
  TopK two(2);
  detail::offer(scores, 6, 10, Metric::dot, nullptr, two);
  best = two.sorted();
  CHECK(best[0].index == 11 && best[1].index == 12 && best[0].key == 5.0);
  std::uint8_t allowed[2] = {0b00101001, 0};  // rows 0, 3, 5 of 0..15
  TopK filtered(2);
  detail::offer(scores, 6, 0, Metric::dot, allowed, filtered);
  best = filtered.sorted();
  CHECK(best.size() == 2 && best[0].index == 5 && best[1].index == 0);
  TopK lowest(1);
  std::int32_t distances[4] = {9, 2, 2, 7};
  detail::offer(distances, 4, 0, Metric::sqeuclidean, nullptr, lowest);
  CHECK(lowest.sorted()[0].index == 1 && lowest.sorted()[0].key == -2.0);

  // Padding: index -1 with NaN (float) or 0 (int32) past the entries.
  std::vector<Entry> one{{-4.0, 6}};
  float fs[3];
  std::int32_t is[3];
  std::int64_t ix[3];
  detail::write_result(one, 3, 0, Metric::l2, false, fs, ix);
  CHECK(fs[0] == 4.0f && ix[0] == 6 && std::isnan(fs[1]) && ix[1] == -1 && ix[2] == -1);
  detail::write_result(one, 3, 0, Metric::sqeuclidean, true, is, ix);
  CHECK(is[0] == 4 && is[1] == 0 && is[2] == 0 && ix[1] == -1);
}

void test_topk_matches_cdist(std::mt19937& rng) {
  // 700 rows: several blocks and slices; 37 queries: blocks of 16 and a tail.
  // At 5 dimensions the call is too small for a second worker, at 64 and
  // 5000 it has two.
  for (std::size_t dim : {5, 64, 5000}) {
    std::size_t n = dim == 5000 ? 300 : 700, nq = 37, k = 9;
    auto q = normal_rows(nq, dim, rng), c = normal_rows(n, dim, rng);
    for (Metric metric : {Metric::dot, Metric::cosine, Metric::l2}) {
      Problem p = float_problem(q, c, dim, metric);
      std::vector<float> all(nq * n);
      StopFlag stop = never_stop();
      CHECK(cdist(p, 2, stop, all.data()) == Status::ok);
      Found f = run_topk(p, k, 2);
      bool ok = true;
      for (std::size_t i = 0; i < nq && ok; ++i) {
        // The reference: sort row i of the matrix, ties to the lower row.
        std::vector<std::int64_t> order(n);
        for (std::size_t j = 0; j < n; ++j) order[j] = static_cast<std::int64_t>(j);
        double sign = metric == Metric::l2 ? -1.0 : 1.0;
        std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
          return sign * all[i * n + a] > sign * all[i * n + b];
        });
        for (std::size_t r = 0; r < k && ok; ++r) {
          ok = f.indices[i * k + r] == order[r] &&
               f.scores[i * k + r] == all[i * n + static_cast<std::size_t>(order[r])];
        }
      }
      CHECK(ok);
      // Same bits whatever the thread count (capped at the work there is).
      CHECK(same_bits(run_topk(p, k, 1).scores, f.scores));
      CHECK(same_bits(run_topk(p, k, 100000).scores, f.scores));
    }
  }
}

void test_k_and_empty(std::mt19937& rng) {
  auto q = normal_rows(3, 8, rng), c = normal_rows(5, 8, rng);
  Problem p = float_problem(q, c, 8, Metric::dot);
  Found f = run_topk(p, 50, 2);  // k > n: n results, no padding
  CHECK(f.indices.size() == 15);
  bool all_valid = true;
  for (std::int64_t i : f.indices) all_valid = all_valid && i >= 0 && i < 5;
  CHECK(all_valid);
  StopFlag stop = never_stop();
  CHECK(topk(p, 0, {}, 2, stop, nullptr, nullptr) == Status::ok);  // k = 0: nothing written
  Problem no_queries = p;
  no_queries.queries.rows = 0;
  CHECK(run_topk(no_queries, 4, 2).indices.empty());
  Problem no_rows = float_problem(q, {}, 8, Metric::dot);
  CHECK(run_topk(no_rows, 4, 2).indices.empty());
}

void test_pieces_and_filters(std::mt19937& rng) {
  // 5 x 600 x 256 multiply-adds: work enough for two workers (threads_worth).
  std::size_t dim = 256, n = 600, nq = 5, k = 7;
  auto q = normal_rows(nq, dim, rng), c = normal_rows(n, dim, rng);
  Problem whole = float_problem(q, c, dim, Metric::cosine);
  Problem split = whole;
  split.corpus = Corpus({rows_of(c.data(), 4 * dim, 1), rows_of(c.data() + dim, 4 * dim, 300),
                         rows_of(c.data() + 301 * dim, 4 * dim, 299)});
  Found a = run_topk(whole, k, 2), b = run_topk(split, k, 2);
  CHECK(a.indices == b.indices && same_bits(a.scores, b.scores));

  // Query 0 may see rows 0..599 but 3 only for query 1: padded past 3.
  std::size_t bytes = (n + 7) / 8;
  std::vector<std::uint8_t> bits(nq * bytes, 0xff);
  std::fill(bits.begin() + bytes, bits.begin() + 2 * bytes, 0);
  bits[bytes + 0] = 0b10000010;  // rows 1 and 7
  bits[bytes + 70] = 0b00000001;  // row 560
  Found f = run_topk(whole, k, 2, RowFilter{bits.data(), bytes});
  CHECK(f.indices == run_topk(whole, k, 1, RowFilter{bits.data(), bytes}).indices);
  std::vector<std::int64_t> second(f.indices.begin() + k, f.indices.begin() + 2 * k);
  std::sort(second.begin(), second.begin() + 3);
  CHECK(second[0] == 1 && second[1] == 7 && second[2] == 560 && second[3] == -1 &&
        std::isnan(f.scores[k + 3]) && second[6] == -1);
  CHECK(std::equal(f.indices.begin(), f.indices.begin() + k, a.indices.begin()));
}

void test_integer_paths_are_exact(std::mt19937& rng) {
  std::size_t dim = 77, n = 300, nq = 6;
  std::vector<std::int8_t> q(nq * dim), c(n * dim);
  for (auto& v : q) v = static_cast<std::int8_t>(rng());
  for (auto& v : c) v = static_cast<std::int8_t>(rng());
  c[0] = -128;
  Problem p{Pair::i8_i8, Metric::sqeuclidean, rows_of(q.data(), dim, nq),
            Corpus({rows_of(c.data(), dim, n)}), dim};
  std::vector<std::int32_t> all(nq * n);
  StopFlag stop = never_stop();
  CHECK(cdist(p, 2, stop, all.data()) == Status::ok);
  bool exact = true;
  for (std::size_t i = 0; i < nq; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      std::int32_t want = 0;
      for (std::size_t d = 0; d < dim; ++d) {
        std::int32_t diff = std::int32_t{q[i * dim + d]} - c[j * dim + d];
        want += diff * diff;
      }
      exact = exact && all[i * n + j] == want;
    }
  }
  CHECK(exact);
  std::size_t bits = 200, bytes = 25;
  std::vector<std::uint8_t> qb(nq * bytes), cb(n * bytes);
  for (auto& v : qb) v = static_cast<std::uint8_t>(rng());
  for (auto& v : cb) v = static_cast<std::uint8_t>(rng());
  Problem h{Pair::bits_bits, Metric::hamming, rows_of(qb.data(), bytes, nq),
            Corpus({rows_of(cb.data(), bytes, n)}), bits};
  CHECK(cdist(h, 2, stop, all.data()) == Status::ok);
  exact = true;
  for (std::size_t i = 0; i < nq; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      std::int32_t want = 0;
      for (std::size_t b = 0; b < bytes; ++b) {
        want += __builtin_popcount(unsigned{qb[i * bytes + b]} ^ cb[j * bytes + b]);
      }
      exact = exact && all[i * n + j] == want;
    }
  }
  CHECK(exact);
}

void test_rescore(std::mt19937& rng) {
  std::size_t dim = 24, n = 400, nq = 4, m = 30, k = 5;
  auto q = normal_rows(nq, dim, rng), c = normal_rows(n, dim, rng);
  Problem p = float_problem(q, c, dim, Metric::dot);
  std::vector<std::int64_t> candidates(nq * m);
  for (std::size_t i = 0; i < nq * m; ++i) candidates[i] = static_cast<std::int64_t>((i * 37) % n);
  for (std::size_t j = 0; j < m; ++j) candidates[3 * m + j] = j < 2 ? static_cast<std::int64_t>(j) : -1;
  std::vector<float> scores(nq * k), all(nq * n);
  std::vector<std::int64_t> indices(nq * k);
  StopFlag stop = never_stop();
  CHECK(rescore(p, candidates.data(), m, k, 3, stop, scores.data(), indices.data()) == Status::ok);
  CHECK(cdist(p, 1, stop, all.data()) == Status::ok);
  bool ok = true;
  for (std::size_t i = 0; i < 3; ++i) {
    std::vector<std::int64_t> order(candidates.begin() + i * m, candidates.begin() + (i + 1) * m);
    std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      float sa = all[i * n + a], sb = all[i * n + b];
      return sa > sb || (sa == sb && a < b);
    });
    for (std::size_t r = 0; r < k; ++r) ok = ok && indices[i * k + r] == order[r];
  }
  CHECK(ok);
  // Query 3 had two candidates and padding: two results, then -1 / NaN.
  CHECK(indices[15] >= 0 && indices[16] >= 0 && indices[17] == -1 && std::isnan(scores[19]));
}

// Affine int8 codes score the vectors offsets + steps * code, for every
// metric, through the corpus scan (few queries and a batch) and rescoring.
void test_affine_codes(std::mt19937& rng) {
  std::size_t dim = 37, n = 300;
  std::uniform_int_distribution<int> code(-128, 127);
  std::uniform_real_distribution<float> step(0.0f, 0.05f), offset(-3.0f, 3.0f);
  std::vector<std::int8_t> codes(n * dim);
  for (auto& c : codes) c = static_cast<std::int8_t>(code(rng));
  std::vector<float> steps(dim), offsets(dim);
  for (std::size_t d = 0; d < dim; ++d) {
    steps[d] = d % 9 == 0 ? 0.0f : step(rng);
    offsets[d] = offset(rng);
  }
  std::vector<double> decoded(n * dim), row_sqnorms(n, 0.0);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t d = 0; d < dim; ++d) {
      double x = offsets[d] + static_cast<double>(steps[d]) * codes[r * dim + d];
      decoded[r * dim + d] = x;
      row_sqnorms[r] += x * x;
    }
  }
  for (std::size_t nq : {3, 40}) {
    auto q = normal_rows(nq, dim, rng);
    for (Metric metric : {Metric::dot, Metric::cosine, Metric::sqeuclidean, Metric::l2}) {
      Problem p{Pair::f32_i8, metric, rows_of(q.data(), 4 * dim, nq),
                Corpus({rows_of(codes.data(), dim, n)}), dim,
                AffineCodes{steps.data(), offsets.data(), row_sqnorms.data()}};
      std::vector<float> all(nq * n);
      StopFlag stop = never_stop();
      CHECK(cdist(p, 2, stop, all.data()) == Status::ok);
      double worst = 0;
      for (std::size_t i = 0; i < nq; ++i) {
        for (std::size_t r = 0; r < n; ++r) {
          double dot = 0, qq = 0, diff = 0;
          for (std::size_t d = 0; d < dim; ++d) {
            double a = q[i * dim + d], b = decoded[r * dim + d];
            dot += a * b;
            qq += a * a;
            diff += (a - b) * (a - b);
          }
          double want = metric == Metric::dot      ? dot
                        : metric == Metric::cosine ? dot / std::sqrt(qq * row_sqnorms[r])
                        : metric == Metric::l2     ? std::sqrt(diff)
                                                   : diff;
          double scale = metric == Metric::cosine ? 1.0 : std::sqrt(qq * row_sqnorms[r]) + diff;
          worst = std::max(worst, std::abs(all[i * n + r] - want) / (scale + 1e-30));
        }
      }
      CHECK(worst < 1e-5);
      // top-k and rescoring keep those scores.
      Found f = run_topk(p, 5, 2);
      bool kept = true;
      for (std::size_t i = 0; i < nq * 5; ++i) {
        kept = kept && f.scores[i] == all[(i / 5) * n + static_cast<std::size_t>(f.indices[i])];
      }
      CHECK(kept);
      std::vector<float> rescored(nq * 5);
      std::vector<std::int64_t> again(nq * 5);
      CHECK(rescore(p, f.indices.data(), 5, 5, 2, stop, rescored.data(), again.data()) ==
            Status::ok);
      CHECK(again == f.indices);
    }
  }
}

void test_non_finite_and_stop(std::mt19937& rng) {
  std::size_t dim = 8;
  auto q = normal_rows(2, dim, rng), c = normal_rows(500, dim, rng);
  c[321 * dim + 3] = std::numeric_limits<float>::quiet_NaN();
  Problem p = float_problem(q, c, dim, Metric::dot);
  std::vector<float> scores(2 * 3);
  std::vector<std::int64_t> indices(2 * 3);
  StopFlag stop = never_stop();
  CHECK(topk(p, 3, {}, 2, stop, scores.data(), indices.data()) == Status::non_finite);

  // A zero-stride view claiming 10^12 rows: blocks are found on demand (no
  // per-block memory), and a stop request ends the scan.
  std::vector<float> one = normal_rows(1, dim, rng);
  Problem huge{Pair::f32_f32, Metric::dot, rows_of(q.data(), 4 * dim, 1),
               Corpus({Matrix{one.data(), 0, std::size_t{1} << 40}}), dim};
  StopFlag asked([] { return true; });
  CHECK(topk(huge, 3, {}, 2, asked, scores.data(), indices.data()) == Status::interrupted);
}

void test_range_search(std::mt19937& rng) {
  // Bounds in the score's type: exact against the threshold in double.
  using detail::range_test_f32;
  using detail::range_test_i32;
  double between = std::nextafter(static_cast<double>(0.1f), 1.0);  // above 0.1f
  CHECK(!range_test_f32(between, true).passes(0.1f));
  CHECK(range_test_f32(between, true).passes(std::nextafter(0.1f, 1.0f)));
  CHECK(range_test_f32(between, false).passes(0.1f));
  CHECK(range_test_f32(1e300, false).passes(3e38f) && !range_test_f32(1e300, true).passes(3e38f));
  CHECK(range_test_f32(-1e300, true).passes(-3e38f));
  CHECK(range_test_i32(2.5, true).passes(3) && !range_test_i32(2.5, true).passes(2));
  CHECK(range_test_i32(2.5, false).passes(2) && !range_test_i32(2.5, false).passes(3));
  CHECK(range_test_i32(3e9, true).none && range_test_i32(-3e9, true).passes(-2147483647 - 1));
  CHECK(range_test_i32(std::nan(""), true).none);

  // 700 rows, 37 queries, on two workers: what cdist puts past a threshold,
  // best first, ties to the lower row (duplicate rows make ties).
  std::size_t dim = 64, n = 700, nq = 37;
  auto q = normal_rows(nq, dim, rng), c = normal_rows(n, dim, rng);
  std::copy(c.begin(), c.begin() + 100 * dim, c.begin() + 300 * dim);
  for (Metric metric : {Metric::dot, Metric::l2}) {
    Problem p = float_problem(q, c, dim, metric);
    std::vector<float> all(nq * n);
    StopFlag stop = never_stop();
    CHECK(cdist(p, 2, stop, all.data()) == Status::ok);
    double threshold = metric == Metric::dot ? 8.0 : 10.0;
    RangeResults r;
    CHECK(range_search(p, threshold, {}, SIZE_MAX, 2, stop, &r) == Status::ok);
    CHECK(r.lims.size() == nq + 1 && r.f32.size() == r.indices.size());
    bool ok = true;
    for (std::size_t i = 0; i < nq && ok; ++i) {
      std::vector<std::int64_t> want;
      for (std::size_t j = 0; j < n; ++j) {
        float s = all[i * n + j];
        if (metric == Metric::dot ? s >= threshold : s <= threshold) want.push_back(std::int64_t(j));
      }
      double sign = metric == Metric::dot ? 1.0 : -1.0;
      std::stable_sort(want.begin(), want.end(), [&](std::int64_t a, std::int64_t b) {
        return sign * all[i * n + a] > sign * all[i * n + b];
      });
      std::vector<std::int64_t> got(r.indices.begin() + r.lims[i], r.indices.begin() + r.lims[i + 1]);
      ok = got == want;
      for (std::size_t e = 0; e < got.size() && ok; ++e) {
        ok = r.f32[r.lims[i] + e] == all[i * n + static_cast<std::size_t>(got[e])];
      }
    }
    CHECK(ok);
    CHECK(r.indices.size() > 100);  // the threshold lets some rows in
    // The cap: exactly the total passes, one less stops with nothing held.
    std::size_t total = r.indices.size();
    RangeResults capped;
    CHECK(range_search(p, threshold, {}, total, 2, stop, &capped) == Status::ok);
    CHECK(capped.indices == r.indices);
    CHECK(range_search(p, threshold, {}, total - 1, 2, stop, &capped) ==
          Status::too_many_results);
    CHECK(capped.indices.empty() && capped.lims.size() == 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    const IsaInfo* isa = find_isa(argv[1]);
    if (isa == nullptr || !select_isa(*isa)) {
      std::printf("ISA %s is unknown or not supported here\n", argv[1]);
      return 2;
    }
  }
  std::printf("driver tests on %s\n", active_isa().name);
  std::mt19937 rng(2024);
  test_selection();
  test_topk_matches_cdist(rng);
  test_k_and_empty(rng);
  test_pieces_and_filters(rng);
  test_integer_paths_are_exact(rng);
  test_rescore(rng);
  test_affine_codes(rng);
  test_non_finite_and_stop(rng);
  test_range_search(rng);
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
