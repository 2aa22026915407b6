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
#include "tile_bodies.hpp"

namespace simkernel::avx512 {
namespace {

// Masked loads read only lanes [0, n): tails never touch memory past a row.
__mmask16 first16(std::size_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1);
}

__mmask64 first64(std::size_t n) {
  return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
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

// 16 bfloat16 values as float32: each in the top half of its lane. (Not
// vdpbf16ps: it multiplies bfloat16 by bfloat16, so the float32 queries would
// be rounded, and it flushes subnormals; the scores would leave the
// reference's. Widening costs one shuffle and one shift per 16 values, far
// below what memory delivers.)
__m512 widen_bf16(__m256i halves) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}

// The float vector operations of tile_bodies.hpp: 16 float32 lanes, every
// tail masked.
struct FloatVector {
  static constexpr std::size_t kStep = 16;
  // 4 x 6 uses 24 accumulators, 6 corpus registers and 1 query register of
  // the 32 ZMM registers.
  static constexpr int kBlockRows = 6;
  // A query step loaded once serves 4 bit rows.
  static constexpr int kBitsRows = 4;
  using Acc = __m512;
  using Value = float;
  using Wide = __m512;

  static Acc zero() { return _mm512_setzero_ps(); }
  static Wide splat(float x) { return _mm512_set1_ps(x); }
  static Acc madd(Acc acc, Wide a, Wide b) { return _mm512_fmadd_ps(a, b, acc); }
  static Acc add_wide(Acc acc, Wide w) { return _mm512_add_ps(acc, w); }
  static Acc add(Acc a, Acc b) { return _mm512_add_ps(a, b); }
  // GCC and Clang sum halves: 16 -> 8 -> 4 -> 2 -> 1 lanes.
  static float reduce(Acc v) { return _mm512_reduce_add_ps(v); }
  static void reduce4(const Acc* v, float* const* out) {
    for (int p = 0; p < 4; ++p) *out[p] = reduce(v[p]);
  }

