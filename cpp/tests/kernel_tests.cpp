// Holds every kernel of every ISA this CPU supports to the scalar kernels:
// integer kernels bit for bit, float kernels within the tolerance of
// docs/semantics.md.
// Rows are packed tight at the end of their buffers (and also laid out with
// padding and negative strides), so under AddressSanitizer any read past a
// row is caught. Usage: kernel_tests [isa ...]   (default: every registry row
// this CPU supports; a named one it lacks is a failure)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../src/scoring.hpp"  // pack_query_groups
#include "simkernel/dispatch.hpp"
#include "simkernel/kernels.hpp"

using namespace simkernel;

namespace {

enum class Elem { f32, f16, bf16, i8, bits };

struct KernelCase {
  const char* name;
  TileKernel Kernels::*kernel;
  Elem query;
  Elem corpus;
  bool integer;
};

const KernelCase kCases[] = {
    {"dot_f32", &Kernels::dot_f32, Elem::f32, Elem::f32, false},
    {"dot_f16", &Kernels::dot_f16, Elem::f32, Elem::f16, false},
    {"dot_bf16", &Kernels::dot_bf16, Elem::f32, Elem::bf16, false},
    {"dot_i8f", &Kernels::dot_i8f, Elem::f32, Elem::i8, false},
    {"dot_bitsf", &Kernels::dot_bitsf, Elem::f32, Elem::bits, false},
    {"dot_i8", &Kernels::dot_i8, Elem::i8, Elem::i8, true},
    {"sqeuclidean_i8", &Kernels::sqeuclidean_i8, Elem::i8, Elem::i8, true},
    {"hamming", &Kernels::hamming, Elem::bits, Elem::bits, true},
};

std::size_t row_bytes(Elem e, std::size_t dim) {
  switch (e) {
    case Elem::f32: return 4 * dim;
    case Elem::f16:
    case Elem::bf16: return 2 * dim;
    case Elem::i8: return dim;
    case Elem::bits: return (dim + 7) / 8;
  }
  return 0;
}

// Rows of random values, laid out with a gap between rows (or none) and in
// forward or reverse order; the last row in memory ends the buffer.
struct Rows {
  std::vector<unsigned char> buffer;
  const void* first;
  std::ptrdiff_t stride;
};

void fill(Elem e, unsigned char* p, std::size_t dim, std::mt19937& rng) {
  if (e == Elem::f32) {
    std::normal_distribution<float> normal;
    for (std::size_t i = 0; i < dim; ++i) {
      float v = normal(rng);
      std::memcpy(p + 4 * i, &v, 4);
    }
  } else if (e == Elem::f16) {
    // Finite halves of moderate size: random sign and mantissa, exponent 10..19.
    for (std::size_t i = 0; i < dim; ++i) {
      std::uint16_t h = static_cast<std::uint16_t>(((rng() & 1u) << 15) | ((10 + rng() % 10) << 10) |
                                                   (rng() & 0x3ffu));
      std::memcpy(p + 2 * i, &h, 2);
    }
  } else if (e == Elem::bf16) {
    // A float32 of the normal distribution cut to its top half: every bit
    // of the mantissa the type keeps is random, the exponents realistic.
    std::normal_distribution<float> normal;
    for (std::size_t i = 0; i < dim; ++i) {
      float v = normal(rng);
      std::uint32_t bits;
      std::memcpy(&bits, &v, 4);
      std::uint16_t top = static_cast<std::uint16_t>(bits >> 16);
      std::memcpy(p + 2 * i, &top, 2);
    }
  } else {
    for (std::size_t i = 0; i < row_bytes(e, dim); ++i) p[i] = static_cast<unsigned char>(rng());
  }
}

Rows make_rows(Elem e, std::size_t n, std::size_t dim, std::size_t gap, bool reversed,
               std::mt19937& rng) {
  std::size_t bytes = row_bytes(e, dim);
  std::size_t pitch = bytes + gap;
  Rows r;
  r.buffer.assign(n == 0 ? 0 : (n - 1) * pitch + bytes, 0);
  for (std::size_t i = 0; i < n; ++i) fill(e, r.buffer.data() + i * pitch, dim, rng);
  r.stride = reversed ? -static_cast<std::ptrdiff_t>(pitch) : static_cast<std::ptrdiff_t>(pitch);
  r.first = n == 0 ? r.buffer.data()
                   : r.buffer.data() + (reversed ? (n - 1) * pitch : 0);
  return r;
}

int failures = 0;
int checks = 0;

bool close(float got, float want, std::size_t dim, float magnitude) {
  return std::fabs(got - want) <= 1e-5f * std::sqrt(static_cast<float>(dim) + 1) * magnitude + 1e-30f;
}

void check_case(const char* isa, const KernelCase& c, const Kernels& wide, const Kernels& base,
                std::size_t nq, std::size_t nc, std::size_t dim, std::size_t gap, bool reversed,
                bool norms, std::mt19937& rng) {
  Rows q = make_rows(c.query, nq, dim, gap, false, rng);
  Rows x = make_rows(c.corpus, nc, dim, gap, reversed, rng);
  std::vector<float> got_f(nq * nc), want_f(nq * nc), got_nf(nc), want_nf(nc);
  std::vector<std::int32_t> got_i(nq * nc), want_i(nq * nc), got_ni(nc), want_ni(nc);
  bool with_norms = norms && c.corpus != Elem::bits;
  auto run = [&](const Kernels& k, void* scores, void* sqnorms) {
    (k.*c.kernel)(Tile{q.first, q.stride, nq, x.first, x.stride, nc, dim, scores,
                       with_norms ? sqnorms : nullptr});
  };
  ++checks;
  bool ok = true;
  if (c.integer) {
    run(wide, got_i.data(), got_ni.data());
    run(base, want_i.data(), want_ni.data());
    ok = got_i == want_i && (!with_norms || got_ni == want_ni);
  } else {
    run(wide, got_f.data(), got_nf.data());
    run(base, want_f.data(), want_nf.data());
    // Magnitudes from the scalar norms: |q.c| <= |q||c|.
    std::vector<float> cn(nc), qn(nq);
    std::vector<float> one(1);
    for (std::size_t j = 0; j < nc; ++j) {
      const void* row = static_cast<const char*>(x.first) + static_cast<std::ptrdiff_t>(j) * x.stride;
      float n2 = static_cast<float>(dim);  // a row of +1 / -1
      if (c.corpus != Elem::bits) {
        // No queries, one corpus row: the kernel only fills the row's norm.
        (base.*c.kernel)(Tile{row, 0, 0, row, 0, 1, dim, nullptr, &n2});
      }
      cn[j] = std::sqrt(n2);
    }
    for (std::size_t i = 0; i < nq; ++i) {
      const void* row = static_cast<const char*>(q.first) + static_cast<std::ptrdiff_t>(i) * q.stride;
      base.dot_f32(Tile{row, 0, 1, row, 0, 1, dim, one.data(), nullptr});
      qn[i] = std::sqrt(one[0]);
    }
    for (std::size_t i = 0; i < nq && ok; ++i) {
      for (std::size_t j = 0; j < nc && ok; ++j) {
        float magnitude = 2 * (qn[i] + cn[j]) * (qn[i] + cn[j]);
        ok = close(got_f[i * nc + j], want_f[i * nc + j], dim, magnitude);
      }
    }
    for (std::size_t j = 0; j < nc && ok && with_norms; ++j) {
      ok = close(got_nf[j], want_nf[j], dim, cn[j] * cn[j]);
    }
  }
  if (!ok && ++failures <= 20) {
    std::printf("FAILED %s %s nq=%zu nc=%zu dim=%zu gap=%zu reversed=%d norms=%d\n", isa, c.name,
                nq, nc, dim, gap, reversed, norms);
  }
}

// A pair's score must not depend on the tile it is computed in: each query
// of a 9-query tile (blocks of 4 and the single-query path) scored alone must
// give the same bits, and so must the fused norms against a norms-only pass.
void check_tile_independence(const char* isa, const KernelCase& c, const Kernels& wide,
                             std::size_t dim, std::mt19937& rng) {
  if (c.integer) return;  // integer sums are exact in any order
  const std::size_t nq = 9, nc = 13;
  Rows q = make_rows(c.query, nq, dim, 0, false, rng);
  Rows x = make_rows(c.corpus, nc, dim, 4, true, rng);
  std::vector<float> together(nq * nc), alone(nc), norms(nc), norms_alone(nc);
  bool norms_apply = c.corpus != Elem::bits;
  (wide.*c.kernel)(Tile{q.first, q.stride, nq, x.first, x.stride, nc, dim, together.data(),
                        norms_apply ? norms.data() : nullptr});
  bool same = true;
  for (std::size_t i = 0; i < nq; ++i) {
    const void* qi = static_cast<const char*>(q.first) + static_cast<std::ptrdiff_t>(i) * q.stride;
    (wide.*c.kernel)(Tile{qi, 0, 1, x.first, x.stride, nc, dim, alone.data(), nullptr});
    same = same && std::memcmp(alone.data(), together.data() + i * nc, 4 * nc) == 0;
  }
  if (norms_apply) {
    (wide.*c.kernel)(Tile{q.first, q.stride, 0, x.first, x.stride, nc, dim, nullptr,
                          norms_alone.data()});
    same = same && norms == norms_alone;
  }
  ++checks;
  if (!same && ++failures <= 20) {
    std::printf("FAILED %s %s: scores depend on the tile (dim=%zu)\n", isa, c.name, dim);
  }
}

// The summation order each SIMD table promises for float scores (see
// cpp/src/tile_bodies.hpp): dimensions in steps of `step`, step s into class
// s % 4, dimension d of a step into lane d % `lanes` by a fused multiply-add
// (in increasing d), the classes combined as (c0 + c1) + (c2 + c3), and the
// lanes reduced by halving (lane l + n/2 into lane l) or by adjacent pairs
// ((0 + 1) + (2 + 3)). Every float kernel of the ISA must give exactly the
// bits of this model, which pins them across refactors and compilers and on
// CPUs the team cannot run every day.
struct SumShape {
  const char* isa;
  std::size_t step;
  std::size_t lanes;
  bool adjacent_pairs;
};

const SumShape kShapes[] = {
    {"avx2", 8, 8, false},
    {"avx512", 16, 16, false},
    {"neon", 8, 4, true},
    {"neon_dotprod", 8, 4, true},
};

// a * b + c rounded once to float, without the C library's fmaf (MinGW's
// rounds twice, and is 1 ulp off): the product is exact in double, the sum
// is rounded to odd in double (53 >= 2 * 24 + 2 bits), and that makes the
// final rounding to float correct (Boldo and Melquiond's round-to-odd).
float fused(float a, float b, float c) {
  double p = static_cast<double>(a) * b;
  double s = p + c;
  double back = s - p;
  double error = (p - (s - back)) + (c - back);  // s + error == p + c exactly
  std::uint64_t bits;
  std::memcpy(&bits, &s, 8);
  if (error != 0 && (bits & 1u) == 0) s = std::nextafter(s, error > 0 ? HUGE_VAL : -HUGE_VAL);
  return static_cast<float>(s);
}

float model_sum(const SumShape& shape, const float* q, const float* c, std::size_t dim) {
  std::vector<float> acc(4 * shape.lanes, 0.0f);
  for (std::size_t s = 0; s * shape.step < dim; ++s) {
    for (std::size_t d = 0; d < shape.step; ++d) {
      std::size_t e = s * shape.step + d;
      float* lane = &acc[(s % 4) * shape.lanes + d % shape.lanes];
      *lane = fused(e < dim ? q[e] : 0.0f, e < dim ? c[e] : 0.0f, *lane);
    }
  }
  std::vector<float> v(shape.lanes);
  for (std::size_t l = 0; l < shape.lanes; ++l) {
    const float* a = acc.data() + l;
    v[l] = (a[0] + a[shape.lanes]) + (a[2 * shape.lanes] + a[3 * shape.lanes]);
  }
  for (std::size_t n = shape.lanes; n > 1; n /= 2) {
    for (std::size_t l = 0; l < n / 2; ++l) {
      v[l] = shape.adjacent_pairs ? v[2 * l] + v[2 * l + 1] : v[l] + v[l + n / 2];
    }
  }
  return v[0];
}

// A row of any corpus element type as the float32 values the kernels widen
// it to (exactly): halves here are normal, as fill() makes them.
std::vector<float> widened(Elem e, const void* p, std::size_t dim) {
  std::vector<float> out(dim);
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < dim; ++i) {
    if (e == Elem::f32) {
      std::memcpy(&out[i], bytes + 4 * i, 4);
    } else if (e == Elem::f16) {
      std::uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      std::uint32_t bits = (std::uint32_t{h & 0x8000u} << 16) |
                           ((((h >> 10) & 0x1fu) + 112u) << 23) | (std::uint32_t{h & 0x3ffu} << 13);
      std::memcpy(&out[i], &bits, 4);
    } else if (e == Elem::bf16) {
      std::uint16_t top;
      std::memcpy(&top, bytes + 2 * i, 2);
      std::uint32_t bits = std::uint32_t{top} << 16;
      std::memcpy(&out[i], &bits, 4);
    } else if (e == Elem::i8) {
      out[i] = static_cast<float>(static_cast<std::int8_t>(bytes[i]));
    } else {
      out[i] = (bytes[i / 8] >> (7 - i % 8)) & 1u ? 1.0f : -1.0f;
    }
  }
  return out;
}

