// AVX-512 (F, BW, VL, DQ, VNNI, VPOPCNTDQ: the Ice Lake / Zen 4 level)
// kernels. Compiled with those flags and only called after dispatch has seen
// them (docs/backends.md).
// GCC 12's AVX-512 headers build some results from _mm*_undefined_*() and
// then warn that those are uninitialized (GCC bug 105593); silence only that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstring>

#include "simkernel/kernels.hpp"
#include "widened_bits.hpp"

namespace simkernel::avx512 {
namespace {

template <typename T>
const T* row(const void* base, std::ptrdiff_t stride, std::size_t i) {
  return reinterpret_cast<const T*>(static_cast<const char*>(base) +
                                    static_cast<std::ptrdiff_t>(i) * stride);
}

// Masked loads read only lanes [0, n): tails never touch memory past a row.
__mmask16 first16(std::size_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1);
}

__mmask64 first64(std::size_t n) {
  return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
}

// Corpus element types, each widened to 16 float32 lanes.
struct F32 {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load_tail(const float* p, std::size_t n) {
    return _mm512_maskz_loadu_ps(first16(n), p);
  }
};

struct F16 {
  using T = std::uint16_t;
  static __m512 load(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_tail(const std::uint16_t* p, std::size_t n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first16(n), p));
  }
};

struct I8 {
  using T = std::int8_t;
  static __m512 load(const std::int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static __m512 load_tail(const std::int8_t* p, std::size_t n) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(first16(n), p)));
  }
};

struct Dot {
  static __m512 step(__m512 q, __m512 c, __m512 acc) { return _mm512_fmadd_ps(q, c, acc); }
};

// Every pair's sum has one fixed shape, whatever path computes it: step s
// (16 dimensions; the last one masked) goes to accumulator s % 4, each
// accumulator in increasing s, and the four are combined as (a0 + a1) +
// (a2 + a3). So a score does not depend on the batch, the tile or the thread.
constexpr int kClasses = 4;

__m512 combine(const __m512* part) {
  return _mm512_add_ps(_mm512_add_ps(part[0], part[1]), _mm512_add_ps(part[2], part[3]));
}

// One query against one row after another: memory is read in order, which
// streams faster than interleaving rows, and the four accumulators of the
// fixed shape are four independent FMA chains. With Norms the row's squared
// norm is summed in the same pass.
template <typename Elem, bool Norms>
void float_row(const Tile& t, std::size_t i, float* scores, float* norms) {
  using T = typename Elem::T;
  const float* q = row<float>(t.queries, t.query_stride, i);
  std::size_t full = t.dim / 16, steps = (t.dim + 15) / 16;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    const T* c = row<T>(t.corpus, t.corpus_stride, j);
    __m512 acc[kClasses], norm[kClasses];
    for (int k = 0; k < kClasses; ++k) acc[k] = norm[k] = _mm512_setzero_ps();
    auto step = [&](int k, __m512 qv, __m512 cv) {
      acc[k] = Dot::step(qv, cv, acc[k]);
      if (Norms) norm[k] = _mm512_fmadd_ps(cv, cv, norm[k]);
    };
    std::size_t s = 0;
    for (; s + kClasses <= full; s += kClasses) {
      for (int k = 0; k < kClasses; ++k) {
        step(k, F32::load(q + 16 * (s + k)), Elem::load(c + 16 * (s + k)));
      }
    }
    for (; s < full; ++s) step(s % kClasses, F32::load(q + 16 * s), Elem::load(c + 16 * s));
    if (full < steps) {
      std::size_t n = t.dim - 16 * full;
      step(full % kClasses, F32::load_tail(q + 16 * full, n), Elem::load_tail(c + 16 * full, n));
    }
    scores[i * t.corpus_count + j] = _mm512_reduce_add_ps(combine(acc));
    if (Norms) norms[j] = _mm512_reduce_add_ps(combine(norm));
  }
}