  static Wide load(const float* p) { return _mm512_loadu_ps(p); }
  static Wide load(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static Wide load(const BFloat16* p) {
    return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static Wide load(const std::int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static Wide load_tail(const float* p, std::size_t n) { return _mm512_maskz_loadu_ps(first16(n), p); }
  static Wide load_tail(const std::uint16_t* p, std::size_t n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first16(n), p));
  }
  static Wide load_tail(const BFloat16* p, std::size_t n) {
    return widen_bf16(_mm256_maskz_loadu_epi16(first16(n), p));
  }
  static Wide load_tail(const std::int8_t* p, std::size_t n) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(first16(n), p)));
  }

  static Wide with_bit_signs(Wide w, const std::uint8_t* bits, std::size_t s, std::size_t dim) {
    __m512 flipped = _mm512_xor_ps(w, _mm512_set1_ps(-0.0f));
    return _mm512_mask_blend_ps(bit_lanes(bits, 16 * s, dim), flipped, w);
  }
  static void store(float* p, Wide w) { _mm512_storeu_ps(p, w); }

  // The batch kernel's register tile: 8 queries x 48 rows is 24
  // accumulators, 3 panel registers and 1 broadcast of the 32 ZMM
  // registers: 24 independent chains cover the FMA latency (4 cycles x 2
  // ports), and per dimension 11 loads feed 24 FMAs. A slice of 128
  // dimensions of a panel is 24 KiB, half the L1 of Ice Lake, Sapphire
  // Rapids and Zen 5 (three quarters of Zen 4's 32 KiB). Measured on an
  // Intel Xeon (Ice Lake, one thread, 96 queries x 288 rows in L2):
  // 8 x 48 at 128 dimensions a slice ran 138-144 GFLOP/s at d = 384, the
  // 12 x 32 and 6 x 64 tiles 129-138, slices of 96 and 256 4-16% slower.
  static constexpr std::size_t kLanes = 16;
  static constexpr int kBatchQueries = 8;
  static constexpr int kBatchVectors = 3;
  static constexpr std::size_t kBatchDepth = 128;
  // The micro-batch kernel's register tile: 12 rows x 32 queries is 24
  // accumulators, 2 query registers and 1 broadcast of the 32.
  static constexpr int kMicroRows = 12;
  static constexpr int kMicroVectors = 2;
  static Acc broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Acc load_lanes(const float* p) { return _mm512_loadu_ps(p); }
  static Acc load_first(const float* p, std::size_t n) { return _mm512_maskz_loadu_ps(first16(n), p); }
  static Acc madd_lanes(Acc acc, Acc a, Acc b) { return _mm512_fmadd_ps(a, b, acc); }
  static void store_lanes(float* p, Acc v) { _mm512_storeu_ps(p, v); }
  static void store_first(float* p, Acc v, std::size_t n) { _mm512_mask_storeu_ps(p, first16(n), v); }
  // 16 x 16: pairs, then quads within each 128-bit lane, then 128-bit lanes
  // across registers (twice), 64 shuffles.
  static void prefetch(std::uintptr_t address) {
    _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T0);
  }
  static void transpose(Acc* m) {
    Acc t[16], u[16];
    for (int i = 0; i < 16; i += 4) {
      t[i] = _mm512_unpacklo_ps(m[i], m[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(m[i], m[i + 1]);
      t[i + 2] = _mm512_unpacklo_ps(m[i + 2], m[i + 3]);
      t[i + 3] = _mm512_unpackhi_ps(m[i + 2], m[i + 3]);
      u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
      u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
      u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    // u[4g + k]: rows 4g..4g+3 at column 4L + k in each 128-bit lane L.
    for (int k = 0; k < 4; ++k) {
      Acc even_low = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88);
      Acc odd_low = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xdd);
      Acc even_high = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
      Acc odd_high = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xdd);
      m[k] = _mm512_shuffle_f32x4(even_low, even_high, 0x88);
      m[4 + k] = _mm512_shuffle_f32x4(odd_low, odd_high, 0x88);
      m[8 + k] = _mm512_shuffle_f32x4(even_low, even_high, 0xdd);
      m[12 + k] = _mm512_shuffle_f32x4(odd_low, odd_high, 0xdd);
    }
  }
};

// acc + each lane's four products of unsigned bytes of a by signed bytes of
// b (vpdpbusd). GCC 12 compiles the intrinsic with a copy of the
// accumulator around each instruction and the others spilled to the stack
// (25 stack stores in the batch tile's inner loop, where 24 accumulators fit
// the registers), so GCC-compatible compilers take it as inline assembly with
// the accumulator tied to the output; others the intrinsic.
__m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
#if defined(__GNUC__)
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, a, b);
#endif
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

struct DotI8Block {
  template <int NQ, int NC>
  static void run(std::size_t i0, std::size_t j0, const Tile& t, const std::int32_t* query_sums,
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
        for (int j = 0; j < NC; ++j) acc[i][j] = dpbusd(acc[i][j], cv[j], qv);
      }
    }
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) {
        scores[(i0 + i) * t.corpus_count + j0 + j] =
            _mm512_reduce_add_epi32(acc[i][j]) - 128 * query_sums[i0 + i];
      }
    }
  }
};

std::int32_t int8_sum(const std::int8_t* p, std::size_t dim) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  for (std::size_t l = 0; l < dim; l += 64) acc = dpbusd(acc, ones, load_i8(p + l, dim - l));
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
    squares = dpbusd(squares, _mm512_xor_si512(v, flip), v);
    sum = dpbusd(sum, ones, v);
  }
  return _mm512_reduce_add_epi32(squares) - 128 * _mm512_reduce_add_epi32(sum);
}

// Up to 64 queries at a time, with their byte sums, in blocks of 4 x 6.
void dot_i8_queries(const Tile& t, const std::int32_t* query_sums) {
  for_each_block<DotI8Block, 4, 6>(t.query_count, t.corpus_count, t, query_sums,
                                   static_cast<std::int32_t*>(t.scores));
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
  int8_corpus_norms(t, int8_sqnorm);
}

