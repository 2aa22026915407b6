// NEON (AArch64 Advanced SIMD) kernels: part of every arm64 CPU, so this file
// needs no extra flags; dispatch still checks HWCAP before using it. It is
// compiled a second time, with +dotprod, by kernels_neon_dotprod.cpp: there
// the int8 x int8 steps use the Armv8.2 dot-product instructions, and
// dispatch picks that table on CPUs that report them.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "simkernel/kernels.hpp"
#include "widened_bits.hpp"

#ifndef SIMKERNEL_NEON_NAMESPACE
#define SIMKERNEL_NEON_NAMESPACE neon
#endif

namespace simkernel::SIMKERNEL_NEON_NAMESPACE {
namespace {

template <typename T>
const T* row(const void* base, std::ptrdiff_t stride, std::size_t i) {
  return reinterpret_cast<const T*>(static_cast<const char*>(base) +
                                    static_cast<std::ptrdiff_t>(i) * stride);
}

// Eight float32 lanes as two registers: every element type is widened to this.
struct Eight {
  float32x4_t lo, hi;
};

// The last n (< 8) elements of a row, copied into a zeroed buffer and loaded
// as a whole step, so no load reads past the end of a row.
template <typename Elem>
Eight load_padded(const typename Elem::T* p, std::size_t n) {
  typename Elem::T buffer[8] = {};
  std::memcpy(buffer, p, n * sizeof *p);
  return Elem::load(buffer);
}

// Corpus element types, each widened to eight float32 lanes.
struct F32 {
  using T = float;
  static Eight load(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  static Eight load_tail(const float* p, std::size_t n) { return load_padded<F32>(p, n); }
};

struct F16 {
  using T = std::uint16_t;
  static Eight load(const std::uint16_t* p) {
    float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    return {vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
  }
  static Eight load_tail(const std::uint16_t* p, std::size_t n) { return load_padded<F16>(p, n); }
};

struct I8 {
  using T = std::int8_t;
  static Eight load(const std::int8_t* p) {
    int16x8_t wide = vmovl_s8(vld1_s8(p));
    return {vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide))),
            vcvtq_f32_s32(vmovl_high_s16(wide))};
  }
  static Eight load_tail(const std::int8_t* p, std::size_t n) { return load_padded<I8>(p, n); }
};

struct Dot {
  static float32x4_t step(Eight q, Eight c, float32x4_t acc) {
    return vfmaq_f32(vfmaq_f32(acc, q.lo, c.lo), q.hi, c.hi);
  }
};

// Every pair's sum has one fixed shape, whatever path computes it: step s
// (8 dimensions; the last one zero-padded) goes to accumulator s % 4, each
// accumulator in increasing s, and the four are combined as (a0 + a1) +
// (a2 + a3). So a score does not depend on the batch, the tile or the thread.
constexpr int kClasses = 4;

float32x4_t combine(const float32x4_t* part) {
  return vaddq_f32(vaddq_f32(part[0], part[1]), vaddq_f32(part[2], part[3]));
}

// One query against one row after another: memory is read in order, and the
// four accumulators of the fixed shape are four independent FMA chains. With
// Norms the row's squared norm is summed in the same pass.
template <typename Elem, bool Norms>
void float_row(const Tile& t, std::size_t i, float* scores, float* norms) {
  using T = typename Elem::T;
  const float* q = row<float>(t.queries, t.query_stride, i);
  std::size_t full = t.dim / 8;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    const T* c = row<T>(t.corpus, t.corpus_stride, j);
    float32x4_t acc[kClasses], norm[kClasses];
    for (int k = 0; k < kClasses; ++k) acc[k] = norm[k] = vdupq_n_f32(0);
    auto step = [&](std::size_t k, Eight qv, Eight cv) {
      acc[k] = Dot::step(qv, cv, acc[k]);
      if (Norms) norm[k] = Dot::step(cv, cv, norm[k]);
    };
    for (std::size_t s = 0; s < full; ++s) {
      step(s % kClasses, F32::load(q + 8 * s), Elem::load(c + 8 * s));
    }
    if (8 * full < t.dim) {
      std::size_t n = t.dim - 8 * full;
      step(full % kClasses, F32::load_tail(q + 8 * full, n), Elem::load_tail(c + 8 * full, n));
    }
    scores[i * t.corpus_count + j] = vaddvq_f32(combine(acc));
    if (Norms) norms[j] = vaddvq_f32(combine(norm));
  }
}

