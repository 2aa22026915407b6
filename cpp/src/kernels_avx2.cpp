// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c -mpopcnt and
// only ever called after dispatch has seen those features.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "simkernel/kernels.hpp"
#include "widened_bits.hpp"

namespace simkernel::avx2 {
namespace {

template <typename T>
const T* row(const void* base, std::ptrdiff_t stride, std::size_t i) {
  return reinterpret_cast<const T*>(static_cast<const char*>(base) +
                                    static_cast<std::ptrdiff_t>(i) * stride);
}

// Lanes [0, n) set, for masked loads that never touch memory past a row.
__m256i first_lanes(std::size_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
}

// A fixed reduction order, so a pair's score is the same wherever it sits in
// a tile (results must not depend on blocking or threads).
float sum_lanes(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// sum_lanes of four vectors at once, adding the same lanes in the same order
// (so the bits match), with a quarter of the shuffles: (lo + hi), then lanes
// (0 + 2, 1 + 3), then (0 + 1). Results go to out[0..3] for a, b, c, d.
void sum_lanes4(__m256 a, __m256 b, __m256 c, __m256 d, float* out[4]) {
  __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20), _mm256_permute2f128_ps(c, d, 0x31));
  __m256 u = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  __m256 r = _mm256_add_ps(_mm256_shuffle_ps(u, u, _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm256_shuffle_ps(u, u, _MM_SHUFFLE(3, 1, 3, 1)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, r);  // [a, c, a, c | b, d, b, d]
  *out[0] = lanes[0];
  *out[1] = lanes[4];
  *out[2] = lanes[1];
  *out[3] = lanes[5];
}

std::int32_t sum_lanes(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(x);
}

// The last n (< 8) elements of a row, copied into a zeroed buffer and loaded
// as a whole step, so no load reads past the end of a row.
template <typename Elem>
__m256 load_padded(const typename Elem::T* p, std::size_t n) {
  typename Elem::T buffer[8] = {};
  std::memcpy(buffer, p, n * sizeof *p);
  return Elem::load(buffer);
}

// Corpus element types, each widened to 8 float32 lanes. Tails are masked
// (float32) or padded, so no load reads past the end of a row.
struct F32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256 load_tail(const float* p, std::size_t n) {
    return _mm256_maskload_ps(p, first_lanes(n));
  }
};

struct F16 {
  using T = std::uint16_t;
  static __m256 load(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static __m256 load_tail(const std::uint16_t* p, std::size_t n) { return load_padded<F16>(p, n); }
};

struct I8 {
  using T = std::int8_t;
  static __m256 load(const std::int8_t* p) {
    __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
  }
  static __m256 load_tail(const std::int8_t* p, std::size_t n) { return load_padded<I8>(p, n); }
};

struct Dot {
  static __m256 step(__m256 q, __m256 c, __m256 acc) { return _mm256_fmadd_ps(q, c, acc); }
};

// Every pair's sum has one fixed shape, whatever path computes it: step s
// (8 dimensions; the last one zero-padded) goes to accumulator s % 4, each
// accumulator in increasing s, and the four are combined as (a0 + a1) +
// (a2 + a3). So a score does not depend on the batch, the tile or the thread.
constexpr int kClasses = 4;

__m256 combine(const __m256* part) {
  return _mm256_add_ps(_mm256_add_ps(part[0], part[1]), _mm256_add_ps(part[2], part[3]));
}

// One query against one row after another: memory is read in order, which
// streams faster than interleaving rows, and the four accumulators of the
// fixed shape are four independent FMA chains. With Norms the row's squared
// norm is summed in the same pass.
template <typename Elem, bool Norms>
void float_row(const Tile& t, std::size_t i, float* scores, float* norms) {
  using T = typename Elem::T;
  const float* q = row<float>(t.queries, t.query_stride, i);
  std::size_t full = t.dim / 8;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    const T* c = row<T>(t.corpus, t.corpus_stride, j);
    __m256 acc[kClasses], norm[kClasses];
    for (int k = 0; k < kClasses; ++k) acc[k] = norm[k] = _mm256_setzero_ps();
    auto step = [&](int k, __m256 qv, __m256 cv) {
      acc[k] = Dot::step(qv, cv, acc[k]);
      if (Norms) norm[k] = _mm256_fmadd_ps(cv, cv, norm[k]);
    };
    std::size_t s = 0;
    for (; s + kClasses <= full; s += kClasses) {
      for (int k = 0; k < kClasses; ++k) {
        step(k, _mm256_loadu_ps(q + 8 * (s + k)), Elem::load(c + 8 * (s + k)));
      }
    }
    for (; s < full; ++s) step(s % kClasses, _mm256_loadu_ps(q + 8 * s), Elem::load(c + 8 * s));
    if (8 * full < t.dim) {
      std::size_t n = t.dim - 8 * full;
      step(full % kClasses, F32::load_tail(q + 8 * full, n), Elem::load_tail(c + 8 * full, n));
    }
    scores[i * t.corpus_count + j] = sum_lanes(combine(acc));
    if (Norms) norms[j] = sum_lanes(combine(norm));
  }
}

// A row's squared norm in the fixed shape, as float_row with Norms sums it.
template <typename Elem>
float float_sqnorm(const typename Elem::T* c, std::size_t dim) {
  __m256 norm[kClasses];
  for (int k = 0; k < kClasses; ++k) norm[k] = _mm256_setzero_ps();
  std::size_t full = dim / 8;
  for (std::size_t s = 0; s < full; ++s) {
    __m256 v = Elem::load(c + 8 * s);
    norm[s % kClasses] = _mm256_fmadd_ps(v, v, norm[s % kClasses]);
  }
  if (8 * full < dim) {
    __m256 v = Elem::load_tail(c + 8 * full, dim - 8 * full);
    norm[full % kClasses] = _mm256_fmadd_ps(v, v, norm[full % kClasses]);
  }
  return sum_lanes(combine(norm));
}

// NQ queries x NC corpus rows, for many queries: the accumulators of the
// fixed shape are filled one class at a time (steps k, k + 4, ...), so a pass
// needs one register per pair. 4 x 3 uses 12 accumulators, 3 corpus
// registers and 1 query register: all 16 YMM registers. Each corpus vector
// loaded serves 4 queries; the rows stay in L1 across the four passes.
template <typename Elem, int NQ, int NC>
void float_block(const Tile& t, std::size_t i0, std::size_t j0, float* scores) {
  using T = typename Elem::T;
  const float* q[NQ];
  const T* c[NC];
  for (int i = 0; i < NQ; ++i) q[i] = row<float>(t.queries, t.query_stride, i0 + i);
  for (int j = 0; j < NC; ++j) c[j] = row<T>(t.corpus, t.corpus_stride, j0 + j);
  std::size_t full = t.dim / 8, steps = (t.dim + 7) / 8;
  __m256 part[NQ][NC][kClasses];
  // Full steps load plainly; only the tail step, in its own class, pays for
  // padding, so the hot loop has no branch and no spare register.
  for (int k = 0; k < kClasses; ++k) {
    __m256 acc[NQ][NC];
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    auto step = [&](std::size_t l, auto load_corpus, auto load_query) {
      __m256 cv[NC];
      for (int j = 0; j < NC; ++j) cv[j] = load_corpus(c[j] + l);
      for (int i = 0; i < NQ; ++i) {
        __m256 qv = load_query(q[i] + l);
        for (int j = 0; j < NC; ++j) acc[i][j] = Dot::step(qv, cv[j], acc[i][j]);
      }
    };
    std::size_t s = k;
    for (; s < full; s += kClasses) step(8 * s, Elem::load, F32::load);
    if (s == full && full < steps) {
      std::size_t n = t.dim - 8 * full;
      step(8 * full, [n](const T* p) { return Elem::load_tail(p, n); },
           [n](const float* p) { return F32::load_tail(p, n); });
    }
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) part[i][j][k] = acc[i][j];
    }
  }
  constexpr int kPairs = NQ * NC;
  __m256 sums[kPairs];
  float* out[kPairs];
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) {
      sums[i * NC + j] = combine(part[i][j]);
      out[i * NC + j] = &scores[(i0 + i) * t.corpus_count + j0 + j];
    }
  }
  int p = 0;
  for (; p + 4 <= kPairs; p += 4) sum_lanes4(sums[p], sums[p + 1], sums[p + 2], sums[p + 3], out + p);
  for (; p < kPairs; ++p) *out[p] = sum_lanes(sums[p]);
}