// A row's squared norm in the fixed shape, as float_row with Norms sums it.
template <typename Elem>
float float_sqnorm(const typename Elem::T* c, std::size_t dim) {
  __m512 norm[kClasses];
  for (int k = 0; k < kClasses; ++k) norm[k] = _mm512_setzero_ps();
  std::size_t full = dim / 16;
  for (std::size_t s = 0; s < full; ++s) {
    __m512 v = Elem::load(c + 16 * s);
    norm[s % kClasses] = _mm512_fmadd_ps(v, v, norm[s % kClasses]);
  }
  if (16 * full < dim) {
    __m512 v = Elem::load_tail(c + 16 * full, dim - 16 * full);
    norm[full % kClasses] = _mm512_fmadd_ps(v, v, norm[full % kClasses]);
  }
  return _mm512_reduce_add_ps(combine(norm));
}

// NQ queries x NC corpus rows, for many queries: the accumulators of the
// fixed shape are filled one class at a time (steps k, k + 4, ...), so a pass
// needs one register per pair. 4 x 6 uses 24 accumulators, 6 corpus
// registers and 1 query register of the 32; the rows stay in L1 across the
// four passes.
template <typename Elem, int NQ, int NC>
void float_block(const Tile& t, std::size_t i0, std::size_t j0, float* scores) {
  using T = typename Elem::T;
  const float* q[NQ];
  const T* c[NC];
  for (int i = 0; i < NQ; ++i) q[i] = row<float>(t.queries, t.query_stride, i0 + i);
  for (int j = 0; j < NC; ++j) c[j] = row<T>(t.corpus, t.corpus_stride, j0 + j);
  std::size_t full = t.dim / 16, steps = (t.dim + 15) / 16;
  __m512 part[NQ][NC][kClasses];
  // Full steps load plainly; only the tail step, in its own class, pays for
  // a mask, so the hot loop has no branch.
  for (int k = 0; k < kClasses; ++k) {
    __m512 acc[NQ][NC];
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    auto step = [&](std::size_t l, auto load_corpus, auto load_query) {
      __m512 cv[NC];
      for (int j = 0; j < NC; ++j) cv[j] = load_corpus(c[j] + l);
      for (int i = 0; i < NQ; ++i) {
        __m512 qv = load_query(q[i] + l);
        for (int j = 0; j < NC; ++j) acc[i][j] = Dot::step(qv, cv[j], acc[i][j]);
      }
    };
    std::size_t s = k;
    for (; s < full; s += kClasses) step(16 * s, Elem::load, F32::load);
    if (s == full && full < steps) {
      std::size_t n = t.dim - 16 * full;
      step(16 * full, [n](const T* p) { return Elem::load_tail(p, n); },
           [n](const float* p) { return F32::load_tail(p, n); });
    }
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) part[i][j][k] = acc[i][j];
    }
  }
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) {
      scores[(i0 + i) * t.corpus_count + j0 + j] = _mm512_reduce_add_ps(combine(part[i][j]));
    }
  }
}

// Groups of 4 queries go corpus-row-outermost: 6 rows loaded into L1 serve
// every group of the tile before the next 6 are read. Queries left over (and
// a lone query) take the row path. Norms, when asked for, ride along the
// first query; with no queries they get a pass of their own.
template <typename Elem>
void float_tile(const Tile& t) {
  auto* scores = static_cast<float*>(t.scores);
  auto* norms = static_cast<float*>(t.corpus_norms);
  std::size_t first = 0;
  if (norms != nullptr && t.query_count > 0) {
    float_row<Elem, true>(t, 0, scores, norms);
    first = 1;
  } else if (norms != nullptr) {
    for (std::size_t r = 0; r < t.corpus_count; ++r) {
      norms[r] = float_sqnorm<Elem>(row<typename Elem::T>(t.corpus, t.corpus_stride, r), t.dim);
    }
  }
  std::size_t grouped = first + (t.query_count - first) / 4 * 4;
  std::size_t j = 0;
  for (; j + 6 <= t.corpus_count; j += 6) {
    for (std::size_t i = first; i < grouped; i += 4) float_block<Elem, 4, 6>(t, i, j, scores);
  }
  for (; j < t.corpus_count; ++j) {
    for (std::size_t i = first; i < grouped; i += 4) float_block<Elem, 4, 1>(t, i, j, scores);
  }
  for (std::size_t i = grouped; i < t.query_count; ++i) {
    float_row<Elem, false>(t, i, scores, nullptr);
  }
}