void check_summation_shape(const SumShape& shape, const KernelCase& c, const Kernels& wide,
                           std::size_t dim, std::mt19937& rng) {
  if (c.integer) return;
  const std::size_t nq = 9, nc = 13;  // blocks of 4 queries, the row path, edge rows
  Rows q = make_rows(c.query, nq, dim, 0, false, rng);
  Rows x = make_rows(c.corpus, nc, dim, 4, true, rng);
  bool with_norms = c.corpus != Elem::bits;
  std::vector<float> scores(nq * nc), norms(nc);
  (wide.*c.kernel)(Tile{q.first, q.stride, nq, x.first, x.stride, nc, dim, scores.data(),
                        with_norms ? norms.data() : nullptr});
  bool same = true;
  for (std::size_t j = 0; j < nc; ++j) {
    std::vector<float> cj =
        widened(c.corpus, static_cast<const char*>(x.first) + static_cast<std::ptrdiff_t>(j) * x.stride, dim);
    if (with_norms) {
      float want = model_sum(shape, cj.data(), cj.data(), dim);
      same = same && std::memcmp(&want, &norms[j], 4) == 0;
    }
    for (std::size_t i = 0; i < nq; ++i) {
      std::vector<float> qi = widened(
          Elem::f32, static_cast<const char*>(q.first) + static_cast<std::ptrdiff_t>(i) * q.stride, dim);
      float want = model_sum(shape, qi.data(), cj.data(), dim);
      same = same && std::memcmp(&want, &scores[i * nc + j], 4) == 0;
    }
  }
  ++checks;
  if (!same && ++failures <= 20) {
    std::printf("FAILED %s %s: scores differ from the summation shape (dim=%zu)\n", shape.isa,
                c.name, dim);
  }
}

