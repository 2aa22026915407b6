// Portable C++ kernels: the baseline every other ISA is tested against.
#include <cstring>

#include "simkernel/kernels.hpp"
#include "tile_bodies.hpp"  // row(), hamming_words()

namespace simkernel::scalar {
namespace {

// IEEE binary16 -> binary32, exact for every value (subnormals, inf, NaN).
float half_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal: shift the mantissa up until its leading one is implicit.
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

float widen(float x) { return x; }
float widen(std::uint16_t x) { return half_to_float(x); }
float widen(BFloat16 x) { return widen_bfloat16(x); }
float widen(std::int8_t x) { return static_cast<float>(x); }

// Four independent partial sums, combined in a fixed order, so a pair's score
// never depends on where it sits in a tile.
template <typename T>
float dot_row(const float* q, const T* c, std::size_t dim) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    s0 += q[i] * widen(c[i]);
    s1 += q[i + 1] * widen(c[i + 1]);
    s2 += q[i + 2] * widen(c[i + 2]);
    s3 += q[i + 3] * widen(c[i + 3]);
  }
  for (; i < dim; ++i) s0 += q[i] * widen(c[i]);
  return (s0 + s1) + (s2 + s3);
}

// Summed exactly as dot_row sums a row with itself, so |q|^2 + |c|^2 - 2 q.c
// is exactly 0 for a vector against itself.
template <typename T>
float sqnorm_row(const T* c, std::size_t dim) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    float a = widen(c[i]), b = widen(c[i + 1]), d = widen(c[i + 2]), e = widen(c[i + 3]);
    s0 += a * a;
    s1 += b * b;
    s2 += d * d;
    s3 += e * e;
  }
  for (; i < dim; ++i) s0 += widen(c[i]) * widen(c[i]);
  return (s0 + s1) + (s2 + s3);
}

// Each bit stands for +1 (set) or -1 (clear), most significant bit first,
// as np.packbits lays them out.
float dot_bits_row(const float* q, const std::uint8_t* c, std::size_t dim) {
  float plus = 0, minus = 0;
  for (std::size_t i = 0; i < dim; ++i) {
    if ((c[i >> 3] >> (7 - (i & 7))) & 1u) {
      plus += q[i];
    } else {
      minus += q[i];
    }
  }
  return plus - minus;
}

// Products of two int8 are at most 2^14 and rows at most 2^15 long, so the
// int32 sums cannot overflow; likewise (a - b)^2 <= 255^2 keeps a 2^15-long
// squared distance below 2^31.
std::int32_t dot_i8_row(const std::int8_t* a, const std::int8_t* b,
                        std::size_t dim) {
  std::int32_t s = 0;
  for (std::size_t i = 0; i < dim; ++i) s += std::int32_t{a[i]} * b[i];
  return s;
}

std::int32_t sqeuclidean_i8_row(const std::int8_t* a, const std::int8_t* b,
                                std::size_t dim) {
  std::int32_t s = 0;
  for (std::size_t i = 0; i < dim; ++i) {
    std::int32_t d = std::int32_t{a[i]} - b[i];
    s += d * d;
  }
  return s;
}

#if defined(_MSC_VER) && !defined(__clang__)
// MSVC has no __builtin_popcount, and its __popcnt64 needs the POPCNT
// instruction, which baseline x86-64 lacks: count by halving, in registers.
std::int32_t popcount64(std::uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555ull;
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<std::int32_t>((x * 0x0101010101010101ull) >> 56);
}
#else
std::int32_t popcount64(std::uint64_t x) { return __builtin_popcountll(x); }
#endif

std::int32_t hamming_row(const std::uint8_t* a, const std::uint8_t* b,
                         std::size_t bytes) {
  return static_cast<std::int32_t>(hamming_words(a, b, bytes, popcount64));
}

// Applies `pair_score(query_row, corpus_row, dim)` over a tile, and fills the
// corpus norms when asked.
template <typename Q, typename C, typename Score, typename PairScore,
          typename SqNorm>
void tile_apply(const Tile& t, PairScore pair_score, SqNorm sqnorm) {
  auto* scores = static_cast<Score*>(t.scores);
  for (std::size_t i = 0; i < t.query_count; ++i) {
    const Q* q = row<Q>(t.queries, t.query_stride, i);
    for (std::size_t j = 0; j < t.corpus_count; ++j) {
      scores[i * t.corpus_count + j] =
          pair_score(q, row<C>(t.corpus, t.corpus_stride, j), t.dim);
    }
  }
  if (t.corpus_norms != nullptr) {
    auto* norms = static_cast<Score*>(t.corpus_norms);
    for (std::size_t j = 0; j < t.corpus_count; ++j) {
      norms[j] = sqnorm(row<C>(t.corpus, t.corpus_stride, j), t.dim);
    }
  }
}

