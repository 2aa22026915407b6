// NEON (AArch64 Advanced SIMD) kernels: part of every arm64 CPU, so this file
// needs no extra flags; dispatch still checks HWCAP before using it. It is
// compiled a second time, with +dotprod, by kernels_neon_dotprod.cpp: there
// the int8 x int8 steps use the Armv8.2 dot-product instructions, and
// dispatch picks that table on CPUs that report them.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "simkernel/kernels.hpp"
#include "tile_bodies.hpp"

#ifndef SIMKERNEL_NEON_NAMESPACE
#define SIMKERNEL_NEON_NAMESPACE neon
#endif

namespace simkernel::SIMKERNEL_NEON_NAMESPACE {
namespace {

// Eight float32 lanes as two registers: the step every element type is
// widened to.
struct Eight {
  float32x4_t lo, hi;
};

// Each bit is +1 (set) or -1 (clear), first dimension in the top bit: the
// byte broadcast to every lane and tested against one bit per lane gives the
// lanes whose sign to flip.
Eight bit_signs(std::uint8_t byte) {
  static const std::uint32_t kLoBits[4] = {128, 64, 32, 16};
  static const std::uint32_t kHiBits[4] = {8, 4, 2, 1};
  uint32x4_t bits = vdupq_n_u32(byte);
  uint32x4_t sign = vdupq_n_u32(0x80000000u);
  return {vreinterpretq_f32_u32(vbicq_u32(sign, vtstq_u32(bits, vld1q_u32(kLoBits)))),
          vreinterpretq_f32_u32(vbicq_u32(sign, vtstq_u32(bits, vld1q_u32(kHiBits))))};
}

float32x4_t flip(float32x4_t q, float32x4_t sign) {
  return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(q), vreinterpretq_u32_f32(sign)));
}

// The float vector operations of tile_bodies.hpp: steps of 8 dimensions
// summed into 4 lanes (lane i takes dimensions i, then i + 4, of each step).
struct FloatVector {
  static constexpr std::size_t kStep = 8;
  // 4 x 3 keeps 12 accumulators, 6 corpus and 2 query registers live of the 32.
  static constexpr int kBlockRows = 3;
  static constexpr int kBitsRows = 1;
  using Acc = float32x4_t;
  using Value = float;
  using Wide = Eight;

  static Acc zero() { return vdupq_n_f32(0); }
  static Wide splat(float x) { return {vdupq_n_f32(x), vdupq_n_f32(x)}; }
  static Acc madd(Acc acc, Wide a, Wide b) { return vfmaq_f32(vfmaq_f32(acc, a.lo, b.lo), a.hi, b.hi); }
  static Acc add_wide(Acc acc, Wide w) { return vaddq_f32(vaddq_f32(acc, w.lo), w.hi); }
  static Acc add(Acc a, Acc b) { return vaddq_f32(a, b); }
  // faddp twice: (0 + 1) + (2 + 3).
  static float reduce(Acc v) { return vaddvq_f32(v); }
  static void reduce4(const Acc* v, float* const* out) {
    for (int p = 0; p < 4; ++p) *out[p] = reduce(v[p]);
  }