// The batch kernel's promise (cpp/src/tile_bodies.hpp): every pair, and
// every row's squared norm, is one fused multiply-add chain over the
// dimensions in order, from +0.0, whatever the group, the row's place in the
// tile or its panel, the slices over long rows or the number of queries;
// rows packed by pack_panels from any stride.
// The micro-batch kernel (`micro`) keeps the same promise, reading rows in
// place.
void check_batch_shape(const char* isa, const Kernels& wide, bool micro, std::size_t nq,
                       std::size_t nc, std::size_t dim, std::mt19937& rng) {
  Rows q = make_rows(Elem::f32, nq, dim, 0, false, rng);
  Rows x = make_rows(Elem::f32, nc, dim, 4, nc % 2 == 1, rng);
  std::size_t group = micro ? wide.micro_batch_group : wide.batch_group;
  std::vector<float> packed = detail::pack_query_groups(Matrix{q.first, q.stride, nq}, dim, group);
  std::size_t width = wide.batch_panel;
  std::vector<float> panels((nc + width - 1) / width * width * dim);
  wide.pack_panels(x.first, x.stride, nc, dim, panels.data());
  std::vector<float> scores(nq * nc), norms(nc);
  Tile tile{packed.data(), static_cast<std::ptrdiff_t>(group * dim * 4), nq,
            panels.data(), static_cast<std::ptrdiff_t>(width * dim * 4), nc, dim,
            scores.data(), norms.data()};
  if (micro) {
    tile.corpus = x.first;
    tile.corpus_stride = x.stride;
  }
  (micro ? wide.micro_batch_f32 : wide.batch_f32)(tile);
  auto chain = [dim](const std::vector<float>& a, const std::vector<float>& b) {
    float s = 0;
    for (std::size_t d = 0; d < dim; ++d) s = fused(a[d], b[d], s);
    return s;
  };
  bool same = true;
  for (std::size_t j = 0; j < nc; ++j) {
    std::vector<float> cj =
        widened(Elem::f32, static_cast<const char*>(x.first) + static_cast<std::ptrdiff_t>(j) * x.stride, dim);
    float want = chain(cj, cj);
    same = same && std::memcmp(&want, &norms[j], 4) == 0;
    for (std::size_t i = 0; i < nq; ++i) {
      std::vector<float> qi = widened(
          Elem::f32, static_cast<const char*>(q.first) + static_cast<std::ptrdiff_t>(i) * q.stride, dim);
      want = chain(qi, cj);
      same = same && std::memcmp(&want, &scores[i * nc + j], 4) == 0;
    }
  }
  ++checks;
  if (!same && ++failures <= 20) {
    std::printf("FAILED %s %s: scores differ from one chain per pair (%zu x %zu, dim=%zu)\n",
                isa, micro ? "micro_batch_f32" : "batch_f32", nq, nc, dim);
  }
}