// The int8 batch tiles with VNNI: vpdpbusd multiplies the biased (unsigned)
// query bytes by the row bytes. Micro (rows broadcast in place): 12 rows x
// 32 queries, 24 accumulators, 2 query registers, 1 broadcast; per quad 14
// loads feed 24 vpdpbusd. Panels (queries broadcast): 8 queries x 48 rows
// as the float panels, slices of 128 quads (24 KiB of a panel); measured on
// an Intel Xeon (Ice Lake, one thread, 64 queries x 288 rows in L2): 286-302
// G multiply-adds/s against the micro tile's 203-235 (peak 323-355).
struct Int8Vector {
  using Acc = __m512i;
  using Value = std::int32_t;
  static constexpr std::size_t kLanes = 16;
  static constexpr int kMicroRows = 12;
  static constexpr int kMicroVectors = 2;
  static constexpr int kBatchQueries = 8;
  static constexpr int kBatchVectors = 3;
  static constexpr std::size_t kBatchDepth = 128;
  static constexpr std::uint8_t kQueryBias = 0x80;
  static Acc zero() { return _mm512_setzero_si512(); }
  static Acc load(const std::uint8_t* p) { return _mm512_loadu_si512(p); }
  static Acc broadcast(std::int32_t x) { return _mm512_set1_epi32(x); }
  static Acc broadcast(const std::int32_t* p) { return _mm512_set1_epi32(*p); }
  static Acc dot(Acc acc, Acc q, Acc b) { return dpbusd(acc, q, b); }
  static Acc madd_lanes(Acc acc, Acc q, Acc c) { return dpbusd(acc, q, c); }
  static Acc biased(Acc c) { return _mm512_xor_si512(c, _mm512_set1_epi8(static_cast<char>(0x80))); }
  static Acc load_lanes(const std::int32_t* p) { return _mm512_loadu_si512(p); }
  static Acc load_first(const std::int32_t* p, std::size_t n) { return _mm512_maskz_loadu_epi32(first16(n), p); }
  static void store_lanes(std::int32_t* p, Acc v) { _mm512_storeu_si512(p, v); }
  static void store_first(std::int32_t* p, Acc v, std::size_t n) { _mm512_mask_storeu_epi32(p, first16(n), v); }
  static void prefetch(std::uintptr_t address) { FloatVector::prefetch(address); }
  static std::int32_t sum(const std::int8_t* c, std::size_t dim) { return int8_sum(c, dim); }
  static std::int32_t sqnorm(const std::int8_t* c, std::size_t dim) { return int8_sqnorm(c, dim); }
};

// NQ queries against one corpus row: each 64 bytes of the row are loaded once
// for all of them (only a last partial step masked) and the differing bits
// counted per 64-bit lane with VPOPCNTQ.
struct HammingBlock {
  template <int NQ, int NC>
  static void run(std::size_t i0, std::size_t j, const Tile& t, std::size_t bytes,
                  std::int32_t* scores) {
    static_assert(NC == 1, "one corpus row at a time");
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
};

void hamming_tile(const Tile& t) {
  for_each_block<HammingBlock, 4, 1>(t.query_count, t.corpus_count, t, (t.dim + 7) / 8,
                                     static_cast<std::int32_t*>(t.scores));
}

// The int8 peak: the batch tile's 24 vpdpbusd chains, 64 multiply-adds each.
struct VnniChain {
  using Reg = __m512i;
  static constexpr int kChains = Int8Vector::kMicroRows * Int8Vector::kMicroVectors;
  static constexpr int kMacs = 64;
  static Reg splat(std::int32_t x) { return _mm512_set1_epi32(x); }
  static Reg chain_step(Reg acc, Reg zero) { return dpbusd(acc, zero, zero); }
  static std::int32_t first_lane(Reg v) { return _mm_cvtsi128_si32(_mm512_castsi512_si128(v)); }
};

}  // namespace

constexpr Kernels kernels = simd_kernels<FloatVector, Int8Vector>(
    int8_tile<false>, int8_tile<true>, hamming_tile, int8_chains<VnniChain>);

}  // namespace simkernel::avx512
