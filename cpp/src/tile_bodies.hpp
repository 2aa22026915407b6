// The tile algorithms of the SIMD ISA files, written once over a small set of
// vector operations that each ISA file supplies as a struct (`V` below):
//
//   kStep          dimensions per step: one vector of float32 lanes
//   kBlockRows     corpus rows per register block of 4 queries (by register count)
//   kBitsRows      bit rows one query scores together
//   Acc, Wide      one summation class's partial sums; one step widened to float32
//   zero()         an Acc of +0.0
//   splat(x)       a Wide of x in every lane
//   madd(acc, a, b)     acc + a * b, fused, lane by lane
//   add_wide(acc, w)    acc + w in madd's order, so madd by +1 / -1 equals it
//   add(a, b)           lane-wise sum of two Acc
//   reduce(acc)         an Acc's lanes summed in the ISA's fixed order
//   reduce4(accs, out)  reduce of four Acc, to *out[0..3]
//   load(p), load_tail(p, n)   a step of float / binary16 / bfloat16 / int8 elements,
//                       widened; a tail step loads the first n < kStep and
//                       reads nothing past them (the rest are 0)
//   with_bit_signs(w, bits, s, dim)   w with its sign flipped in the lanes
//                       whose bit in step s of a packed bit row is clear
//   store(p, w)         kStep floats
//
// and, for the batch kernels (batch_tile and micro_batch_tile below),
// operations on one register of kLanes float32 lanes, listed there.
//
// Each ISA file includes this after its intrinsics header. Everything here is
// in an anonymous namespace: each including file gets its own copy, compiled
// with its own flags only, so the linker can never hand one ISA's copy to
// another ISA's callers or to the baseline's (docs/architecture.md).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simkernel/kernels.hpp"

namespace simkernel {
namespace {

template <typename T>
const T* row(const void* base, std::ptrdiff_t stride, std::size_t i) {
  return reinterpret_cast<const T*>(static_cast<const char*>(base) +
                                    static_cast<std::ptrdiff_t>(i) * stride);
}

// The last n (< kStep) elements of a row, copied into a zeroed buffer and
// loaded as a whole step: for element types without a masked load.
template <typename V, typename T>
typename V::Wide load_padded(const T* p, std::size_t n) {
  T buffer[V::kStep] = {};
  std::memcpy(buffer, p, n * sizeof *p);
  return V::load(buffer);
}

// Every pair's sum has one fixed shape, whatever path computes it: step s
// goes to accumulator s % 4 (the last step zero-padded or masked), each
// accumulator in increasing s, and the four are combined as (a0 + a1) +
// (a2 + a3) before V::reduce. So a score depends on neither the batch, nor
// the tile, nor the thread.
constexpr int kClasses = 4;

template <typename V>
typename V::Acc combine(const typename V::Acc* part) {
  return V::add(V::add(part[0], part[1]), V::add(part[2], part[3]));
}

// One query against one row after another: memory is read in order, which
// streams faster than interleaving rows, and the four accumulators of the
// fixed shape are four independent FMA chains. With Norms the row's squared
// norm is summed in the same pass.
template <typename V, typename T, bool Norms>
void float_row(const Tile& t, std::size_t i, float* scores, float* norms) {
  using Acc = typename V::Acc;
  using Wide = typename V::Wide;
  constexpr std::size_t w = V::kStep;
  const float* q = row<float>(t.queries, t.query_stride, i);
  std::size_t full = t.dim / w;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    const T* c = row<T>(t.corpus, t.corpus_stride, j);
    Acc acc[kClasses], norm[kClasses];
    for (int k = 0; k < kClasses; ++k) acc[k] = norm[k] = V::zero();
    auto step = [&](std::size_t k, Wide qv, Wide cv) {
      acc[k] = V::madd(acc[k], qv, cv);
      if (Norms) norm[k] = V::madd(norm[k], cv, cv);
    };
    std::size_t s = 0;
    for (; s + kClasses <= full; s += kClasses) {
      for (int k = 0; k < kClasses; ++k) step(k, V::load(q + w * (s + k)), V::load(c + w * (s + k)));
    }
    for (; s < full; ++s) step(s % kClasses, V::load(q + w * s), V::load(c + w * s));
    if (w * full < t.dim) {
      std::size_t n = t.dim - w * full;
      step(full % kClasses, V::load_tail(q + w * full, n), V::load_tail(c + w * full, n));
    }
    scores[i * t.corpus_count + j] = V::reduce(combine<V>(acc));
    if (Norms) norms[j] = V::reduce(combine<V>(norm));
  }
}

// A row's squared norm in the fixed shape, as float_row with Norms sums it.
template <typename V, typename T>
float float_sqnorm(const T* c, std::size_t dim) {
  constexpr std::size_t w = V::kStep;
  typename V::Acc norm[kClasses];
  for (int k = 0; k < kClasses; ++k) norm[k] = V::zero();
  std::size_t full = dim / w;
  for (std::size_t s = 0; s < full; ++s) {
    typename V::Wide v = V::load(c + w * s);
    norm[s % kClasses] = V::madd(norm[s % kClasses], v, v);
  }
  if (w * full < dim) {
    typename V::Wide v = V::load_tail(c + w * full, dim - w * full);
    norm[full % kClasses] = V::madd(norm[full % kClasses], v, v);
  }
  return V::reduce(combine<V>(norm));
}

// NQ queries x NC corpus rows, for many queries: the accumulators of the
// fixed shape are filled one class at a time (steps k, k + 4, ...), so a pass
// needs one register per pair, NC corpus registers and one query register
// (V::kBlockRows is NC chosen for the ISA's register file). Each corpus
// vector loaded serves NQ queries; the rows stay in L1 across the passes.
template <typename V, typename T, int NQ, int NC>
void float_block(const Tile& t, std::size_t i0, std::size_t j0, float* scores) {
  using Acc = typename V::Acc;
  using Wide = typename V::Wide;
  constexpr std::size_t w = V::kStep;
  const float* q[NQ];
  const T* c[NC];
  for (int i = 0; i < NQ; ++i) q[i] = row<float>(t.queries, t.query_stride, i0 + i);
  for (int j = 0; j < NC; ++j) c[j] = row<T>(t.corpus, t.corpus_stride, j0 + j);
  std::size_t full = t.dim / w, steps = (t.dim + w - 1) / w;
  Acc part[NQ][NC][kClasses];
  // Full steps load plainly; only the tail step, in its own class, pays for
  // padding or a mask, so the hot loop has no branch and no spare register.
  for (int k = 0; k < kClasses; ++k) {
    Acc acc[NQ][NC];
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) acc[i][j] = V::zero();
    }
    auto step = [&](std::size_t l, auto load_corpus, auto load_query) {
      Wide cv[NC];
      for (int j = 0; j < NC; ++j) cv[j] = load_corpus(c[j] + l);
      for (int i = 0; i < NQ; ++i) {
        Wide qv = load_query(q[i] + l);
        for (int j = 0; j < NC; ++j) acc[i][j] = V::madd(acc[i][j], qv, cv[j]);
      }
    };
    std::size_t s = k;
    for (; s < full; s += kClasses) {
      step(w * s, [](const T* p) { return V::load(p); }, [](const float* p) { return V::load(p); });
    }
    if (s == full && full < steps) {
      std::size_t n = t.dim - w * full;
      step(w * full, [n](const T* p) { return V::load_tail(p, n); },
           [n](const float* p) { return V::load_tail(p, n); });
    }
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) part[i][j][k] = acc[i][j];
    }
  }
  constexpr int kPairs = NQ * NC;
  Acc sums[kPairs];
  float* out[kPairs];
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) {
      sums[i * NC + j] = combine<V>(part[i][j]);
      out[i * NC + j] = &scores[(i0 + i) * t.corpus_count + j0 + j];
    }
  }
  int p = 0;
  for (; p + 4 <= kPairs; p += 4) V::reduce4(sums + p, out + p);
  for (; p < kPairs; ++p) *out[p] = V::reduce(sums[p]);
}