// The int8 batch kernel is exact: every pair's dot product and every row's
// squared norm equal the integer sums, for every int8 value (fill() draws
// -128 and 127 too), any dimension and any place in the tile.
void check_int8_batch(const char* isa, const Kernels& wide, bool micro, std::size_t nq,
                      std::size_t nc, std::size_t dim, std::mt19937& rng) {
  Rows q = make_rows(Elem::i8, nq, dim, 0, false, rng);
  Rows x = make_rows(Elem::i8, nc, dim, 5, nc % 2 == 1, rng);
  std::size_t group = micro ? wide.micro_batch_i8_group : wide.batch_i8_group;
  std::size_t quads = (dim + 3) / 4, width = wide.batch_panel;
  std::vector<std::uint8_t> packed =
      detail::pack_int8_groups(Matrix{q.first, q.stride, nq}, dim, group, wide.batch_i8_bias);
  std::ptrdiff_t group_bytes = static_cast<std::ptrdiff_t>(group * 4 * quads);
  std::vector<std::int32_t> scores(nq * nc), norms(nc);
  Tile tile{packed.data(), group_bytes, nq, x.first, x.stride, nc, dim, scores.data(), norms.data()};
  // The panels take rows of whole quads: a zero-padded copy, as the driver makes.
  std::vector<std::int8_t> padded(nc * quads * 4, 0);
  for (std::size_t j = 0; j < nc; ++j) {
    std::memcpy(padded.data() + j * quads * 4,
                static_cast<const char*>(x.first) + static_cast<std::ptrdiff_t>(j) * x.stride, dim);
  }
  std::vector<float> panels((nc + width - 1) / width * width * quads);
  if (!micro) {
    wide.pack_panels(padded.data(), static_cast<std::ptrdiff_t>(quads * 4), nc, quads, panels.data());
    tile.corpus = panels.data();
    tile.corpus_stride = static_cast<std::ptrdiff_t>(width * quads * 4);
  }
  (micro ? wide.micro_batch_dot_i8 : wide.batch_dot_i8)(tile);
  auto at = [](const Rows& r, std::size_t i) {
    return static_cast<const std::int8_t*>(r.first) + static_cast<std::ptrdiff_t>(i) * r.stride;
  };
  bool same = true;
  for (std::size_t j = 0; j < nc; ++j) {
    std::int64_t norm = 0;
    for (std::size_t d = 0; d < dim; ++d) norm += at(x, j)[d] * at(x, j)[d];
    same = same && norms[j] == norm;
    for (std::size_t i = 0; i < nq; ++i) {
      std::int64_t dot = 0;
      for (std::size_t d = 0; d < dim; ++d) dot += at(q, i)[d] * at(x, j)[d];
      same = same && scores[i * nc + j] == dot;
    }
  }
  ++checks;
  if (!same && ++failures <= 20) {
    std::printf("FAILED %s %s (%zu x %zu, dim=%zu)\n", isa, micro ? "micro_batch_dot_i8" : "batch_dot_i8",
                nq, nc, dim);
  }
}