// Set bits of 16 dimensions as a lane mask, from the (one or two) bytes that
// hold them, broadcast to every lane and tested against that lane's bit.
// np.packbits puts the first dimension in a byte's top bit, so lane i < 8
// tests bit 7 - i of the first byte and lane 8 + i bit 7 - i of the second.
// Bytes past the row are not read.
__mmask16 bit_lanes(const std::uint8_t* c, std::size_t l, std::size_t dim) {
  const __m512i lane_bit = _mm512_setr_epi32(1 << 7, 1 << 6, 1 << 5, 1 << 4, 1 << 3, 1 << 2, 1 << 1, 1,
                                             1 << 15, 1 << 14, 1 << 13, 1 << 12, 1 << 11, 1 << 10,
                                             1 << 9, 1 << 8);
  unsigned bytes = c[l / 8];
  if (l + 8 < dim) bytes |= unsigned{c[l / 8 + 1]} << 8;
  return _mm512_test_epi32_mask(_mm512_set1_epi32(static_cast<int>(bytes)), lane_bit);
}

// One query against NC bit rows at a time, flipping the query's signs
// directly, each pair in float_row's fixed shape: an FMA with +1 or -1 is
// exactly this add, so a score has the same bits here as on the widened
// path below.
template <int NC>
void bits_rows(const Tile& t, std::size_t i, std::size_t j0, float* scores) {
  const float* q = row<float>(t.queries, t.query_stride, i);
  const std::uint8_t* c[NC];
  for (int j = 0; j < NC; ++j) c[j] = row<std::uint8_t>(t.corpus, t.corpus_stride, j0 + j);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  std::size_t full = t.dim / 16, steps = (t.dim + 15) / 16;
  __m512 acc[NC][kClasses];
  for (int j = 0; j < NC; ++j) {
    for (int k = 0; k < kClasses; ++k) acc[j][k] = _mm512_setzero_ps();
  }
  auto step = [&](std::size_t s, __m512 qv) {
    __m512 flipped = _mm512_xor_ps(qv, sign);
    for (int j = 0; j < NC; ++j) {
      __m512& a = acc[j][s % kClasses];
      a = _mm512_add_ps(a, _mm512_mask_blend_ps(bit_lanes(c[j], 16 * s, t.dim), flipped, qv));
    }
  };
  for (std::size_t s = 0; s < full; ++s) step(s, F32::load(q + 16 * s));
  // Lanes past dim load as 0 and add nothing, whatever their bit says.
  if (full < steps) step(full, F32::load_tail(q + 16 * full, t.dim - 16 * full));
  for (int j = 0; j < NC; ++j) {
    scores[i * t.corpus_count + j0 + j] = _mm512_reduce_add_ps(combine(acc[j]));
  }
}

void bits_query(const Tile& t, std::size_t i, float* scores) {
  std::size_t j = 0;
  for (; j + 4 <= t.corpus_count; j += 4) bits_rows<4>(t, i, j, scores);
  for (; j < t.corpus_count; ++j) bits_rows<1>(t, i, j, scores);
}

// A bit row as +1.0 / -1.0 floats, for detail::widened_bits_tile (batches).
void widen_bits(const std::uint8_t* bits, std::size_t dim, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  for (std::size_t l = 0; l < dim; l += 16) {
    __m512 v = _mm512_mask_blend_ps(bit_lanes(bits, l, dim), minus_one, one);
    _mm512_mask_storeu_ps(out + l, first16(dim - l), v);
  }
}


// int8 dot products with VNNI: vpdpbusd multiplies unsigned by signed bytes
// and adds each 4 products into an int32 lane, without saturation. A corpus
// byte XOR 0x80 is c + 128 as an unsigned byte, so it sums (c + 128) . q =
// c . q + 128 sum(q), and 128 sum(q), known per query, is taken off at the
// end: exact for every int8 value, -128 included, and |sums| stay below 2^31
// for rows up to 32,768 long.
__m512i load_i8(const std::int8_t* p, std::size_t n) {
  return n >= 64 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(first64(n), p);
}