// float32 queries x corpus rows of T (float, binary16, bfloat16 or int8). Groups of 4
// queries go corpus-row-outermost: kBlockRows rows loaded into L1 serve every
// group of the tile before the next are read. Queries left over (and a lone
// query) take the row path. Norms, when asked for, ride along the first
// query; with no queries, a row pass of their own computes them.
template <typename V, typename T>
void float_tile(const Tile& t) {
  constexpr int kRows = V::kBlockRows;
  auto* scores = static_cast<float*>(t.scores);
  auto* norms = static_cast<float*>(t.corpus_norms);
  std::size_t first = 0;
  if (norms != nullptr && t.query_count > 0) {
    float_row<V, T, true>(t, 0, scores, norms);
    first = 1;
  } else if (norms != nullptr) {
    for (std::size_t r = 0; r < t.corpus_count; ++r) {
      norms[r] = float_sqnorm<V>(row<T>(t.corpus, t.corpus_stride, r), t.dim);
    }
  }
  std::size_t grouped = first + (t.query_count - first) / 4 * 4;
  std::size_t j = 0;
  for (; j + kRows <= t.corpus_count; j += kRows) {
    for (std::size_t i = first; i < grouped; i += 4) float_block<V, T, 4, kRows>(t, i, j, scores);
  }
  for (; j < t.corpus_count; ++j) {
    for (std::size_t i = first; i < grouped; i += 4) float_block<V, T, 4, 1>(t, i, j, scores);
  }
  for (std::size_t i = grouped; i < t.query_count; ++i) {
    float_row<V, T, false>(t, i, scores, nullptr);
  }
}

// One query against bit rows [j0, j1), NC at a time (each bit +1 set, -1
// clear, first dimension in a byte's top bit, as np.packbits lays them out),
// flipping the query's signs directly, each pair in float_row's fixed shape:
// an FMA with +1 or -1 is exactly this add, so a score has the same bits
// here as on the widened path below. Lanes past dim load as 0 and add
// nothing, whatever their bit. Returns the first row not scored.
template <typename V, int NC>
std::size_t bits_rows(const Tile& t, std::size_t i, std::size_t j0, std::size_t j1, float* scores) {
  constexpr std::size_t w = V::kStep;
  const float* q = row<float>(t.queries, t.query_stride, i);
  std::size_t full = t.dim / w;
  for (; j0 + NC <= j1; j0 += NC) {
    const std::uint8_t* c[NC];
    for (int j = 0; j < NC; ++j) c[j] = row<std::uint8_t>(t.corpus, t.corpus_stride, j0 + j);
    typename V::Acc acc[NC][kClasses];
    for (int j = 0; j < NC; ++j) {
      for (int k = 0; k < kClasses; ++k) acc[j][k] = V::zero();
    }
    auto step = [&](std::size_t k, std::size_t s, typename V::Wide qv) {
      for (int j = 0; j < NC; ++j) {
        acc[j][k] = V::add_wide(acc[j][k], V::with_bit_signs(qv, c[j], s, t.dim));
      }
    };
    std::size_t s = 0;
    for (; s + kClasses <= full; s += kClasses) {
      for (int k = 0; k < kClasses; ++k) step(k, s + k, V::load(q + w * (s + k)));
    }
    for (; s < full; ++s) step(s % kClasses, s, V::load(q + w * s));
    if (w * full < t.dim) step(full % kClasses, full, V::load_tail(q + w * full, t.dim - w * full));
    for (int j = 0; j < NC; ++j) scores[i * t.corpus_count + j0 + j] = V::reduce(combine<V>(acc[j]));
  }
  return j0;
}

template <typename V>
void bits_query(const Tile& t, std::size_t i, float* scores) {
  std::size_t done = bits_rows<V, V::kBitsRows>(t, i, 0, t.corpus_count, scores);
  if constexpr (V::kBitsRows > 1) bits_rows<V, 1>(t, i, done, t.corpus_count, scores);
}

// A bit row as +1.0 / -1.0 floats.
template <typename V>
void widen_bits(const std::uint8_t* bits, std::size_t dim, float* out) {
  constexpr std::size_t w = V::kStep;
  const typename V::Wide one = V::splat(1.0f);
  std::size_t full = dim / w;
  for (std::size_t s = 0; s < full; ++s) V::store(out + w * s, V::with_bit_signs(one, bits, s, dim));
  if (w * full < dim) {
    float lanes[w];
    V::store(lanes, V::with_bit_signs(one, bits, full, dim));
    std::memcpy(out + w * full, lanes, (dim - w * full) * sizeof(float));
  }
}

// float32 queries x bit rows for several queries at once: bit rows are
// widened to +1.0 / -1.0 floats a chunk at a time (on the stack, in L1) and
// scored by float_tile, so a widened row serves every query of the tile.
// Rows too long for the buffer, and fewer than 4 queries, use bits_query,
// which flips the query's signs in the same summation shape (same bits).
template <typename V>
void widened_bits_tile(const Tile& t) {
  constexpr std::size_t kWidenedFloats = 8192;
  constexpr std::size_t kQueries = 16;
  auto* scores = static_cast<float*>(t.scores);
  if (t.query_count < 4 || t.dim > kWidenedFloats) {
    for (std::size_t i = 0; i < t.query_count; ++i) bits_query<V>(t, i, scores);
    return;
  }
  alignas(64) float widened[kWidenedFloats];
  float part[kQueries * kWidenedFloats / 16];  // kQueries x chunk scores; chunk <= floats / 16
  std::size_t chunk = kWidenedFloats / std::max<std::size_t>(t.dim, 16);
  auto stride = static_cast<std::ptrdiff_t>(t.dim * sizeof(float));
  for (std::size_t j0 = 0; j0 < t.corpus_count; j0 += chunk) {
    std::size_t n = std::min(chunk, t.corpus_count - j0);
    for (std::size_t r = 0; r < n; ++r) {
      widen_bits<V>(row<std::uint8_t>(t.corpus, t.corpus_stride, j0 + r), t.dim, widened + r * t.dim);
    }
    for (std::size_t i0 = 0; i0 < t.query_count; i0 += kQueries) {
      std::size_t m = std::min(kQueries, t.query_count - i0);
      float_tile<V, float>(Tile{row<float>(t.queries, t.query_stride, i0), t.query_stride, m,
                                widened, stride, n, t.dim, part, nullptr});
      for (std::size_t i = 0; i < m; ++i) {
        std::memcpy(scores + (i0 + i) * t.corpus_count + j0, part + i * n, n * sizeof(float));
      }
    }
  }
}