// The widening that feeds the batch kernel gives exactly the values every
// kernel scores a row as.
void check_widening(const char* isa, Elem e, WidenKernel widen,
                    std::size_t dim, std::mt19937& rng) {
  const std::size_t nc = 5;
  Rows x = make_rows(e, nc, dim, 3, true, rng);
  std::vector<float> out(nc * dim + 1, 7.0f);  // one float past the rows: must stay untouched
  widen(x.first, x.stride, nc, dim, out.data());
  bool same = out.back() == 7.0f;
  for (std::size_t j = 0; j < nc; ++j) {
    std::vector<float> want =
        widened(e, static_cast<const char*>(x.first) + static_cast<std::ptrdiff_t>(j) * x.stride, dim);
    same = same && (dim == 0 || std::memcmp(want.data(), out.data() + j * dim, 4 * dim) == 0);
  }
  ++checks;
  if (!same && ++failures <= 20) {
    std::printf("FAILED %s widening of element type %d (dim=%zu)\n", isa, static_cast<int>(e), dim);
  }
}

void check_stream_sum(const char* isa, const Kernels& wide, const Kernels& base, std::size_t n,
                      std::mt19937& rng) {
  std::vector<unsigned char> bytes(4 * n);
  fill(Elem::f32, bytes.data(), n, rng);
  std::vector<float> data(n);
  if (n > 0) std::memcpy(data.data(), bytes.data(), 4 * n);
  float magnitude = 0;
  for (float x : data) magnitude += std::fabs(x);
  ++checks;
  if (!close(wide.stream_sum(data.data(), n), base.stream_sum(data.data(), n), n, magnitude) &&
      ++failures <= 20) {
    std::printf("FAILED %s stream_sum n=%zu\n", isa, n);
  }
}