// Groups of 4 queries go corpus-row-outermost: 3 rows loaded into L1 serve
// every group of the tile before the next 3 are read. Queries left over (and
// a lone query) take the row path. Norms, when asked for, ride along the
// first query; with no queries, a row path of their own computes them.
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
  for (; j + 3 <= t.corpus_count; j += 3) {
    for (std::size_t i = first; i < grouped; i += 4) float_block<Elem, 4, 3>(t, i, j, scores);
  }
  for (; j < t.corpus_count; ++j) {
    for (std::size_t i = first; i < grouped; i += 4) float_block<Elem, 4, 1>(t, i, j, scores);
  }
  for (std::size_t i = grouped; i < t.query_count; ++i) {
    float_row<Elem, false>(t, i, scores, nullptr);
  }
}

// Each bit is +1 (set) or -1 (clear), first dimension in the top bit: a
// byte broadcast to 8 lanes and tested against one bit per lane gives the
// lanes whose sign to flip.
__m256 bit_signs(std::uint8_t byte) {
  const __m256i lane_bit = _mm256_setr_epi32(128, 64, 32, 16, 8, 4, 2, 1);
  __m256i bits = _mm256_and_si256(_mm256_set1_epi32(byte), lane_bit);
  __m256i clear = _mm256_cmpeq_epi32(bits, _mm256_setzero_si256());
  return _mm256_and_ps(_mm256_castsi256_ps(clear), _mm256_set1_ps(-0.0f));
}