// The batch kernel: many float32 queries against float32 rows in the
// outer-product form of a matrix product (a GEMM micro-kernel). Both sides
// come packed, dimension-major:
//
//   queries   groups of kBatchQueries (pack_query_groups in scoring.cpp):
//             a group's values of dimension 0, then 1, ...
//   rows      panels of kBatchVectors * kLanes rows (pack_panels below,
//             once per block of rows): a panel's values of dimension 0,
//             then 1, ..., rows past the block's end zero
//
// A register tile holds kBatchQueries x kBatchVectors registers: one
// query's scores for kLanes consecutive rows each. Per dimension it loads
// kBatchVectors panel vectors and broadcasts kBatchQueries query values: no
// horizontal reductions, every FMA does a full vector of useful work, and a
// finished register is kLanes consecutive scores of one query, stored as
// they are into the row-major score tile. Over long rows the dimensions go
// kBatchDepth at a time (each ISA picks it so that a panel's slice of
// kBatchDepth dimensions fits in half its L1 data cache), the partial sums
// parked in the score tile itself between slices: a panel's slice stays in
// L1 while every query group of the tile passes over it.
//
// Every pair's score is one FMA chain over the dimensions in order, from
// +0.0: s = fma(q[d], c[d], s) for d = 0, 1, ..., dim - 1 (parking a partial
// sum in memory and loading it back changes no bit). That is its whole
// summation shape, whatever the tile, the batch or the thread; corpus norms
// are summed by the same chain (panel_sqnorms), and so are query norms
// (query_norms in scoring.cpp packs a group's queries as a panel), so the
// expansion of a distance is exactly 0 for a vector against itself.
//
// The ISA supplies, beside zero() from the top of this file:
//
//   kLanes, Value       lanes of an Acc, and their type (float)
//   kBatchQueries, kBatchVectors, kBatchDepth   the register tile and slice
//   broadcast(p)        an Acc of *p in every lane
//   load_lanes(p), store_lanes(p, v)   kLanes floats
//   load_first(p, n), store_first(p, v, n)   the first n < kLanes of them,
//                       touching nothing past them
//   madd_lanes(acc, a, b)   acc + a * b, fused, lane by lane
//   transpose(m)        kLanes registers of kLanes lanes transposed in place
//   prefetch(address)   a hint to bring that address's line into cache
//                       (never faults, whatever the address)

// Rows [0, count) of float32 (`stride` bytes apart, `dim` floats each) as
// panels: kLanes rows x kLanes dimensions at a time, loaded as rows,
// transposed in registers and stored as dimensions.
template <typename V>
void pack_panels(const void* rows, std::ptrdiff_t stride, std::size_t count, std::size_t dim,
                 float* out) {
  using Acc = typename V::Acc;
  constexpr std::size_t kLanes = V::kLanes;
  constexpr std::size_t kWidth = V::kBatchVectors * kLanes;
  for (std::size_t r0 = 0; r0 < count; r0 += kLanes) {
    float* slab = out + r0 / kWidth * kWidth * dim + r0 % kWidth;
    std::size_t n_rows = std::min(kLanes, count - r0);
    for (std::size_t d0 = 0; d0 < dim; d0 += kLanes) {
      std::size_t n_dims = std::min(kLanes, dim - d0);
      Acc m[kLanes];
      for (std::size_t r = 0; r < kLanes; ++r) {
        const float* c = row<float>(rows, stride, std::min(r0 + r, count - 1)) + d0;
        m[r] = r >= n_rows          ? V::zero()
               : n_dims == kLanes ? V::load_lanes(c)
                                  : V::load_first(c, n_dims);
      }
      V::transpose(m);
      for (std::size_t x = 0; x < n_dims; ++x) V::store_lanes(slab + (d0 + x) * kWidth, m[x]);
    }
  }
  // The last panel's rows past `count`, in slabs not reached above, are zero.
  std::size_t filled = (count + kLanes - 1) / kLanes * kLanes;
  std::size_t panels = (count + kWidth - 1) / kWidth;
  for (std::size_t r0 = filled; r0 < panels * kWidth; r0 += kLanes) {
    float* slab = out + r0 / kWidth * kWidth * dim + r0 % kWidth;
    for (std::size_t d = 0; d < dim; ++d) V::store_lanes(slab + d * kWidth, V::zero());
  }
}

// Calls block(std::integral_constant<int, n>) for 0 < n <= N: a register
// tile of exactly as many vectors (or rows) as there are left.
template <int N, typename Block>
void for_rest_rows(std::size_t rest, Block block) {
  if constexpr (N > 0) {
    if (rest != N) return for_rest_rows<N - 1>(rest, block);
    block(std::integral_constant<int, N>{});
  }
}

