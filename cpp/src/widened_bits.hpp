// float32 queries x bit rows for several queries at once, shared by the ISA
// files: bit rows are widened to +1.0 / -1.0 floats a chunk at a time (on
// the stack, in L1) and scored by the ISA's float32 tile kernel, so a widened
// row serves every query of the tile. Rows too long for the buffer, and
// fewer than 4 queries, use the ISA's one-query kernel, which flips the
// query's signs in the same summation shape (same bits).
//
// Every template argument is a function in an ISA file's anonymous
// namespace, so each instantiation is private to that file and compiled with
// its flags only: the linker can never merge one ISA's copy into another's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "simkernel/kernels.hpp"

namespace simkernel::detail {

using OneQueryBits = void (*)(const Tile&, std::size_t, float*);
using WidenBits = void (*)(const std::uint8_t*, std::size_t, float*);

template <OneQueryBits one_query, WidenBits widen, TileKernel float_tile>
void widened_bits_tile(const Tile& t) {
  constexpr std::size_t kWidenedFloats = 8192;
  constexpr std::size_t kQueries = 16;
  auto* scores = static_cast<float*>(t.scores);
  if (t.query_count < 4 || t.dim > kWidenedFloats) {
    for (std::size_t i = 0; i < t.query_count; ++i) one_query(t, i, scores);
    return;
  }
  alignas(64) float widened[kWidenedFloats];
  float part[kQueries * kWidenedFloats / 16];  // kQueries x chunk scores; chunk <= floats / 16
  std::size_t chunk = kWidenedFloats / std::max<std::size_t>(t.dim, 16);
  auto stride = static_cast<std::ptrdiff_t>(t.dim * sizeof(float));
  for (std::size_t j0 = 0; j0 < t.corpus_count; j0 += chunk) {
    std::size_t n = std::min(chunk, t.corpus_count - j0);
    for (std::size_t r = 0; r < n; ++r) {
      const auto* bits = static_cast<const std::uint8_t*>(t.corpus) +
                         static_cast<std::ptrdiff_t>(j0 + r) * t.corpus_stride;
      widen(bits, t.dim, widened + r * t.dim);
    }
    for (std::size_t i0 = 0; i0 < t.query_count; i0 += kQueries) {
      std::size_t m = std::min(kQueries, t.query_count - i0);
      const void* queries = static_cast<const char*>(t.queries) +
                            static_cast<std::ptrdiff_t>(i0) * t.query_stride;
      float_tile(Tile{queries, t.query_stride, m, widened, stride, n, t.dim, part, nullptr});
      for (std::size_t i = 0; i < m; ++i) {
        std::memcpy(scores + (i0 + i) * t.corpus_count + j0, part + i * n, n * sizeof(float));
      }
    }
  }
}

}  // namespace simkernel::detail