  static Wide load(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  static Wide load(const std::uint16_t* p) {
    float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    return {vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
  }
  static Wide load(const BFloat16* p) {
    uint16x8_t h = vld1q_u16(reinterpret_cast<const std::uint16_t*>(p));
    return {vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)),
            vreinterpretq_f32_u32(vshll_high_n_u16(h, 16))};
  }
  static Wide load(const std::int8_t* p) {
    int16x8_t wide = vmovl_s8(vld1_s8(p));
    return {vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide))), vcvtq_f32_s32(vmovl_high_s16(wide))};
  }
  template <typename T>
  static Wide load_tail(const T* p, std::size_t n) { return load_padded<FloatVector>(p, n); }

  static Wide with_bit_signs(Wide w, const std::uint8_t* bits, std::size_t s, std::size_t) {
    Eight sign = bit_signs(bits[s]);
    return {flip(w.lo, sign.lo), flip(w.hi, sign.hi)};
  }
  static void store(float* p, Wide w) {
    vst1q_f32(p, w.lo);
    vst1q_f32(p + 4, w.hi);
  }

  // The batch kernel's register tile: 8 queries x 12 rows is 24
  // accumulators, 3 panel registers and 1 broadcast (ld1r) of the 32; a
  // slice of 256 dimensions of a panel is 12 KiB, under half of the
  // smallest Arm L1 data cache (32 KiB). Chosen from the register count;
  // not measured on Arm hardware.
  static constexpr std::size_t kLanes = 4;
  static constexpr int kBatchQueries = 8;
  static constexpr int kBatchVectors = 3;
  static constexpr std::size_t kBatchDepth = 256;
  // The micro-batch kernel's register tile: 6 rows x 16 queries is 24
  // accumulators, 4 query registers and 1 broadcast of the 32.
  static constexpr int kMicroRows = 6;
  static constexpr int kMicroVectors = 4;
  static Acc broadcast(const float* p) { return vld1q_dup_f32(p); }
  static Acc load_lanes(const float* p) { return vld1q_f32(p); }
  static Acc load_first(const float* p, std::size_t n) {
    float lanes[4] = {};
    std::memcpy(lanes, p, n * sizeof(float));
    return vld1q_f32(lanes);
  }
  static Acc madd_lanes(Acc acc, Acc a, Acc b) { return vfmaq_f32(acc, a, b); }
  static void store_lanes(float* p, Acc v) { vst1q_f32(p, v); }
  static void store_first(float* p, Acc v, std::size_t n) {
    float lanes[4];
    vst1q_f32(lanes, v);
    std::memcpy(p, lanes, n * sizeof(float));
  }
  // 4 x 4: 32-bit pairs (trn1 / trn2), then 64-bit halves.
  static void prefetch(std::uintptr_t address) {
#if defined(_MSC_VER) && !defined(__clang__)
    __prefetch(reinterpret_cast<const void*>(address));
#else
    __builtin_prefetch(reinterpret_cast<const void*>(address));
#endif
  }
  static void transpose(Acc* m) {
    Acc t0 = vtrn1q_f32(m[0], m[1]), t1 = vtrn2q_f32(m[0], m[1]);
    Acc t2 = vtrn1q_f32(m[2], m[3]), t3 = vtrn2q_f32(m[2], m[3]);
    auto halves = [](Acc a, Acc b, bool high) {
      float64x2_t x = vreinterpretq_f64_f32(a), y = vreinterpretq_f64_f32(b);
      return vreinterpretq_f32_f64(high ? vtrn2q_f64(x, y) : vtrn1q_f64(x, y));
    };
    m[0] = halves(t0, t2, false);
    m[1] = halves(t1, t3, false);
    m[2] = halves(t0, t2, true);
    m[3] = halves(t1, t3, true);
  }
};

int8x16_t load_i8(const std::int8_t* p, std::size_t n) {
  if (n >= 16) return vld1q_s8(p);
  std::int8_t buffer[16] = {};
  std::memcpy(buffer, p, n);
  return vld1q_s8(buffer);
}

#if defined(__ARM_FEATURE_DOTPROD)
// sdot sums four int8 products (each |p| <= 2^14) into an int32 lane: exact
// for every int8 value, -128 included, one instruction per 16 pairs.
struct DotI8 {
  static int32x4_t step(int8x16_t a, int8x16_t b, int32x4_t acc) { return vdotq_s32(acc, a, b); }
};

// |a - b| of two int8 values is at most 255: sabd gives it exactly as a
// uint8, and udot squares and sums four of them (<= 4 * 255^2) per uint32
// lane. The total for rows within kMaxInt8Dim fits int32.
struct SquaredDistanceI8 {
  static int32x4_t step(int8x16_t a, int8x16_t b, int32x4_t acc) {
    uint8x16_t d = vreinterpretq_u8_s8(vabdq_s8(a, b));
    return vreinterpretq_s32_u32(vdotq_u32(vreinterpretq_u32_s32(acc), d, d));
  }
};
#else
// int8 x int8 with widening multiplies: products (|p| <= 2^14) are exact in
// int16, squared differences (<= 255^2) in int32; every int8 value works.
struct DotI8 {
  static int32x4_t step(int8x16_t a, int8x16_t b, int32x4_t acc) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
  }
};