// Queries [0, queries) of a group against the NV * kLanes rows of a panel
// that are scored (the last vector holding `last` real rows, 1..kLanes),
// over dimensions [d0, d1): the partial sums start from 0 at d0 = 0, else
// from the score tile where the previous slice left them. Full: a whole
// group against whole vectors, so every accumulator is loaded and stored
// without a test (the tests cost a fifth of a 96-step pass).
// Meanwhile it asks for `lines` cache lines from `fetch` on, one per
// dimension (at most d1 - d0 of them). Written over V::Value, the lanes'
// type: float here, int32 for the int8 panels (batch_i8_panels), where a
// "dimension" is a quad of four bytes.
template <typename V, int NV, bool Full>
void panel_block(const typename V::Value* group, const typename V::Value* panel, std::size_t d0,
                 std::size_t d1, std::size_t queries, std::size_t last, typename V::Value* out,
                 std::size_t out_stride, std::uintptr_t fetch, std::size_t lines) {
  using Acc = typename V::Acc;
  constexpr int kQueries = V::kBatchQueries;
  constexpr std::size_t kLanes = V::kLanes;
  constexpr std::size_t kWidth = V::kBatchVectors * kLanes;
  auto at = [out, out_stride](int i, int v) { return out + static_cast<std::size_t>(i) * out_stride + v * kLanes; };
  // Lanes of vector v that hold rows, and whether query i is real.
  auto lanes = [last](int v) { return Full || v + 1 < NV ? kLanes : last; };
  auto real = [queries](int i) { return Full || static_cast<std::size_t>(i) < queries; };
  Acc acc[kQueries * NV];
  if (d0 == 0) {
#pragma GCC unroll 64
    for (int a = 0; a < kQueries * NV; ++a) acc[a] = V::zero();
  } else {
#pragma GCC unroll 64
    for (int i = 0; i < kQueries; ++i) {
#pragma GCC unroll 64
      for (int v = 0; v < NV; ++v) {
        acc[i * NV + v] = !real(i)                ? V::zero()
                          : lanes(v) == kLanes ? V::load_lanes(at(i, v))
                                               : V::load_first(at(i, v), lanes(v));
      }
    }
  }
  const std::size_t fetch_end = d0 + std::min(lines, d1 - d0);
  for (std::size_t d = d0; d < d1; ++d) {
    if (d < fetch_end) V::prefetch(fetch + 64 * (d - d0));
    Acc c[NV];
#pragma GCC unroll 64
    for (int v = 0; v < NV; ++v) c[v] = V::load_lanes(panel + d * kWidth + v * kLanes);
    const auto* qd = group + d * kQueries;
#pragma GCC unroll 64
    for (int i = 0; i < kQueries; ++i) {
      Acc q = V::broadcast(qd + i);
#pragma GCC unroll 64
      for (int v = 0; v < NV; ++v) acc[i * NV + v] = V::madd_lanes(acc[i * NV + v], q, c[v]);
    }
  }
#pragma GCC unroll 64
  for (int i = 0; i < kQueries; ++i) {
    if (!real(i)) break;
#pragma GCC unroll 64
    for (int v = 0; v < NV; ++v) {
      if (lanes(v) == kLanes) {
        V::store_lanes(at(i, v), acc[i * NV + v]);
      } else {
        V::store_first(at(i, v), acc[i * NV + v], lanes(v));
      }
    }
  }
}

// panel_block for a group of `queries` against `vectors` vectors of rows,
// the last with `last` rows: the full-tile version where it applies.
template <typename V, typename... Args>
void panel_pass(std::size_t vectors, std::size_t queries, std::size_t last, const typename V::Value* group,
                const typename V::Value* panel, std::size_t d0, std::size_t d1, Args... rest) {
  if (vectors == V::kBatchVectors && queries == V::kBatchQueries && last == V::kLanes) {
    return panel_block<V, V::kBatchVectors, true>(group, panel, d0, d1, queries, last, rest...);
  }
  for_rest_rows<V::kBatchVectors>(vectors, [&](auto nv) {
    panel_block<V, decltype(nv)::value, false>(group, panel, d0, d1, queries, last, rest...);
  });
}

// Squared norms of a block's packed rows in the batch kernel's shape: one
// FMA chain per row over the dimensions in order, a vector of rows at a time.
template <typename V>
void panel_sqnorms(const float* panels, std::size_t count, std::size_t dim, float* norms) {
  constexpr std::size_t kLanes = V::kLanes;
  constexpr std::size_t kWidth = V::kBatchVectors * kLanes;
  for (std::size_t r0 = 0; r0 < count; r0 += kLanes) {
    const float* slab = panels + r0 / kWidth * kWidth * dim + r0 % kWidth;
    typename V::Acc s = V::zero();
    for (std::size_t d = 0; d < dim; ++d) {
      typename V::Acc c = V::load_lanes(slab + d * kWidth);
      s = V::madd_lanes(s, c, c);
    }
    std::size_t n = std::min(kLanes, count - r0);
    if (n == kLanes) {
      V::store_lanes(norms + r0, s);
    } else {
      V::store_first(norms + r0, s, n);
    }
  }
}

// Cache lines of t.prefetch each register-tile pass of a tile of `depth`
// values a row asks for: an equal share of them per pass.
template <typename V>
std::size_t prefetch_share(const Tile& t, std::size_t depth) {
  if (t.prefetch == nullptr) return 0;
  constexpr std::size_t kWidth = V::kBatchVectors * V::kLanes;
  std::size_t passes = (t.corpus_count + kWidth - 1) / kWidth *
                       ((depth + V::kBatchDepth - 1) / V::kBatchDepth) *
                       ((t.query_count + V::kBatchQueries - 1) / V::kBatchQueries);
  return (t.prefetch_bytes / 64 + passes) / std::max<std::size_t>(passes, 1);
}

// Every query group of a tile against the panel of rows [j0, j0 + kWidth)
// (of `depth` values each: floats, or int8 quads), slice by slice, every
// group over the slice while it is in L1; `fetch` advances by `share`
// lines a pass. A depth of 0 still runs one (empty) slice, which writes
// the scores as 0.
template <typename V>
void score_panel(const Tile& t, std::size_t j0, std::size_t depth, typename V::Value* scores,
                 std::uintptr_t& fetch, std::size_t share) {
  constexpr std::size_t kQueries = V::kBatchQueries;
  constexpr std::size_t kLanes = V::kLanes;
  constexpr std::size_t kWidth = V::kBatchVectors * kLanes;
  using Value = typename V::Value;
  const std::size_t nq = t.query_count, nc = t.corpus_count;
  const auto* panel = row<Value>(t.corpus, t.corpus_stride, j0 / kWidth);
  std::size_t rows = std::min(kWidth, nc - j0);
  std::size_t vectors = (rows + kLanes - 1) / kLanes;
  std::size_t last = rows - (vectors - 1) * kLanes;
  for (std::size_t d0 = 0; d0 < std::max<std::size_t>(depth, 1); d0 += V::kBatchDepth) {
    std::size_t d1 = std::min(depth, d0 + V::kBatchDepth);
    for (std::size_t i0 = 0; i0 < nq; i0 += kQueries) {
      const auto* group = row<Value>(t.queries, t.query_stride, i0 / kQueries);
      std::size_t queries = std::min(kQueries, nq - i0);
      panel_pass<V>(vectors, queries, last, group, panel, d0, d1, scores + i0 * nc + j0, nc, fetch, share);
      fetch += 64 * share;
    }
  }
}

// Packed query groups (t.queries, t.query_stride bytes from one group to
// the next, t.query_count real queries) x packed rows (t.corpus, panels
// t.corpus_stride bytes apart, t.corpus_count real rows), panel by panel.
template <typename V>
void batch_tile(const Tile& t) {
  constexpr std::size_t kWidth = V::kBatchVectors * V::kLanes;
  if (t.corpus_norms != nullptr) {
    panel_sqnorms<V>(static_cast<const float*>(t.corpus), t.corpus_count, t.dim,
                     static_cast<float*>(t.corpus_norms));
  }
  std::size_t share = prefetch_share<V>(t, t.dim);
  auto fetch = reinterpret_cast<std::uintptr_t>(t.prefetch);
  for (std::size_t j0 = 0; j0 < t.corpus_count; j0 += kWidth) {
    score_panel<V>(t, j0, t.dim, static_cast<float*>(t.scores), fetch, share);
  }
}