// A row's squared norm in the fixed shape, as float_row with Norms sums it.
template <typename Elem>
float float_sqnorm(const typename Elem::T* c, std::size_t dim) {
  float32x4_t norm[kClasses];
  for (int k = 0; k < kClasses; ++k) norm[k] = vdupq_n_f32(0);
  std::size_t full = dim / 8;
  for (std::size_t s = 0; s < full; ++s) {
    Eight v = Elem::load(c + 8 * s);
    norm[s % kClasses] = Dot::step(v, v, norm[s % kClasses]);
  }
  if (8 * full < dim) {
    Eight v = Elem::load_tail(c + 8 * full, dim - 8 * full);
    norm[full % kClasses] = Dot::step(v, v, norm[full % kClasses]);
  }
  return vaddvq_f32(combine(norm));
}

// NQ queries x NC corpus rows, for many queries: the accumulators of the
// fixed shape are filled one class at a time (steps k, k + 4, ...), so a pass
// needs one register per pair: 4 x 3 keeps 12 accumulators, 6 corpus and 2
// query registers live of the 32; the rows stay in L1 across the passes.
template <typename Elem, int NQ, int NC>
void float_block(const Tile& t, std::size_t i0, std::size_t j0, float* scores) {
  using T = typename Elem::T;
  const float* q[NQ];
  const T* c[NC];
  for (int i = 0; i < NQ; ++i) q[i] = row<float>(t.queries, t.query_stride, i0 + i);
  for (int j = 0; j < NC; ++j) c[j] = row<T>(t.corpus, t.corpus_stride, j0 + j);
  std::size_t full = t.dim / 8, steps = (t.dim + 7) / 8;
  float32x4_t part[NQ][NC][kClasses];
  // Full steps load plainly; only the tail step, in its own class, pays for
  // padding, so the hot loop has no branch.
  for (int k = 0; k < kClasses; ++k) {
    float32x4_t acc[NQ][NC];
    for (int i = 0; i < NQ; ++i) {
      for (int j = 0; j < NC; ++j) acc[i][j] = vdupq_n_f32(0);
    }
    auto step = [&](std::size_t l, auto load_corpus, auto load_query) {
      Eight cv[NC];
      for (int j = 0; j < NC; ++j) cv[j] = load_corpus(c[j] + l);
      for (int i = 0; i < NQ; ++i) {
        Eight qv = load_query(q[i] + l);
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
  for (int i = 0; i < NQ; ++i) {
    for (int j = 0; j < NC; ++j) {
      scores[(i0 + i) * t.corpus_count + j0 + j] = vaddvq_f32(combine(part[i][j]));
    }
  }
}

// Groups of 4 queries go corpus-row-outermost: 3 rows loaded into L1 serve
// every group of the tile before the next 3 are read. Queries left over (and
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

// One query against bit rows, flipping the query's signs directly, in
// float_row's fixed shape: an FMA with +1 or -1 is exactly this add, so a
// score has the same bits here as on the widened path below.
void bits_rows(const Tile& t, std::size_t i, float* scores) {
  const float* q = row<float>(t.queries, t.query_stride, i);
  std::size_t full = t.dim / 8;
  for (std::size_t j = 0; j < t.corpus_count; ++j) {
    const std::uint8_t* c = row<std::uint8_t>(t.corpus, t.corpus_stride, j);
    float32x4_t acc[kClasses];
    for (int k = 0; k < kClasses; ++k) acc[k] = vdupq_n_f32(0);
    auto step = [&](std::size_t k, Eight qv, std::uint8_t byte) {
      Eight sign = bit_signs(byte);
      acc[k] = vaddq_f32(vaddq_f32(acc[k], flip(qv.lo, sign.lo)), flip(qv.hi, sign.hi));
    };
    for (std::size_t s = 0; s < full; ++s) step(s % kClasses, F32::load(q + 8 * s), c[s]);
    if (8 * full < t.dim) {
      // Lanes past dim load as 0 and add nothing, whatever their bit says.
      step(full % kClasses, F32::load_tail(q + 8 * full, t.dim - 8 * full), c[full]);
    }
    scores[i * t.corpus_count + j] = vaddvq_f32(combine(acc));
  }
}

// A bit row as +1.0 / -1.0 floats, for detail::widened_bits_tile (batches).
void widen_bits(const std::uint8_t* bits, std::size_t dim, float* out) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  auto widened = [&](std::uint8_t byte) {
    Eight sign = bit_signs(byte);
    return Eight{flip(one, sign.lo), flip(one, sign.hi)};
  };
  std::size_t full = dim / 8;
  for (std::size_t b = 0; b < full; ++b) {
    Eight v = widened(bits[b]);
    vst1q_f32(out + 8 * b, v.lo);
    vst1q_f32(out + 8 * b + 4, v.hi);
  }
  if (dim % 8 != 0) {
    float lanes[8];
    Eight v = widened(bits[full]);
    vst1q_f32(lanes, v.lo);
    vst1q_f32(lanes + 4, v.hi);
    std::memcpy(out + 8 * full, lanes, (dim % 8) * sizeof(float));
  }
}


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

template <typename Op, int NQ, int NC>
void int8_block(const Tile& t, std::size_t i0, std::size_t j0, std::int32_t* scores) {
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
  auto* scores = static_cast<std::int32_t*>(t.scores);
  std::size_t j = 0;
  for (; j + 3 <= t.corpus_count; j += 3) {
    std::size_t i = 0;
    for (; i + 4 <= t.query_count; i += 4) int8_block<Op, 4, 3>(t, i, j, scores);
    for (; i < t.query_count; ++i) int8_block<Op, 1, 3>(t, i, j, scores);
  }
  for (; j < t.corpus_count; ++j) {
    std::size_t i = 0;
    for (; i + 4 <= t.query_count; i += 4) int8_block<Op, 4, 1>(t, i, j, scores);
    for (; i < t.query_count; ++i) int8_block<Op, 1, 1>(t, i, j, scores);
  }
  if (t.corpus_norms != nullptr) {
    auto* norms = static_cast<std::int32_t*>(t.corpus_norms);
    for (std::size_t r = 0; r < t.corpus_count; ++r) {
      norms[r] = int8_sqnorm(row<std::int8_t>(t.corpus, t.corpus_stride, r), t.dim);
    }
  }
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
  std::uint32_t s = vaddvq_u32(acc);
  for (; i < bytes; ++i) s += static_cast<std::uint32_t>(__builtin_popcount(unsigned{a[i]} ^ b[i]));
  return static_cast<std::int32_t>(s);
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

// Four independent accumulators of 4 lanes: loads, not add latency, bound it.
float stream_sum(const float* data, std::size_t n) {
  float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vaddq_f32(s0, vld1q_f32(data + i));
    s1 = vaddq_f32(s1, vld1q_f32(data + i + 4));
    s2 = vaddq_f32(s2, vld1q_f32(data + i + 8));
    s3 = vaddq_f32(s3, vld1q_f32(data + i + 12));
  }
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; ++i) s += data[i];
  return s;
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

}  // namespace simkernel::SIMKERNEL_NEON_NAMESPACE