// The compute probe does what it counts: work in proportion to its steps,
// and x * 1 + 0 leaves each chain's start value, so the sum of lane 0 of
// every chain is 1 + 2 + ... + chains, with 2 * lanes flops per chain step.
void check_fma_chains(const char* isa, const Kernels& wide) {
  float once = 0, twice = 0;
  double flops = wide.fma_chains(1000, &once);
  double more = wide.fma_chains(2000, &twice);
  bool same = flops > 0 && more == 2 * flops && once == twice;
  // chains * lanes = flops / 2000; chains alone is found from the sum.
  double chains = (std::sqrt(8.0 * once + 1) - 1) / 2;
  same = same && chains == std::floor(chains) && std::fmod(flops / 2000, chains) == 0;
  ++checks;
  if (!same && ++failures <= 20) std::printf("FAILED %s fma_chains\n", isa);
}

// The int8 chains keep their start values 1..chains, so their sum gives the
// chain count, which must divide the multiply-adds of a round.
void check_int8_chains(const char* isa, const Kernels& wide) {
  std::int32_t once = 0, twice = 0;
  double macs = wide.int8_chains(1000, &once);
  double more = wide.int8_chains(2000, &twice);
  bool same = macs > 0 && more == 2 * macs && once == twice;
  double chains = (std::sqrt(8.0 * once + 1) - 1) / 2;
  same = same && chains >= 1 && chains == std::floor(chains) && std::fmod(macs / 1000, chains) == 0;
  ++checks;
  if (!same && ++failures <= 20) std::printf("FAILED %s int8_chains\n", isa);
}