// A micro-batch (or int8) register tile's scores out of the registers.
// They come transposed (a register holds one row's score for kLanes
// queries): through a small buffer, one row of scores per query, finish(score, r) for row r, the
// group's real queries only (the padding lanes are dropped). Unrolled by
// request: a loop left rolled here would index the accumulators at run
// time, and GCC 12 then keeps them in memory, storing every one on every
// step of the caller's loop (measured: half the speed).
template <typename Ops, int NR, int kVectors, typename T, typename Finish>
void store_transposed(const typename Ops::Acc* acc, const Tile& t, std::size_t g, std::size_t j0,
                      T* scores, Finish finish) {
  constexpr std::size_t kGroup = kVectors * Ops::kLanes;
  T lanes[NR][kGroup];
#pragma GCC unroll 64
  for (int r = 0; r < NR; ++r) {
    for (int v = 0; v < kVectors; ++v) Ops::store_lanes(lanes[r] + v * Ops::kLanes, acc[r * kVectors + v]);
  }
  std::size_t first = g * kGroup;
  std::size_t valid = std::min(kGroup, t.query_count - first);
  for (std::size_t l = 0; l < valid; ++l) {
    T* out = scores + (first + l) * t.corpus_count + j0;
    for (int r = 0; r < NR; ++r) out[r] = finish(lanes[r][l], r);
  }
}

// The micro-batch kernel: the same one FMA chain per pair (so the same
// scores, bit for bit), for calls of too few queries to pay for packing
// rows. Its register tile is the other way round: kMicroRows rows x
// kMicroVectors registers of kLanes queries each, the queries packed in
// groups of kMicroVectors * kLanes as for the batch kernel, each row value
// broadcast from the row in place, the scores transposed on the way out.
// Packing a block of rows costs about as much as scoring it against 16
// queries, so micro-batches do better without it: measured on an Intel
// Xeon (Ice Lake, 2 threads, 1M x 384 rows), 16 queries 226 against 342
// ms, 64 queries 358 against 407; 256 queries over 200k rows were level
// (256 against 252 ms) and 1000 faster packed (0.89-0.93x the time).

// Rows [j0, j0 + NR) against group g of the tile's queries: scores of the
// group's real queries only (the padding lanes are computed and dropped).
template <typename V, int NR>
void micro_block(const Tile& t, std::size_t g, std::size_t j0, float* scores) {
  using Acc = typename V::Acc;
  constexpr int kVectors = V::kMicroVectors;
  constexpr std::size_t kGroup = kVectors * V::kLanes;
  const float* group = row<float>(t.queries, t.query_stride, g);
  // Rows addressed from one base and the stride, not by NR pointers: x86's
  // base + index * {1, 2, 4, 8} addressing then reaches them from a few
  // registers, where 12 pointers would spill.
  const char* base = static_cast<const char*>(t.corpus) + static_cast<std::ptrdiff_t>(j0) * t.corpus_stride;
  const std::ptrdiff_t stride = t.corpus_stride;
  Acc acc[NR * kVectors];
  for (int a = 0; a < NR * kVectors; ++a) acc[a] = V::zero();
  const std::size_t dim = t.dim;  // a local: stores through `scores` cannot change it
  // The first group's pass over these rows also asks for the next tile's
  // rows, one 64-byte line of each per 16 dimensions, at the offset it is
  // reading itself: each line is then requested a whole tile's work ahead,
  // so rows that come from memory (few query blocks per corpus block: a
  // micro-batch, or a large corpus) arrive in time. Measured on an Intel Xeon
  // (Sapphire Rapids class, 2 threads, 1M x 384 float32 rows): 32 queries
  // 357 -> 257 ms, 64 queries 788 -> 480, 200 queries 770 -> 501; 1000
  // queries over 200k rows, where a block's rows serve 16 query blocks from
  // L2, within the noise. Addresses past the corpus are only prefetched,
  // which never faults, and are computed as integers.
  const auto next_tile = reinterpret_cast<std::uintptr_t>(base) + static_cast<std::uintptr_t>(NR * stride);
  for (std::size_t d0 = 0; d0 < dim; d0 += 16) {
    if (g == 0) {
      for (int r = 0; r < NR; ++r) V::prefetch(next_tile + static_cast<std::uintptr_t>(r * stride) + 4 * d0);
    }
    const std::size_t end = std::min(dim, d0 + 16);
    for (std::size_t d = d0; d < end; ++d) {
      const float* qd = group + d * kGroup;
      Acc q[kVectors];
      for (int v = 0; v < kVectors; ++v) q[v] = V::load_lanes(qd + v * V::kLanes);
      for (int r = 0; r < NR; ++r) {
        Acc b = V::broadcast(reinterpret_cast<const float*>(base + r * stride) + d);
        for (int v = 0; v < kVectors; ++v) acc[r * kVectors + v] = V::madd_lanes(acc[r * kVectors + v], q[v], b);
      }
    }
  }
  store_transposed<V, NR, kVectors>(acc, t, g, j0, scores, [](float x, int) { return x; });
}

// Squared norms of rows read in place in the batch kernel's shape: one FMA chain per row, over the
// dimensions in order. Eight rows at a time keep eight independent chains in
// flight, enough to cover the FMA latency.
template <typename V>
void micro_sqnorms(const Tile& t, float* norms) {
  constexpr std::size_t kChains = 8;
  std::size_t j = 0;
  for (; j + kChains <= t.corpus_count; j += kChains) {
    const float* c[kChains];
    float s[kChains] = {};
    for (std::size_t r = 0; r < kChains; ++r) c[r] = row<float>(t.corpus, t.corpus_stride, j + r);
    for (std::size_t d = 0; d < t.dim; ++d) {
      for (std::size_t r = 0; r < kChains; ++r) s[r] = std::fma(c[r][d], c[r][d], s[r]);
    }
    for (std::size_t r = 0; r < kChains; ++r) norms[j + r] = s[r];
  }
  for (; j < t.corpus_count; ++j) {
    const float* c = row<float>(t.corpus, t.corpus_stride, j);
    float s = 0;
    for (std::size_t d = 0; d < t.dim; ++d) s = std::fma(c[d], c[d], s);
    norms[j] = s;
  }
}