template <typename C>
void dot_float_tile(const Tile& t) {
  tile_apply<float, C, float>(t, dot_row<C>, sqnorm_row<C>);
}

float no_norm(const std::uint8_t*, std::size_t) { return 0; }

void dot_bits_tile(const Tile& t) {
  // A row of +1 / -1 always has squared norm dim; the driver knows that.
  tile_apply<float, std::uint8_t, float>(t, dot_bits_row, no_norm);
}

std::int32_t sqnorm_i8_row(const std::int8_t* c, std::size_t dim) {
  return dot_i8_row(c, c, dim);
}

void dot_i8_tile(const Tile& t) {
  tile_apply<std::int8_t, std::int8_t, std::int32_t>(t, dot_i8_row,
                                                     sqnorm_i8_row);
}

void sqeuclidean_i8_tile(const Tile& t) {
  tile_apply<std::int8_t, std::int8_t, std::int32_t>(t, sqeuclidean_i8_row,
                                                     sqnorm_i8_row);
}

std::int32_t no_norm_bits(const std::uint8_t*, std::size_t) { return 0; }

void hamming_tile(const Tile& t) {
  Tile bytes = t;
  bytes.dim = (t.dim + 7) / 8;
  tile_apply<std::uint8_t, std::uint8_t, std::int32_t>(bytes, hamming_row,
                                                       no_norm_bits);
}

float stream_sum(const float* data, std::size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += data[i];
    s1 += data[i + 1];
    s2 += data[i + 2];
    s3 += data[i + 3];
  }
  for (; i < n; ++i) s0 += data[i];
  return (s0 + s1) + (s2 + s3);
}

// Eight independent multiply-add chains (unfused: the baseline has no FMA).
double fma_chains(std::size_t steps, float* result) {
  volatile float opaque_one = 1.0f, opaque_zero = 0.0f;
  const float one = opaque_one, zero = opaque_zero;
  float acc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  for (std::size_t s = 0; s < steps; ++s) {
    for (float& x : acc) x = x * one + zero;
  }
  float sum = 0;
  for (float x : acc) sum += x;
  *result = sum;
  return 2.0 * static_cast<double>(steps) * 8;
}

// Eight independent int32 multiply-add chains, each value one factor of its
// own step, the other an opaque 0.
double int8_chains(std::size_t steps, std::int32_t* result) {
  volatile std::int32_t opaque_zero = 0;
  const std::int32_t zero = opaque_zero;
  std::int32_t acc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  for (std::size_t s = 0; s < steps; ++s) {
    for (std::int32_t& x : acc) x += x * zero;
  }
  std::int32_t sum = 0;
  for (std::int32_t x : acc) sum += x;
  *result = sum;
  return static_cast<double>(steps) * 8;
}

}  // namespace

// Positional, in the order of Kernels' members.
constexpr Kernels kernels = {
    dot_float_tile<float>,  // dot_f32
    dot_float_tile<std::uint16_t>,  // dot_f16
    dot_float_tile<BFloat16>,  // dot_bf16
    dot_float_tile<std::int8_t>,  // dot_i8f
    dot_bits_tile,  // dot_bitsf
    dot_i8_tile,  // dot_i8
    sqeuclidean_i8_tile,  // sqeuclidean_i8
    hamming_tile,  // hamming
    nullptr,  // batch_f32: the scalar scores keep dot_f32's shape for every batch
    nullptr,  // micro_batch_f32
    stream_sum,  // stream_sum
    fma_chains,  // fma_chains
    0,  // batch_group
    0,  // micro_batch_group
    0,  // batch_panel
    nullptr,  // pack_panels
    nullptr,  // widen_f16
    nullptr,  // widen_bf16
    nullptr,  // widen_i8
    nullptr,  // widen_bits
    nullptr,  // batch_dot_i8
    nullptr,  // micro_batch_dot_i8
    0,  // batch_i8_group
    0,  // micro_batch_i8_group
    0,  // batch_i8_bias
    int8_chains,  // int8_chains
};

}  // namespace simkernel::scalar