struct SquaredDistanceI8 {
  static int32x4_t step(int8x16_t a, int8x16_t b, int32x4_t acc) {
    int16x8_t lo = vsubl_s8(vget_low_s8(a), vget_low_s8(b));
    int16x8_t hi = vsubl_high_s8(a, b);
    acc = vmlal_s16(acc, vget_low_s16(lo), vget_low_s16(lo));
    acc = vmlal_high_s16(acc, lo, lo);
    acc = vmlal_s16(acc, vget_low_s16(hi), vget_low_s16(hi));
    return vmlal_high_s16(acc, hi, hi);
  }
};
#endif

template <typename Op>
struct Int8Block {
  template <int NQ, int NC>
  static void run(std::size_t i0, std::size_t j0, const Tile& t, std::int32_t* scores) {
    const std::int8_t* q[NQ];
    const std::int8_t* c[NC];
    for (int i = 0; i < NQ; ++i) q[i] = row<std::int8_t>(t.queries, t.query_stride, i0 + i);
    for (int j = 0; j < NC; ++j) c[j] = row<std::int8_t>(t.corpus, t.corpus_stride, j0 + j);
    int32x4_t acc[NQ][NC];
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) acc[i][j] = vdupq_n_s32(0);
    }
    for (std::size_t l = 0; l < t.dim; l += 16) {
      std::size_t n = t.dim - l;
      int8x16_t cv[NC];
      for (int j = 0; j < NC; ++j) cv[j] = load_i8(c[j] + l, n);
      for (int i = 0; i < NQ; ++i) {
        int8x16_t qv = load_i8(q[i] + l, n);
        for (int j = 0; j < NC; ++j) acc[i][j] = Op::step(qv, cv[j], acc[i][j]);
      }
    }
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) {
        scores[(i0 + i) * t.corpus_count + j0 + j] = vaddvq_s32(acc[i][j]);
      }
    }
  }
};

std::int32_t int8_sqnorm(const std::int8_t* c, std::size_t dim) {
  int32x4_t acc = vdupq_n_s32(0);
  for (std::size_t l = 0; l < dim; l += 16) {
    int8x16_t v = load_i8(c + l, dim - l);
    acc = DotI8::step(v, v, acc);
  }
  return vaddvq_s32(acc);
}

template <typename Op>
void int8_tile(const Tile& t) {
  for_each_block<Int8Block<Op>, 4, 3>(t.query_count, t.corpus_count, t,
                                      static_cast<std::int32_t*>(t.scores));
  int8_corpus_norms(t, int8_sqnorm);
}

// vcnt counts the bits of each byte of the XOR; pairwise widening adds carry
// the counts into 32-bit lanes.
std::int32_t hamming_row(const std::uint8_t* a, const std::uint8_t* b, std::size_t bytes) {
  uint32x4_t acc = vdupq_n_u32(0);
  std::size_t i = 0;
  for (; i + 16 <= bytes; i += 16) {
    uint8x16_t counts = vcntq_u8(veorq_u8(vld1q_u8(a + i), vld1q_u8(b + i)));
    acc = vpadalq_u16(acc, vpaddlq_u8(counts));
  }
  // The last bytes (< 16) by vcnt of one word at a time: no compiler builtin
  // (MSVC has none for arm64).
  auto popcount = [](std::uint64_t x) { return vaddv_u8(vcnt_u8(vcreate_u8(x))); };
  return static_cast<std::int32_t>(vaddvq_u32(acc) + hamming_words(a + i, b + i, bytes - i, popcount));
}