// Query groups of kMicroVectors * kLanes (t.queries, t.query_stride bytes
// from one group to the next, t.query_count real queries) x float32 rows
// read in place. Rows outermost: a register tile's rows, loaded into L1,
// serve every group of the tile.
template <typename V>
void micro_batch_tile(const Tile& t) {
  constexpr std::size_t kGroup = V::kMicroVectors * V::kLanes;
  constexpr int kRows = V::kMicroRows;
  auto* scores = static_cast<float*>(t.scores);
  if (t.corpus_norms != nullptr) micro_sqnorms<V>(t, static_cast<float*>(t.corpus_norms));
  std::size_t groups = (t.query_count + kGroup - 1) / kGroup;
  std::size_t j = 0;
  for (; j + kRows <= t.corpus_count; j += kRows) {
    for (std::size_t g = 0; g < groups; ++g) micro_block<V, kRows>(t, g, j, scores);
  }
  for_rest_rows<kRows - 1>(t.corpus_count - j, [&](auto rows) {
    for (std::size_t g = 0; g < groups; ++g) micro_block<V, decltype(rows)::value>(t, g, j, scores);
  });
}


// int8 batches, exact in int32, in the two forms of the float kernels. The
// queries come packed four dimensions (a "quad") per 32-bit lane
// (pack_int8_groups in scoring.cpp), a group's quad 0 of every query, then
// quad 1, ...; one instruction adds the four products of each lane's bytes.
// From kMinPackedBatch queries (batch_i8_panels) the rows are packed too, a
// quad per lane, into panels (pack_panels moves 32-bit lanes, whatever they
// hold), and each query's quad is broadcast against them, in panel_block;
// below it (micro_batch_i8_tile) each row's quad is broadcast from the row
// in place against the queries' quads. The ISA supplies, as a struct `I`:
//
//   Acc, kLanes, Value  a register of kLanes int32 lanes
//   kMicroRows, kMicroVectors   rows x query registers of the micro tile
//   kBatchQueries, kBatchVectors, kBatchDepth   panel_block's tile and slice
//   load_lanes, load_first, store_first, broadcast(p), madd_lanes(acc, q, c)
//                       panel_block's operations (madd_lanes is dot)
//   biased(c)           c XOR kQueryBias in every byte
//   kQueryBias          the XOR the packing applies to every query byte:
//                       0x80 where the instruction multiplies unsigned by
//                       signed bytes (vpdpbusd), 0 where both are signed (sdot)
//   zero(), load(p)     0; kLanes packed quads
//   broadcast(x)        four bytes of a row (as an int32) in every lane
//   dot(acc, q, b)      acc + the four products of each lane's bytes
//   store_lanes(p, acc) kLanes int32
//   sum(row, dim)       a row's bytes summed (only where kQueryBias is not 0)
//   sqnorm(row, dim)    a row's squared norm, exact
//
// A biased query byte is q + 128, so a lane sums q . c + 128 sum(c); the
// 128 sum(c) of each row is taken off at the end, exact for every int8
// value. |sums| stay below 2^31 for rows up to kMaxInt8Dim long.

// Bytes [4k, 4k + 4) of a row as one 32-bit lane; past `dim` (in the last
// quad) they are 0 and not read, so they add nothing.
inline std::int32_t row_quad(const std::int8_t* c, std::size_t k, std::size_t dim) {
  std::int32_t v = 0;
  std::memcpy(&v, c + 4 * k, std::min<std::size_t>(4, dim - 4 * k));
  return v;
}

template <typename I, int NR>
void micro_batch_i8_block(const Tile& t, std::size_t g, std::size_t j0, const std::int32_t* row_sums,
                    std::int32_t* scores) {
  using Acc = typename I::Acc;
  constexpr int kVectors = I::kMicroVectors;
  constexpr std::size_t kGroup = kVectors * I::kLanes;
  const auto* group = row<std::uint8_t>(t.queries, t.query_stride, g);
  const char* base = static_cast<const char*>(t.corpus) + static_cast<std::ptrdiff_t>(j0) * t.corpus_stride;
  const std::ptrdiff_t stride = t.corpus_stride;
  const std::size_t full = t.dim / 4, quads = (t.dim + 3) / 4;
  Acc acc[NR * kVectors];
#pragma GCC unroll 64
  for (int a = 0; a < NR * kVectors; ++a) acc[a] = I::zero();
  auto step = [&](std::size_t k, auto row_bytes) {
    const std::uint8_t* qk = group + k * 4 * kGroup;
    Acc q[kVectors];
#pragma GCC unroll 64
    for (int v = 0; v < kVectors; ++v) q[v] = I::load(qk + v * 4 * I::kLanes);
#pragma GCC unroll 64
    for (int r = 0; r < NR; ++r) {
      Acc b = I::broadcast(row_bytes(reinterpret_cast<const std::int8_t*>(base + r * stride)));
#pragma GCC unroll 64
      for (int v = 0; v < kVectors; ++v) acc[r * kVectors + v] = I::dot(acc[r * kVectors + v], q[v], b);
    }
  };
  for (std::size_t k = 0; k < full; ++k) {
    step(k, [k](const std::int8_t* c) {
      std::int32_t v;
      std::memcpy(&v, c + 4 * k, 4);
      return v;
    });
  }
  if (full < quads) step(full, [full, &t](const std::int8_t* c) { return row_quad(c, full, t.dim); });
  store_transposed<I, NR, kVectors>(acc, t, g, j0, scores, [row_sums](std::int32_t x, int r) {
    if constexpr (I::kQueryBias != 0) return x - 128 * row_sums[r];
    return x;
  });
}

// Rows outermost, in runs of 21 register tiles whose byte sums (with a bias)
// are found once for every group.
template <typename I>
void micro_batch_i8_tile(const Tile& t) {
  constexpr std::size_t kGroup = I::kMicroVectors * I::kLanes;
  constexpr int kRows = I::kMicroRows;
  constexpr std::size_t kRun = 21 * kRows;
  std::int32_t row_sums[kRun] = {};
  auto* scores = static_cast<std::int32_t*>(t.scores);
  std::size_t groups = (t.query_count + kGroup - 1) / kGroup;
  for (std::size_t j0 = 0; j0 < t.corpus_count; j0 += kRun) {
    std::size_t n = std::min(kRun, t.corpus_count - j0);
    if constexpr (I::kQueryBias != 0) {
      for (std::size_t j = 0; j < n; ++j) {
        row_sums[j] = I::sum(row<std::int8_t>(t.corpus, t.corpus_stride, j0 + j), t.dim);
      }
    }
    std::size_t j = 0;
    for (; j + kRows <= n; j += kRows) {
      for (std::size_t g = 0; g < groups; ++g) micro_batch_i8_block<I, kRows>(t, g, j0 + j, row_sums + j, scores);
    }
    for_rest_rows<kRows - 1>(n - j, [&](auto rows) {
      for (std::size_t g = 0; g < groups; ++g) {
        micro_batch_i8_block<I, decltype(rows)::value>(t, g, j0 + j, row_sums + j, scores);
      }
    });
  }
  if (t.corpus_norms != nullptr) {
    auto* norms = static_cast<std::int32_t*>(t.corpus_norms);
    for (std::size_t j = 0; j < t.corpus_count; ++j) {
      norms[j] = I::sqnorm(row<std::int8_t>(t.corpus, t.corpus_stride, j), t.dim);
    }
  }
}