const SumShape* shape_of(const char* isa) {
  for (const SumShape& shape : kShapes) {
    if (std::strcmp(shape.isa, isa) == 0) return &shape;
  }
  return nullptr;
}

void test_kernels(const char* label, const Kernels& wide) {
  const Kernels& base = scalar::kernels;
  std::mt19937 rng(12345);
  // Scalar sums in plain C++ order; every SIMD row must state its shape.
  ++checks;
  if (std::strcmp(label, "scalar") != 0 && shape_of(label) == nullptr && ++failures <= 20) {
    std::printf("FAILED %s: no summation shape in kShapes\n", label);
  }
  check_fma_chains(label, wide);
  check_int8_chains(label, wide);
  for (std::size_t n : {0, 1, 7, 8, 31, 32, 33, 63, 64, 65, 1000, 4099}) {
    check_stream_sum(label, wide, base, n, rng);
  }
  const std::size_t dims[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 384, 1000, 17000};
  if (wide.batch_f32 != nullptr) {
    for (std::size_t dim : {0, 1, 5, 16, 33, 384, 700}) {
      for (std::size_t nq : {1, 5, 16, 31, 33, 64}) {
        for (std::size_t nc : {1, 5, 12, 13, 30, 47, 49, 100}) {
          check_batch_shape(label, wide, false, nq, nc, dim, rng);
          check_batch_shape(label, wide, true, nq, nc, dim, rng);
        }
      }
    }
    for (std::size_t dim : {1, 3, 7, 8, 9, 16, 17, 33, 100, 384, 1030}) {
      if (wide.batch_dot_i8 != nullptr) {
        for (std::size_t nq : {1, 5, 32, 33, 64}) {
          for (std::size_t nc : {1, 5, 12, 13, 30, 49, 260}) {
            check_int8_batch(label, wide, false, nq, nc, dim, rng);
            check_int8_batch(label, wide, true, nq, nc, dim, rng);
          }
        }
      }
      check_widening(label, Elem::f16, wide.widen_f16, dim, rng);
      check_widening(label, Elem::bf16, wide.widen_bf16, dim, rng);
      check_widening(label, Elem::i8, wide.widen_i8, dim, rng);
      check_widening(label, Elem::bits, wide.widen_bits, dim, rng);
    }
  }
  for (const KernelCase& c : kCases) {
    for (std::size_t dim : dims) {
      if (c.corpus == Elem::bits && dim == 0) continue;
      check_tile_independence(label, c, wide, dim, rng);
      if (shape_of(label) != nullptr) check_summation_shape(*shape_of(label), c, wide, dim, rng);
      for (std::size_t nq : {1, 3, 4, 5, 9}) {
        for (std::size_t nc : {1, 2, 3, 4, 7, 13}) {
          bool reversed = (nq + nc) % 2 == 1;
          check_case(label, c, wide, base, nq, nc, dim, (dim % 3) * 4, reversed, nc % 2 == 1, rng);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const IsaInfo*> chosen;
  for (int a = 1; a < argc; ++a) {
    const IsaInfo* isa = find_isa(argv[a]);
    if (isa == nullptr) {
      std::printf("unknown ISA %s\n", argv[a]);
      return 2;
    }
    chosen.push_back(isa);
  }
  if (chosen.empty()) {
    for (const IsaInfo& isa : isas()) {
      if (cpu_supports(isa)) chosen.push_back(&isa);
    }
  }
  for (const IsaInfo* isa : chosen) {
    if (!cpu_supports(*isa)) {
      std::printf("FAILED %s: not supported by this CPU\n", isa->name);
      ++failures;
      continue;
    }
    int before = failures;
    int checks_before = checks;
    test_kernels(isa->name, kernels_of(*isa));
    std::printf("%s: %d kernel checks, %d failed\n", isa->name, checks - checks_before,
                failures - before);
  }
  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