template <int NQ, int NC>
void dot_i8_block(const Tile& t, std::size_t i0, std::size_t j0, const std::int32_t* query_sums,
                  std::int32_t* scores) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const std::int8_t* q[NQ];
  const std::int8_t* c[NC];
  for (int i = 0; i < NQ; ++i) q[i] = row<std::int8_t>(t.queries, t.query_stride, i0 + i);
  for (int j = 0; j < NC; ++j) c[j] = row<std::int8_t>(t.corpus, t.corpus_stride, j0 + j);
  __m512i acc[NQ][NC];
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) acc[i][j] = _mm512_setzero_si512();
  }
  for (std::size_t l = 0; l < t.dim; l += 64) {
    std::size_t n = t.dim - l;
    // Padding lanes load as 0 on both sides; only the query's are summed
    // in, and 0 there adds nothing whatever the corpus lane holds.
    __m512i cv[NC];
    for (int j = 0; j < NC; ++j) cv[j] = _mm512_xor_si512(load_i8(c[j] + l, n), flip);
    for (int i = 0; i < NQ; ++i) {
      __m512i qv = load_i8(q[i] + l, n);
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], cv[j], qv);
    }
  }
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) {
      scores[(i0 + i) * t.corpus_count + j0 + j] =
          _mm512_reduce_add_epi32(acc[i][j]) - 128 * query_sums[i0 + i];
    }
  }
}

std::int32_t int8_sum(const std::int8_t* p, std::size_t dim) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  for (std::size_t l = 0; l < dim; l += 64) acc = _mm512_dpbusd_epi32(acc, ones, load_i8(p + l, dim - l));
  return _mm512_reduce_add_epi32(acc);
}

// |c|^2 by the same trick: (c + 128) . c = |c|^2 + 128 sum(c), with sum(c)
// from a second vpdpbusd against ones in the same pass.
std::int32_t int8_sqnorm(const std::int8_t* c, std::size_t dim) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i squares = _mm512_setzero_si512(), sum = _mm512_setzero_si512();
  for (std::size_t l = 0; l < dim; l += 64) {
    __m512i v = load_i8(c + l, dim - l);
    squares = _mm512_dpbusd_epi32(squares, _mm512_xor_si512(v, flip), v);
    sum = _mm512_dpbusd_epi32(sum, ones, v);
  }
  return _mm512_reduce_add_epi32(squares) - 128 * _mm512_reduce_add_epi32(sum);
}

// Up to 64 queries at a time, with their byte sums, in blocks of 4 x 6.
void dot_i8_queries(const Tile& t, const std::int32_t* query_sums) {
  auto* scores = static_cast<std::int32_t*>(t.scores);
  std::size_t j = 0;
  for (; j + 6 <= t.corpus_count; j += 6) {
    std::size_t i = 0;
    for (; i + 4 <= t.query_count; i += 4) dot_i8_block<4, 6>(t, i, j, query_sums, scores);
    for (; i < t.query_count; ++i) dot_i8_block<1, 6>(t, i, j, query_sums, scores);
  }
  for (; j < t.corpus_count; ++j) {
    std::size_t i = 0;
    for (; i + 4 <= t.query_count; i += 4) dot_i8_block<4, 1>(t, i, j, query_sums, scores);
    for (; i < t.query_count; ++i) dot_i8_block<1, 1>(t, i, j, query_sums, scores);
  }
}

// Squared distances as |q|^2 + |c|^2 - 2 q.c, each term exact by VNNI, so
// the pairs run at the vpdpbusd rate and the squares cost a pass per row
// and per query. The result (<= 255^2 * 32768) fits int32; unsigned
// arithmetic keeps the intermediate steps defined.
void dots_to_squared_distances(const Tile& t, const std::int32_t* query_norms) {
  constexpr std::size_t kRows = 256;
  std::uint32_t corpus_norms[kRows];
  auto* scores = static_cast<std::uint32_t*>(t.scores);
  for (std::size_t j0 = 0; j0 < t.corpus_count; j0 += kRows) {
    std::size_t n = std::min(kRows, t.corpus_count - j0);
    for (std::size_t j = 0; j < n; ++j) {
      corpus_norms[j] = static_cast<std::uint32_t>(
          int8_sqnorm(row<std::int8_t>(t.corpus, t.corpus_stride, j0 + j), t.dim));
    }
    for (std::size_t i = 0; i < t.query_count; ++i) {
      std::uint32_t* out = scores + i * t.corpus_count + j0;
      auto query_norm = static_cast<std::uint32_t>(query_norms[i]);
      for (std::size_t j = 0; j < n; ++j) out[j] = query_norm + corpus_norms[j] - 2u * out[j];
    }
  }
}