void hamming_tile(const Tile& t) {
  auto* scores = static_cast<std::int32_t*>(t.scores);
  std::size_t bytes = (t.dim + 7) / 8;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    const auto* c = row<std::uint8_t>(t.corpus, t.corpus_stride, j);
    for (std::size_t i = 0; i < t.query_count; ++i) {
      scores[i * t.corpus_count + j] =
          hamming_row(row<std::uint8_t>(t.queries, t.query_stride, i), c, bytes);
    }
  }
}

#if defined(__ARM_FEATURE_DOTPROD)
// The int8 batch tiles with sdot: signed query bytes (no bias) times the
// row bytes. Micro (rows broadcast in place): 5 rows x 16 queries, 20
// accumulators, 4 query registers and 5 broadcasts (GCC loads every row's
// four bytes of a quad before the first sdot) fit the 32; 6 rows spilled an
// accumulator. Panels (queries broadcast): 8 queries x 12 rows as the float
// panels. Chosen from the register count; not measured on Arm hardware.
struct Int8Vector {
  using Acc = int32x4_t;
  using Value = std::int32_t;
  static constexpr std::size_t kLanes = 4;
  static constexpr int kMicroRows = 5;
  static constexpr int kMicroVectors = 4;
  static constexpr int kBatchQueries = 8;
  static constexpr int kBatchVectors = 3;
  static constexpr std::size_t kBatchDepth = 256;
  static constexpr std::uint8_t kQueryBias = 0;
  static Acc zero() { return vdupq_n_s32(0); }
  static Acc load(const std::uint8_t* p) { return vreinterpretq_s32_u8(vld1q_u8(p)); }
  static Acc broadcast(std::int32_t x) { return vdupq_n_s32(x); }
  static Acc broadcast(const std::int32_t* p) { return vld1q_dup_s32(p); }
  static Acc dot(Acc acc, Acc q, Acc b) {
    return vdotq_s32(acc, vreinterpretq_s8_s32(q), vreinterpretq_s8_s32(b));
  }
  static Acc madd_lanes(Acc acc, Acc q, Acc c) { return dot(acc, q, c); }
  static Acc biased(Acc c) { return c; }
  static Acc load_lanes(const std::int32_t* p) { return vld1q_s32(p); }
  static Acc load_first(const std::int32_t* p, std::size_t n) {
    std::int32_t lanes[4] = {};
    std::memcpy(lanes, p, n * sizeof *p);
    return vld1q_s32(lanes);
  }
  static void store_lanes(std::int32_t* p, Acc v) { vst1q_s32(p, v); }
  static void store_first(std::int32_t* p, Acc v, std::size_t n) {
    std::int32_t lanes[4];
    vst1q_s32(lanes, v);
    std::memcpy(p, lanes, n * sizeof *p);
  }
  static void prefetch(std::uintptr_t address) { FloatVector::prefetch(address); }
  static std::int32_t sqnorm(const std::int8_t* c, std::size_t dim) { return int8_sqnorm(c, dim); }
};
#else
using Int8Vector = NoInt8Batch;
#endif

// The int8 peak: Int8Block's 4 x 3 accumulators as chains of DotI8's step
// (sdot, or the widening multiplies without DotProd: 16 multiply-adds).
struct DotChain {
  using Reg = int32x4_t;
  static constexpr int kChains = 12;
  static constexpr int kMacs = 16;
  static Reg splat(std::int32_t x) { return vdupq_n_s32(x); }
  static Reg chain_step(Reg acc, Reg zero) {
    return DotI8::step(vreinterpretq_s8_s32(acc), vreinterpretq_s8_s32(zero), acc);
  }
  static std::int32_t first_lane(Reg v) { return vgetq_lane_s32(v, 0); }
};

}  // namespace

constexpr Kernels kernels = simd_kernels<FloatVector, Int8Vector>(
    int8_tile<DotI8>, int8_tile<SquaredDistanceI8>, hamming_tile, int8_chains<DotChain>);

}  // namespace simkernel::SIMKERNEL_NEON_NAMESPACE