// Panels of quads (t.corpus, panels t.corpus_stride bytes apart; t.dim
// bytes a row, the last quad zero-padded) x query groups of kBatchQueries.
// Each panel's byte sums (with a bias) and squared norms are found first,
// a vector of rows at a time, then panel_block scores it slice by slice and
// the bias comes off its scores.
template <typename I>
void batch_i8_panels(const Tile& t) {
  using Acc = typename I::Acc;
  constexpr std::size_t kLanes = I::kLanes;
  constexpr std::size_t kWidth = I::kBatchVectors * kLanes;
  auto* scores = static_cast<std::int32_t*>(t.scores);
  auto* norms = static_cast<std::int32_t*>(t.corpus_norms);
  const std::size_t nq = t.query_count, nc = t.corpus_count, quads = (t.dim + 3) / 4;
  std::size_t share = prefetch_share<I>(t, quads);
  auto fetch = reinterpret_cast<std::uintptr_t>(t.prefetch);
  const std::int32_t ones = 0x01010101;
  for (std::size_t j0 = 0; j0 < nc; j0 += kWidth) {
    const auto* panel = row<std::int32_t>(t.corpus, t.corpus_stride, j0 / kWidth);
    std::size_t rows = std::min(kWidth, nc - j0);
    std::int32_t sums[kWidth], squares[kWidth];
    for (std::size_t v = 0; v * kLanes < rows; ++v) {
      Acc sum = I::zero(), square = I::zero();
      for (std::size_t k = 0; k < quads; ++k) {
        Acc c = I::load_lanes(panel + k * kWidth + v * kLanes);
        if constexpr (I::kQueryBias != 0) sum = I::madd_lanes(sum, I::broadcast(&ones), c);
        if (norms != nullptr) square = I::madd_lanes(square, I::biased(c), c);
      }
      I::store_lanes(sums + v * kLanes, sum);
      I::store_lanes(squares + v * kLanes, square);
    }
    // (c XOR bias) . c is |c|^2 + 128 sum(c) with a bias, |c|^2 without.
    for (std::size_t r = 0; r < rows && norms != nullptr; ++r) {
      norms[j0 + r] = I::kQueryBias != 0 ? squares[r] - 128 * sums[r] : squares[r];
    }
    score_panel<I>(t, j0, quads, scores, fetch, share);
    if constexpr (I::kQueryBias != 0) {
      for (std::size_t i = 0; i < nq; ++i) {
        std::int32_t* out = scores + i * nc + j0;
        for (std::size_t r = 0; r < rows; ++r) out[r] -= 128 * sums[r];
      }
    }
  }
}

// An ISA without an int8 batch tile (its int8 x int8 calls keep dot_i8).
struct NoInt8Batch {};

// Rows of T widened to float32 for the batch kernel: the ISA's widening
// loads, so the floats are exactly the values every other kernel scores.
template <typename V, typename T>
void widen_rows(const void* rows, std::ptrdiff_t stride, std::size_t count, std::size_t dim,
                float* out) {
  constexpr std::size_t w = V::kStep;
  for (std::size_t r = 0; r < count; ++r, out += dim) {
    const T* c = row<T>(rows, stride, r);
    std::size_t s = 0;
    for (; s + w <= dim; s += w) V::store(out + s, V::load(c + s));
    if (s < dim) {
      float lanes[w];
      V::store(lanes, V::load_tail(c + s, dim - s));
      std::memcpy(out + s, lanes, (dim - s) * sizeof(float));
    }
  }
}

template <typename V>
void widen_bit_rows(const void* rows, std::ptrdiff_t stride, std::size_t count, std::size_t dim,
                    float* out) {
  for (std::size_t r = 0; r < count; ++r) {
    widen_bits<V>(row<std::uint8_t>(rows, stride, r), dim, out + r * dim);
  }
}

// The batch kernel's accumulators as independent FMA chains, nothing else:
// no loads, so only the FMA ports bound it. x * 1 + 0 keeps every value
// finite and normal however many steps; read through volatile, the
// constants cannot be folded away.
template <typename V>
double fma_chains(std::size_t steps, float* result) {
  using Acc = typename V::Acc;
  constexpr int kChains = V::kBatchQueries * V::kBatchVectors;
  volatile float opaque_one = 1.0f, opaque_zero = 0.0f;
  const float one = opaque_one, zero = opaque_zero;
  const Acc a = V::broadcast(&one), b = V::broadcast(&zero);
  Acc acc[kChains];
  for (int c = 0; c < kChains; ++c) {
    float start = static_cast<float>(c + 1);
    acc[c] = V::broadcast(&start);
  }
  for (std::size_t s = 0; s < steps; ++s) {
#pragma GCC unroll 64
    for (int c = 0; c < kChains; ++c) acc[c] = V::madd_lanes(b, acc[c], a);
  }
  float lanes[V::kLanes], sum = 0;
#pragma GCC unroll 64
  for (int c = 0; c < kChains; ++c) {
    V::store_lanes(lanes, acc[c]);
    sum += lanes[0];
  }
  *result = sum;
  return 2.0 * static_cast<double>(steps) * kChains * V::kLanes;
}

// The int8 kernels' multiply-add step as Op::kChains independent chains
// (Op::kMacs products a step), nothing else: the benchmark's int8 peak
// probe. Op::chain_step(acc, zero) adds products with a 0 read through
// volatile, so every chain keeps its start value however many steps; it is
// one accumulating instruction or multiplies the chain's own bytes, so no
// part of a step is loop-invariant (or could be hoisted).
template <typename Op>
double int8_chains(std::size_t steps, std::int32_t* result) {
  volatile std::int32_t opaque_zero = 0;
  const typename Op::Reg zero = Op::splat(opaque_zero);
  typename Op::Reg acc[Op::kChains];
  for (int c = 0; c < Op::kChains; ++c) acc[c] = Op::splat(c + 1);
  for (std::size_t s = 0; s < steps; ++s) {
#pragma GCC unroll 64
    for (int c = 0; c < Op::kChains; ++c) acc[c] = Op::chain_step(acc[c], zero);
  }
  std::int32_t sum = 0;
  for (int c = 0; c < Op::kChains; ++c) sum += Op::first_lane(acc[c]);
  *result = sum;
  return static_cast<double>(steps) * Op::kChains * Op::kMacs;
}

// Four independent accumulators: loads, not add latency, bound it.
template <typename V>
float stream_sum(const float* data, std::size_t n) {
  constexpr std::size_t w = V::kStep;
  typename V::Acc s[kClasses];
  for (int k = 0; k < kClasses; ++k) s[k] = V::zero();
  std::size_t i = 0;
  for (; i + kClasses * w <= n; i += kClasses * w) {
    for (int k = 0; k < kClasses; ++k) s[k] = V::add_wide(s[k], V::load(data + i + k * w));
  }
  for (; i + w <= n; i += w) s[0] = V::add_wide(s[0], V::load(data + i));
  if (i < n) s[0] = V::add_wide(s[0], V::load_tail(data + i, n - i));
  return V::reduce(combine<V>(s));
}