// One query against bit rows, flipping the query's signs directly, in
// float_row's fixed shape: an FMA with +1 or -1 is exactly this add, so a
// score has the same bits here as on the widened path below.
void bits_rows(const Tile& t, std::size_t i, float* scores) {
  const float* q = row<float>(t.queries, t.query_stride, i);
  std::size_t full = t.dim / 8;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    const std::uint8_t* c = row<std::uint8_t>(t.corpus, t.corpus_stride, j);
    __m256 acc[kClasses];
    for (int k = 0; k < kClasses; ++k) acc[k] = _mm256_setzero_ps();
    auto step = [&](int k, __m256 qv, std::uint8_t byte) {
      acc[k] = _mm256_add_ps(acc[k], _mm256_xor_ps(qv, bit_signs(byte)));
    };
    std::size_t s = 0;
    for (; s + kClasses <= full; s += kClasses) {
      for (int k = 0; k < kClasses; ++k) step(k, _mm256_loadu_ps(q + 8 * (s + k)), c[s + k]);
    }
    for (; s < full; ++s) step(s % kClasses, _mm256_loadu_ps(q + 8 * s), c[s]);
    if (8 * full < t.dim) {
      // Lanes past dim load as 0 and add nothing, whatever their bit says.
      step(full % kClasses, F32::load_tail(q + 8 * full, t.dim - 8 * full), c[full]);
    }
    scores[i * t.corpus_count + j] = sum_lanes(combine(acc));
  }
}

// A bit row as +1.0 / -1.0 floats, for detail::widened_bits_tile (batches).
void widen_bits(const std::uint8_t* bits, std::size_t dim, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  std::size_t full = dim / 8;
  for (std::size_t b = 0; b < full; ++b) {
    _mm256_storeu_ps(out + 8 * b, _mm256_or_ps(one, bit_signs(bits[b])));
  }
  if (dim % 8 != 0) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_or_ps(one, bit_signs(bits[full])));
    std::memcpy(out + 8 * full, lanes, (dim % 8) * sizeof(float));
  }
}


