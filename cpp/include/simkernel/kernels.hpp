// The kernel set every ISA file implements, and the tile they work on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace simkernel {

// A tile of queries x corpus rows. Rows are addressed by byte strides so that
// numpy views (prefix columns, every other row, negative strides) are read in
// place. `dim` counts elements; for bit-packed rows it counts bits.
struct Tile {
  const void* queries;
  std::ptrdiff_t query_stride;
  std::size_t query_count;
  const void* corpus;
  std::ptrdiff_t corpus_stride;
  std::size_t corpus_count;
  std::size_t dim;
  // query_count x corpus_count scores, row-major: float for float queries,
  // int32 for int8 x int8 and bits x bits.
  void* scores;
  // Optional (nullptr to skip): each corpus row's squared norm, of the same
  // type as `scores`, computed in the same pass so cosine needs no second one.
  void* corpus_norms;
  // Optional: bytes the caller reads next (the next block of rows), which
  // the batch kernel asks the caches for while it works, so that they
  // arrive while it computes instead of when it packs them.
  const void* prefetch = nullptr;
  std::size_t prefetch_bytes = 0;
};

using TileKernel = void (*)(const Tile&);

// A bfloat16 element: the top 16 bits of a float32 (sign, 8-bit exponent, 7
// mantissa bits), so widening it is a 16-bit shift, exact for every value.
// A type of its own, not a bare uint16_t, so that overloads tell it from
// binary16.
struct BFloat16 {
  std::uint16_t bits;
};

// In an anonymous namespace, so that each file including this compiles its
// own copy with its own flags: the linker never hands an ISA file's copy to
// a baseline caller (docs/architecture.md).
namespace {
inline float widen_bfloat16(BFloat16 x) {
  std::uint32_t bits = std::uint32_t{x.bits} << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
}  // namespace

// `steps` rounds of independent int8 multiply-add chains (the benchmark's
// int8 peak probe): returns the multiply-adds done; *result keeps them from
// being elided.
using Int8Chains = double (*)(std::size_t steps, std::int32_t* result);

// `count` rows of one element type (from `rows`, `stride` bytes apart; `dim`
// elements, or bits) as float32, `dim` floats each, one after another in
// `out`: how float16, bfloat16, int8 and bit rows reach the batch kernel.
using WidenKernel = void (*)(const void* rows, std::ptrdiff_t stride, std::size_t count,
                             std::size_t dim, float* out);

// int8 x int8 kernels take rows of at most this many elements: longer sums of
// squares could overflow int32. Callers check it before any kernel runs.
constexpr std::size_t kMaxInt8Dim = 32768;
// Hamming counts are int32: bit rows may be at most this many bits long.
constexpr std::size_t kMaxHammingBits = 2147483647;

// Raw inner products (with the corpus rows' squared norms on request), exact
// int8 squared distances and Hamming counts. The driver builds cosine and,
// for float rows, sqeuclidean and l2 (|q|^2 + |c|^2 - 2 q.c) on these, so
// each ISA only supplies this small set. Suffixes name the corpus element
// type; queries are float32 unless stated.
struct Kernels {
  TileKernel dot_f32;
  TileKernel dot_f16;
  TileKernel dot_bf16;
  TileKernel dot_i8f;          // float32 queries x int8 corpus
  TileKernel dot_bitsf;        // float32 queries x bits, each bit +1 / -1
  TileKernel dot_i8;           // int8 x int8, exact int32
  TileKernel sqeuclidean_i8;   // int8 x int8, exact int32
  TileKernel hamming;          // bits x bits, int32
  // Many float32 queries x float32 rows, as a matrix product: the queries
  // packed in groups of batch_group, the rows in panels of batch_panel
  // (pack_panels; docs/architecture.md, "The batch kernel"), each pair
  // summed by one FMA chain over the dimensions in order, and corpus norms,
  // on request, by the same chain. Null where the ISA has none (scalar):
  // every call then takes dot_f32.
  TileKernel batch_f32;
  // The same for micro-batches, the same scores bit for bit: queries packed
  // in groups of micro_batch_group, rows read in place (no packing).
  TileKernel micro_batch_f32;
  // Sum of n floats with the widest loads: the benchmark's read-bandwidth
  // probe (docs/performance.md), not part of any search.
  float (*stream_sum)(const float* data, std::size_t n);
  // `steps` rounds of independent float32 FMA chains at the ISA's width, as
  // many chains as the batch kernel keeps accumulators (plain multiply-adds
  // in the scalar table): the benchmark's compute-peak probe. Returns the
  // floating-point operations done; *result keeps them from being elided.
  double (*fma_chains)(std::size_t steps, float* result);
  // Queries per packed group and rows per packed panel of batch_f32: its
  // register tile's height and width.
  std::size_t batch_group;
  std::size_t micro_batch_group;
  std::size_t batch_panel;
  // float32 rows (`stride` bytes apart) packed as batch_f32's panels,
  // dimension-major, the last panel's missing rows zero: `out` holds
  // ceil(count / batch_panel) * batch_panel * dim floats.
  WidenKernel pack_panels;
  // Rows widened to float32 rows for pack_panels (null with batch_f32):
  // binary16, bfloat16, int8, and bits as +1.0 / -1.0.
  WidenKernel widen_f16;
  WidenKernel widen_bf16;
  WidenKernel widen_i8;
  WidenKernel widen_bits;
  // Many int8 queries x int8 rows, exact int32 dot products (with int32
  // corpus norms on request), the queries packed in groups of
  // batch_i8_group: four consecutive dimensions of a query per 32-bit lane,
  // each byte XORed with batch_i8_bias (0x80 makes it unsigned, for
  // vpdpbusd; 0 keeps it signed), padded with zeros so biased
  // (docs/architecture.md). Null where the ISA has none: calls then take dot_i8.
  // batch_dot_i8 takes its rows packed by pack_panels as 32-bit lanes (a
  // quad of bytes each, the last quad of a row zero-padded) and query
  // groups of batch_i8_group; micro_batch_dot_i8, the same sums for fewer
  // queries, reads rows in place and takes groups of micro_batch_i8_group.
  TileKernel batch_dot_i8;
  TileKernel micro_batch_dot_i8;
  std::size_t batch_i8_group;
  std::size_t micro_batch_i8_group;
  std::uint8_t batch_i8_bias;
  // The multiply-add step of the ISA's int8 x int8 kernels (vpdpbusd with
  // VNNI, vpmaddwd + vpaddd on AVX2, sdot with DotProd), as many chains as
  // its int8 kernel keeps accumulators.
  Int8Chains int8_chains;
};

// Each ISA file defines its table as constant data that the compiler lays out
// (no code runs to build it), so nothing compiled with an ISA's flags runs
// before dispatch has seen that the CPU has that ISA. A table may leave a
// kernel null: the ISA's registry row names the ISA that fills the gap.
namespace scalar {
extern const Kernels kernels;
}
namespace avx2 {
extern const Kernels kernels;
}
namespace avx512 {
extern const Kernels kernels;
}
namespace neon {
extern const Kernels kernels;
}
namespace neon_dotprod {  // the NEON kernels with sdot / udot (Armv8.2 DotProd)
extern const Kernels kernels;
}

}  // namespace simkernel