// Calls Block::run<NQ, NC>(i, j, args...) over a tile's queries x corpus rows
// in register blocks of BQ (or 1) queries by BC (or 1) rows, rows outermost:
// a block of rows, loaded into L1, serves every query before the next.
// Measured on AVX2 against the loops written out: a generic lambda in place
// of the struct cost 7% on the Hamming batch tile, and `args` taken by
// reference 12% on one-query int8 tiles; by value they cost nothing.
template <typename Block, int BQ, int BC, typename... Args>
void for_each_block(std::size_t queries, std::size_t rows, Args... args) {
  std::size_t j = 0;
  for (; j + BC <= rows; j += BC) {
    std::size_t i = 0;
    for (; i + BQ <= queries; i += BQ) Block::template run<BQ, BC>(i, j, args...);
    for (; i < queries; ++i) Block::template run<1, BC>(i, j, args...);
  }
  for (; j < rows; ++j) {
    std::size_t i = 0;
    for (; i + BQ <= queries; i += BQ) Block::template run<BQ, 1>(i, j, args...);
    for (; i < queries; ++i) Block::template run<1, 1>(i, j, args...);
  }
}

// The corpus rows' squared norms of an int8 tile, when the caller asks.
template <typename SqNorm>
void int8_corpus_norms(const Tile& t, SqNorm sqnorm) {
  if (t.corpus_norms == nullptr) return;
  auto* norms = static_cast<std::int32_t*>(t.corpus_norms);
  for (std::size_t r = 0; r < t.corpus_count; ++r) {
    norms[r] = sqnorm(row<std::int8_t>(t.corpus, t.corpus_stride, r), t.dim);
  }
}

// Bits that differ between two byte strings, 8 bytes per popcount(uint64).
template <typename Popcount>
std::int64_t hamming_words(const std::uint8_t* a, const std::uint8_t* b, std::size_t bytes,
                           Popcount popcount) {
  std::int64_t s = 0;
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    s += popcount(x ^ y);
  }
  for (; i < bytes; ++i) s += popcount(std::uint64_t{a[i]} ^ b[i]);
  return s;
}

// Hamming counts of codes of W whole words (and `tail` bytes after them):
// query outermost, its words held in registers, each row a few loads, XORs
// and POPCNTs; the tile's rows (at most 256 x 32 bytes) stay in L1 across
// the queries. For codes too short for an ISA's vector path: measured on
// an AMD EPYC (Zen 3, AVX2), 0.33-0.45x the time of the 4-query row blocks
// for 64-200-bit codes (1 to 256 queries over 100k rows).
template <int W, typename Popcount>
void short_hamming_rows(const Tile& t, std::size_t tail, Popcount popcount) {
  auto* scores = static_cast<std::int32_t*>(t.scores);
  for (std::size_t i = 0; i < t.query_count; ++i) {
    const auto* q = row<std::uint8_t>(t.queries, t.query_stride, i);
    std::uint64_t query_words[W > 0 ? W : 1];
    for (int w = 0; w < W; ++w) std::memcpy(&query_words[w], q + 8 * w, 8);
    for (std::size_t j = 0; j < t.corpus_count; ++j) {
      const auto* c = row<std::uint8_t>(t.corpus, t.corpus_stride, j);
      std::int64_t s = 0;
      for (int w = 0; w < W; ++w) {
        std::uint64_t row_word;
        std::memcpy(&row_word, c + 8 * w, 8);
        s += popcount(query_words[w] ^ row_word);
      }
      if (tail != 0) s += hamming_words(q + 8 * W, c + 8 * W, tail, popcount);
      scores[i * t.corpus_count + j] = static_cast<std::int32_t>(s);
    }
  }
}

// The Hamming tile for codes under 32 bytes (256 bits): W chosen at compile time.
template <typename Popcount>
void short_hamming_tile(const Tile& t, std::size_t bytes, Popcount popcount) {
  switch (bytes / 8) {
    case 0: return short_hamming_rows<0>(t, bytes % 8, popcount);
    case 1: return short_hamming_rows<1>(t, bytes % 8, popcount);
    case 2: return short_hamming_rows<2>(t, bytes % 8, popcount);
    default: return short_hamming_rows<3>(t, bytes % 8, popcount);
  }
}

// An ISA's table (positional, in the order of Kernels' members): the float
// kernels and the int8 batch tile (over I, if the ISA has one) are the
// shared bodies; the other integer kernels are the ISA's own.
template <typename V, typename I = NoInt8Batch>
constexpr Kernels simd_kernels(TileKernel dot_i8, TileKernel sqeuclidean_i8, TileKernel hamming,
                               Int8Chains int8_chains) {
  TileKernel batch_dot_i8 = nullptr;
  std::size_t batch_i8_group = 0;
  std::uint8_t batch_i8_bias = 0;
  TileKernel micro_batch_dot_i8 = nullptr;
  std::size_t micro_batch_i8_group = 0;
  if constexpr (!std::is_same_v<I, NoInt8Batch>) {
    static_assert(I::kBatchVectors * I::kLanes == V::kBatchVectors * V::kLanes,
                  "int8 panels are packed by the float panels' packing");
    batch_dot_i8 = batch_i8_panels<I>;
    batch_i8_group = I::kBatchQueries;
    micro_batch_dot_i8 = micro_batch_i8_tile<I>;
    micro_batch_i8_group = I::kMicroVectors * I::kLanes;
    batch_i8_bias = I::kQueryBias;
  }
  return {
      float_tile<V, float>,          // dot_f32
      float_tile<V, std::uint16_t>,  // dot_f16
      float_tile<V, BFloat16>,       // dot_bf16
      float_tile<V, std::int8_t>,    // dot_i8f
      widened_bits_tile<V>,          // dot_bitsf
      dot_i8,
      sqeuclidean_i8,
      hamming,
      batch_tile<V>,                 // batch_f32
      micro_batch_tile<V>,           // micro_batch_f32
      stream_sum<V>,
      fma_chains<V>,
      V::kBatchQueries,              // batch_group
      V::kMicroVectors * V::kLanes,  // micro_batch_group
      V::kBatchVectors * V::kLanes,  // batch_panel
      pack_panels<V>,                // pack_panels
      widen_rows<V, std::uint16_t>,  // widen_f16
      widen_rows<V, BFloat16>,       // widen_bf16
      widen_rows<V, std::int8_t>,    // widen_i8
      widen_bit_rows<V>,             // widen_bits
      batch_dot_i8,
      micro_batch_dot_i8,
      batch_i8_group,
      micro_batch_i8_group,
      batch_i8_bias,
      int8_chains,
  };
}

}  // namespace
}  // namespace simkernel