// int8 rows sign-extended to int16 and multiplied pairwise into int32 with
// vpmaddwd: exact for every int8 value, -128 included.
__m256i load_i16(const std::int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

__m256i load_i16_tail(const std::int8_t* p, std::size_t n) {
  std::int8_t buffer[16] = {};
  std::memcpy(buffer, p, n);
  return load_i16(buffer);
}

struct DotI8 {
  static __m256i step(__m256i a, __m256i b, __m256i acc) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  }
};

struct SquaredDistanceI8 {
  static __m256i step(__m256i a, __m256i b, __m256i acc) {
    __m256i d = _mm256_sub_epi16(a, b);  // within [-255, 255]
    return _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
  }
};

// `wide` holds the queries already widened to int16 (query i at i * stride,
// zero-padded to whole steps), so each query step is a plain load.
template <typename Op, int NQ, int NC>
void int8_block(const Tile& t, const std::int16_t* wide, std::size_t wide_stride, std::size_t i0,
                std::size_t j0, std::int32_t* scores) {
  const std::int16_t* q[NQ];
  const std::int8_t* c[NC];
  for (int i = 0; i < NQ; ++i) q[i] = wide + (i0 + i) * wide_stride;
  for (int j = 0; j < NC; ++j) c[j] = row<std::int8_t>(t.corpus, t.corpus_stride, j0 + j);
  __m256i acc[NQ][NC];
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) acc[i][j] = _mm256_setzero_si256();
  }
  for (std::size_t l = 0; l < t.dim; l += 16) {
    bool full = l + 16 <= t.dim;
    __m256i cv[NC];
    for (int j = 0; j < NC; ++j) {
      cv[j] = full ? load_i16(c[j] + l) : load_i16_tail(c[j] + l, t.dim - l);
    }
    for (int i = 0; i < NQ; ++i) {
      __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[i] + l));
      for (int j = 0; j < NC; ++j) acc[i][j] = Op::step(qv, cv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) {
      scores[(i0 + i) * t.corpus_count + j0 + j] = sum_lanes(acc[i][j]);
    }
  }
}

std::int32_t int8_sqnorm(const std::int8_t* c, std::size_t dim) {
  __m256i acc = _mm256_setzero_si256();
  for (std::size_t l = 0; l < dim; l += 16) {
    __m256i v = l + 16 <= dim ? load_i16(c + l) : load_i16_tail(c + l, dim - l);
    acc = DotI8::step(v, v, acc);
  }
  return sum_lanes(acc);
}

// Queries are widened to int16 once per tile, on the stack (64 KiB), in
// groups that fit; a row of kMaxInt8Dim always does.
constexpr std::size_t kWideInt16 = kMaxInt8Dim;

template <typename Op>
void int8_queries(const Tile& t, std::size_t first, std::size_t count, std::int32_t* scores) {
  std::size_t stride = (t.dim + 15) / 16 * 16;
  alignas(32) std::int16_t wide[kWideInt16];
  for (std::size_t i = 0; i < count; ++i) {
    const std::int8_t* q = row<std::int8_t>(t.queries, t.query_stride, first + i);
    for (std::size_t l = 0; l < stride; l += 16) {
      __m256i v = l + 16 <= t.dim ? load_i16(q + l) : load_i16_tail(q + l, t.dim - l);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(wide + i * stride + l), v);
    }
  }
  std::int32_t* out = scores + first * t.corpus_count;
  std::size_t j = 0;
  for (; j + 3 <= t.corpus_count; j += 3) {
    std::size_t i = 0;
    for (; i + 4 <= count; i += 4) int8_block<Op, 4, 3>(t, wide, stride, i, j, out);
    for (; i < count; ++i) int8_block<Op, 1, 3>(t, wide, stride, i, j, out);
  }
  for (; j < t.corpus_count; ++j) {
    std::size_t i = 0;
    for (; i + 4 <= count; i += 4) int8_block<Op, 4, 1>(t, wide, stride, i, j, out);
    for (; i < count; ++i) int8_block<Op, 1, 1>(t, wide, stride, i, j, out);
  }
}