template <bool SquaredDistances>
void int8_tile(const Tile& t) {
  constexpr std::size_t kQueries = 64;
  std::int32_t query_sums[kQueries], query_norms[kQueries];
  for (std::size_t q0 = 0; q0 < t.query_count; q0 += kQueries) {
    Tile part = t;
    part.queries = row<std::int8_t>(t.queries, t.query_stride, q0);
    part.query_count = std::min(kQueries, t.query_count - q0);
    part.scores = static_cast<std::int32_t*>(t.scores) + q0 * t.corpus_count;
    for (std::size_t i = 0; i < part.query_count; ++i) {
      const std::int8_t* q = row<std::int8_t>(part.queries, t.query_stride, i);
      query_sums[i] = int8_sum(q, t.dim);
      if (SquaredDistances) query_norms[i] = int8_sqnorm(q, t.dim);
    }
    dot_i8_queries(part, query_sums);
    if (SquaredDistances) dots_to_squared_distances(part, query_norms);
  }
  if (t.corpus_norms != nullptr) {
    auto* norms = static_cast<std::int32_t*>(t.corpus_norms);
    for (std::size_t r = 0; r < t.corpus_count; ++r) {
      norms[r] = int8_sqnorm(row<std::int8_t>(t.corpus, t.corpus_stride, r), t.dim);
    }
  }
}

// NQ queries against one corpus row: each 64 bytes of the row are loaded once
// for all of them (only a last partial step masked) and the differing bits
// counted per 64-bit lane with VPOPCNTQ.
template <int NQ>
void hamming_block(const Tile& t, std::size_t i0, std::size_t j, std::size_t bytes,
                   std::int32_t* scores) {
  const auto* c = row<std::uint8_t>(t.corpus, t.corpus_stride, j);
  const std::uint8_t* q[NQ];
  __m512i acc[NQ];
  for (int i = 0; i < NQ; ++i) {
    q[i] = row<std::uint8_t>(t.queries, t.query_stride, i0 + i);
    acc[i] = _mm512_setzero_si512();
  }
  auto step = [&](std::size_t l, auto load) {
    __m512i cv = load(c + l);
    for (int i = 0; i < NQ; ++i) {
      __m512i x = _mm512_xor_si512(load(q[i] + l), cv);
      acc[i] = _mm512_add_epi64(acc[i], _mm512_popcnt_epi64(x));
    }
  };
  std::size_t l = 0;
  for (; l + 64 <= bytes; l += 64) {
    step(l, [](const std::uint8_t* p) { return _mm512_loadu_si512(p); });
  }
  if (l < bytes) {
    __mmask64 lanes = (__mmask64{1} << (bytes - l)) - 1;
    step(l, [lanes](const std::uint8_t* p) { return _mm512_maskz_loadu_epi8(lanes, p); });
  }
  for (int i = 0; i < NQ; ++i) {
    scores[(i0 + i) * t.corpus_count + j] = static_cast<std::int32_t>(_mm512_reduce_add_epi64(acc[i]));
  }
}

void hamming_tile(const Tile& t) {
  auto* scores = static_cast<std::int32_t*>(t.scores);
  std::size_t bytes = (t.dim + 7) / 8;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    std::size_t i = 0;
    for (; i + 4 <= t.query_count; i += 4) hamming_block<4>(t, i, j, bytes, scores);
    for (; i < t.query_count; ++i) hamming_block<1>(t, i, j, bytes, scores);
  }
}

// Four independent accumulators of 16 lanes: loads, not add latency, bound it.
float stream_sum(const float* data, std::size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(data + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(data + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_loadu_ps(data + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_loadu_ps(data + i + 48));
  }
  for (; i < n; i += 16) s0 = _mm512_add_ps(s0, F32::load_tail(data + i, n - i));
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

}  // namespace

// Positional, in the order of Kernels' members.
constexpr Kernels kernels = {
    float_tile<F32>,  // dot_f32
    float_tile<F16>,  // dot_f16
    float_tile<I8>,  // dot_i8f
    detail::widened_bits_tile<bits_query, widen_bits, float_tile<F32>>,  // dot_bitsf
    int8_tile<false>,  // dot_i8
    int8_tile<true>,  // sqeuclidean_i8
    hamming_tile,  // hamming
    stream_sum,  // stream_sum
};

}  // namespace simkernel::avx512
