// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c -mpopcnt and
// only ever called after dispatch has seen those features.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "simkernel/kernels.hpp"
#include "tile_bodies.hpp"

namespace simkernel::avx2 {
namespace {

// Lanes [0, n) set, for masked loads that never touch memory past a row.
__m256i first_lanes(std::size_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
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

// The float vector operations of tile_bodies.hpp: 8 float32 lanes.
struct FloatVector {
  static constexpr std::size_t kStep = 8;
  // 4 x 3 uses 12 accumulators, 3 corpus registers and 1 query register:
  // all 16 YMM registers.
  static constexpr int kBlockRows = 3;
  static constexpr int kBitsRows = 1;
  using Acc = __m256;
  using Value = float;
  using Wide = __m256;

  static Acc zero() { return _mm256_setzero_ps(); }
  static Wide splat(float x) { return _mm256_set1_ps(x); }
  static Acc madd(Acc acc, Wide a, Wide b) { return _mm256_fmadd_ps(a, b, acc); }
  static Acc add_wide(Acc acc, Wide w) { return _mm256_add_ps(acc, w); }
  static Acc add(Acc a, Acc b) { return _mm256_add_ps(a, b); }

  // A fixed reduction order, so a pair's score is the same wherever it sits
  // in a tile: (lo + hi), then lanes (0 + 2, 1 + 3), then (0 + 1).
  static float reduce(Acc v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }

  // reduce of four vectors at once, adding the same lanes in the same order
  // (so the bits match), with a quarter of the shuffles.
  static void reduce4(const Acc* v, float* const* out) {
    __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(v[0], v[1], 0x20),
                              _mm256_permute2f128_ps(v[0], v[1], 0x31));
    __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(v[2], v[3], 0x20),
                              _mm256_permute2f128_ps(v[2], v[3], 0x31));
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

  static Wide load(const float* p) { return _mm256_loadu_ps(p); }
  static Wide load(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Wide load(const BFloat16* p) {
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static Wide load(const std::int8_t* p) {
    __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
  }
  static Wide load_tail(const float* p, std::size_t n) { return _mm256_maskload_ps(p, first_lanes(n)); }
  static Wide load_tail(const std::uint16_t* p, std::size_t n) { return load_padded<FloatVector>(p, n); }
  static Wide load_tail(const BFloat16* p, std::size_t n) { return load_padded<FloatVector>(p, n); }
  static Wide load_tail(const std::int8_t* p, std::size_t n) { return load_padded<FloatVector>(p, n); }

  static Wide with_bit_signs(Wide w, const std::uint8_t* bits, std::size_t s, std::size_t) {
    return _mm256_xor_ps(w, bit_signs(bits[s]));
  }
  static void store(float* p, Wide w) { _mm256_storeu_ps(p, w); }

  // The batch kernel's register tile: 4 queries x 24 rows is 12
  // accumulators, 3 panel registers and 1 broadcast: all 16 YMM registers;
  // 12 chains cover the FMA latency (4-5 cycles x 2 ports), and per
  // dimension 7 loads feed 12 FMAs. A slice of 160 dimensions of a panel is
  // 15 KiB, half a 32 KiB L1 (Haswell to Zen 4). Measured on an Intel Xeon
  // (Ice Lake, one thread, 96 queries x 288 rows in L2): 4 x 24 and 6 x 16
  // both 100-105 GFLOP/s at d = 384, the 256-bit FMA peak; 8 x 8 67.
  static constexpr std::size_t kLanes = 8;
  static constexpr int kBatchQueries = 4;
  static constexpr int kBatchVectors = 3;
  static constexpr std::size_t kBatchDepth = 160;
  // The micro-batch kernel's register tile: 6 rows x 16 queries is 12
  // accumulators, 2 query registers and 1 broadcast of the 16.
  static constexpr int kMicroRows = 6;
  static constexpr int kMicroVectors = 2;
  static Acc broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Acc load_lanes(const float* p) { return _mm256_loadu_ps(p); }
  static Acc load_first(const float* p, std::size_t n) { return _mm256_maskload_ps(p, first_lanes(n)); }
  static Acc madd_lanes(Acc acc, Acc a, Acc b) { return _mm256_fmadd_ps(a, b, acc); }
  static void store_lanes(float* p, Acc v) { _mm256_storeu_ps(p, v); }
  static void store_first(float* p, Acc v, std::size_t n) { _mm256_maskstore_ps(p, first_lanes(n), v); }
  // 8 x 8: pairs, then quads within each 128-bit half, then halves across
  // registers, 24 shuffles.
  static void prefetch(std::uintptr_t address) {
    _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T0);
  }
  static void transpose(Acc* m) {
    Acc u[8];
    for (int i = 0; i < 8; i += 4) {
      Acc t0 = _mm256_unpacklo_ps(m[i], m[i + 1]), t1 = _mm256_unpackhi_ps(m[i], m[i + 1]);
      Acc t2 = _mm256_unpacklo_ps(m[i + 2], m[i + 3]), t3 = _mm256_unpackhi_ps(m[i + 2], m[i + 3]);
      u[i] = _mm256_shuffle_ps(t0, t2, 0x44);
      u[i + 1] = _mm256_shuffle_ps(t0, t2, 0xee);
      u[i + 2] = _mm256_shuffle_ps(t1, t3, 0x44);
      u[i + 3] = _mm256_shuffle_ps(t1, t3, 0xee);
    }
    // u[4g + k]: rows 4g..4g+3 at column 4h + k in each 128-bit half h.
    for (int k = 0; k < 4; ++k) {
      m[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
      m[4 + k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
    }
  }
};

// An int32 vector's lanes summed (exact in any order).
std::int32_t sum_lanes(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(x);
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
template <typename Op>
struct Int8Block {
  template <int NQ, int NC>
  static void run(std::size_t i0, std::size_t j0, const Tile& t, const std::int16_t* wide,
                  std::size_t wide_stride, std::int32_t* scores) {
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
};

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
  for_each_block<Int8Block<Op>, 4, 3>(count, t.corpus_count, t, wide, stride, out);
}

template <typename Op>
void int8_tile(const Tile& t) {
  auto* scores = static_cast<std::int32_t*>(t.scores);
  std::size_t stride = (t.dim + 15) / 16 * 16;
  std::size_t group = kWideInt16 / std::max<std::size_t>(stride, 16);
  for (std::size_t i = 0; i < t.query_count; i += group) {
    int8_queries<Op>(t, i, std::min(group, t.query_count - i), scores);
  }
  int8_corpus_norms(t, int8_sqnorm);
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
  return hamming_words(a, b, bytes, [](std::uint64_t x) { return _mm_popcnt_u64(x); });
}

// NQ queries against one corpus row: each 32 bytes of the row are loaded once
// for all of them; byte counts (at most 8 each) are summed into 64-bit lanes.
struct HammingBlock {
  template <int NQ, int NC>
  static void run(std::size_t i0, std::size_t j, const Tile& t, std::size_t bytes,
                  std::int32_t* scores) {
    static_assert(NC == 1, "one corpus row at a time");
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
};

void hamming_tile(const Tile& t) {
  std::size_t bytes = (t.dim + 7) / 8;
  if (bytes < 32) {  // the 32-byte vector steps below would never run
    short_hamming_tile(t, bytes, [](std::uint64_t x) { return _mm_popcnt_u64(x); });
    return;
  }
  for_each_block<HammingBlock, 4, 1>(t.query_count, t.corpus_count, t, bytes,
                                     static_cast<std::int32_t*>(t.scores));
}

// The int8 peak: Int8Block's 4 x 3 accumulators as chains of DotI8's step
// (vpmaddwd + vpaddd, 16 multiply-adds).
struct MaddChain {
  using Reg = __m256i;
  static constexpr int kChains = 12;
  static constexpr int kMacs = 16;
  static Reg splat(std::int32_t x) { return _mm256_set1_epi32(x); }
  static Reg chain_step(Reg acc, Reg zero) { return DotI8::step(acc, zero, acc); }
  static std::int32_t first_lane(Reg v) { return _mm256_cvtsi256_si32(v); }
};

}  // namespace

constexpr Kernels kernels = simd_kernels<FloatVector>(int8_tile<DotI8>, int8_tile<SquaredDistanceI8>,
                                                      hamming_tile, int8_chains<MaddChain>);

}  // namespace simkernel::avx2