template <typename Op>
void int8_tile(const Tile& t) {
  auto* scores = static_cast<std::int32_t*>(t.scores);
  std::size_t stride = (t.dim + 15) / 16 * 16;
  std::size_t group = kWideInt16 / std::max<std::size_t>(stride, 16);
  for (std::size_t i = 0; i < t.query_count; i += group) {
    int8_queries<Op>(t, i, std::min(group, t.query_count - i), scores);
  }
  if (t.corpus_norms != nullptr) {
    auto* norms = static_cast<std::int32_t*>(t.corpus_norms);
    for (std::size_t r = 0; r < t.corpus_count; ++r) {
      norms[r] = int8_sqnorm(row<std::int8_t>(t.corpus, t.corpus_stride, r), t.dim);
    }
  }
}

// Bits set in each byte, by two lookups of a 16-entry nibble table
// (vpshufb): 32 bytes take 6 vector ops where POPCNT takes 4 loads, 4 XORs
// and 4 POPCNTs; measured against POPCNT on the bench's 1024-bit scenarios.
__m256i popcount_bytes(__m256i v) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  __m256i lo = _mm256_and_si256(v, low_nibble);
  __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
}

// POPCNT for the bytes past the last whole 32.
std::int64_t hamming_tail(const std::uint8_t* a, const std::uint8_t* b, std::size_t bytes) {
  std::int64_t s = 0;
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    s += _mm_popcnt_u64(x ^ y);
  }
  for (; i < bytes; ++i) s += _mm_popcnt_u32(unsigned{a[i]} ^ b[i]);
  return s;
}

// NQ queries against one corpus row: each 32 bytes of the row are loaded once
// for all of them; byte counts (at most 8 each) are summed into 64-bit lanes.
template <int NQ>
void hamming_block(const Tile& t, std::size_t i0, std::size_t j, std::size_t bytes,
                   std::int32_t* scores) {
  const auto* c = row<std::uint8_t>(t.corpus, t.corpus_stride, j);
  const std::uint8_t* q[NQ];
  __m256i acc[NQ];
  for (int i = 0; i < NQ; ++i) {
    q[i] = row<std::uint8_t>(t.queries, t.query_stride, i0 + i);
    acc[i] = _mm256_setzero_si256();
  }
  std::size_t l = 0;
  for (; l + 32 <= bytes; l += 32) {
    __m256i cv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + l));
    for (int i = 0; i < NQ; ++i) {
      __m256i x = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[i] + l)), cv);
      acc[i] = _mm256_add_epi64(acc[i], _mm256_sad_epu8(popcount_bytes(x), _mm256_setzero_si256()));
    }
  }
  for (int i = 0; i < NQ; ++i) {
    alignas(32) std::int64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[i]);
    std::int64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3] + hamming_tail(q[i] + l, c + l, bytes - l);
    scores[(i0 + i) * t.corpus_count + j] = static_cast<std::int32_t>(s);
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

// Four independent accumulators of 8 lanes: loads, not add latency, bound it.
float stream_sum(const float* data, std::size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(data + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(data + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(data + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(data + i + 24));
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(data + i));
  if (i < n) s0 = _mm256_add_ps(s0, F32::load_tail(data + i, n - i));
  return sum_lanes(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

}  // namespace

// Positional, in the order of Kernels' members.
constexpr Kernels kernels = {
    float_tile<F32>,  // dot_f32
    float_tile<F16>,  // dot_f16
    float_tile<I8>,  // dot_i8f
    detail::widened_bits_tile<bits_rows, widen_bits, float_tile<F32>>,  // dot_bitsf
    int8_tile<DotI8>,  // dot_i8
    int8_tile<SquaredDistanceI8>,  // sqeuclidean_i8
    hamming_tile,  // hamming
    stream_sum,  // stream_sum
};

}  // namespace simkernel::avx2
