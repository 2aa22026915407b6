// Scoring: the kernel for a (pair, metric), the norms it needs, and the
// finishing that turns raw kernel tiles into the metric's values. Baseline
// code shared by every walk of the scan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "simkernel/kernels.hpp"
#include "simkernel/search.hpp"

namespace simkernel::detail {

// A tile is at most 64 queries x 256 corpus rows: its scores (64 KiB) stay
// in L2 beside a block of 384-dim float32 rows (384 KiB), which every query
// block reuses before the next block is read from memory. 64 is a whole
// number of the batch kernels' query groups on every ISA (4 to 32).
constexpr std::size_t kQueryBlock = 64;
constexpr std::size_t kCorpusBlock = 256;

// Calls with at least batch_threshold(group) queries take a batch kernel
// whose register tile holds `group` queries in its lanes (the float
// micro-batch kernel with micro_batch_group, batch_dot_i8 with
// batch_i8_group) where the ISA has one; fewer take the row kernels
// (dot_f32 and its kin: each row read once per 4 queries). Half a group:
// from there at least half of the lanes do useful work. Measured on an
// Intel Xeon (Sapphire Rapids class, 2 threads, 1M x 384 rows), the batch
// kernel against the row kernels: AVX-512 (group 32) float 16 queries 211
// against 272 ms, 31 queries 227 against 538, int8 16 queries 92 against
// 126; AVX2 (group 16) float 8 queries 188 against 241; below half a group
// it was no faster. The two sum floats in different orders, so a query's
// float scores may differ in the last bits between a call below the
// threshold and one at or above it (docs/semantics.md).
constexpr std::size_t batch_threshold(std::size_t group) { return group / 2 > 0 ? group / 2 : 1; }
// Calls of at least this many queries take the batch kernels that pack rows
// (batch_f32, batch_dot_i8) in place of the micro-batch kernels: they score
// the same bits, and the float crossover measured on an Intel Xeon (Ice
// Lake, 2 threads, 384 dimensions) was 256 queries (tile_bodies.hpp).
constexpr std::size_t kMinPackedBatch = 256;
// float16, int8 and bit rows join the batch kernel widened to float32, a
// block at a time, up to this many dimensions (a worker's buffer is then at
// most kCorpusBlock x 4096 floats, 4 MiB); longer rows keep the row kernels.
constexpr std::size_t kMaxWidenedDim = 4096;

const void* row_at(const Matrix& m, std::size_t i);

// A call's queries packed for a batch kernel: groups of `group` queries,
// float32 ones for batch_f32 in `data` (each group dimension-major, group *
// dim floats, the last group zero-padded), int8 ones for batch_dot_i8 in
// `codes` (the layout of kernels.hpp). group is 0 when the call takes
// neither.
struct BatchQueries {
  std::size_t group = 0;
  bool int8 = false;  // which of the two
  bool micro = false;  // for the micro-batch kernel (rows read in place)
  std::vector<float> data;
  std::vector<std::uint8_t> codes;
};

// The batch packing of p's queries when p takes the batch kernel.
BatchQueries pack_batch_queries(const Problem& p, const Kernels& kernels);

// float32 rows packed in groups of `group` (the layout above).
std::vector<float> pack_query_groups(const Matrix& queries, std::size_t dim, std::size_t group);

// int8 rows packed in groups of `group` for batch_dot_i8, each byte XORed
// with `bias` (Kernels::batch_i8_bias).
std::vector<std::uint8_t> pack_int8_groups(const Matrix& queries, std::size_t dim, std::size_t group,
                                           std::uint8_t bias);

// Turns kernel tiles into the metric's values, flags non-finite ones. Scores
// are rounded to the output type here, so ranking ties are exactly the ties a
// caller sees.
class TileScorer {
 public:
  // Tiles are at most max_queries x max_rows (at most kQueryBlock x
  // kCorpusBlock): the buffers are sized to them, so a small call does not
  // allocate and clear a full tile's. With `squares`, float l2 scores are
  // left squared (squared_output()).
  // `query_shift` (affine codes only) holds q . offsets per query, and
  // query_norm2 then the unscaled queries' squared norms.
  TileScorer(const Problem& p, const Kernels& kernels, const BatchQueries& batch,
             const std::vector<double>& query_norm2, const std::vector<double>& query_shift,
             std::size_t max_queries, std::size_t max_rows, bool squares);

  bool integer_output() const { return integer_out_; }
  bool squared_output() const { return squared_out_; }
  const std::int32_t* int_scores() const { return raw_i_.data(); }
  const float* float_scores() const { return integer_in_ ? out_f_.data() : raw_f_.data(); }

  // Scores queries [q0, q0 + nq) against `nc` corpus rows starting at
  // `corpus`, corpus row number `first_row` (nq x nc, row-major); false if
  // any score is not finite. nq <= max_queries and nc <= max_rows; with
  // batch queries, q0 is a multiple of kQueryBlock. `prefetch_bytes` from
  // `prefetch` are what the caller scores next (the batch kernel asks the
  // caches for them).
  bool score(std::size_t q0, std::size_t nq, std::size_t first_row, const void* corpus,
             std::ptrdiff_t corpus_stride, std::size_t nc, const void* prefetch = nullptr,
             std::size_t prefetch_bytes = 0);

 private:
  void finish_float(std::size_t q0, std::size_t nq, std::size_t nc);
  void finish_tiny_cosines(std::size_t q0, std::size_t nq, std::size_t nc);
  void finish_int8(std::size_t q0, std::size_t nq, std::size_t nc);
  void finish_affine(std::size_t q0, std::size_t nq, std::size_t first_row, std::size_t nc);

  const Problem& p_;
  const BatchQueries& batch_;
  TileKernel kernel_;
  // The rows of the current block as the batch kernel reads them:
  // widened to float32 (widen_, into widened_), int8 rows padded to whole
  // quads (into padded_), packed into panels (pack_, into panels_), or as
  // they are where none applies.
  void prepare_rows(const void* corpus, std::ptrdiff_t stride, std::size_t nc);
  WidenKernel pack_;
  std::size_t panel_width_;
  std::vector<float> panels_;
  WidenKernel widen_;
  std::vector<float> widened_;
  std::vector<std::int8_t> padded_;
  const void* prepared_ = nullptr;
  std::ptrdiff_t prepared_stride_ = 0;
  const void* prepared_of_ = nullptr;
  std::size_t prepared_count_ = 0;
  bool integer_in_;
  bool integer_out_;
  bool affine_;
  bool corpus_norms_;
  bool squared_out_;
  const std::vector<double>& query_norm2_;
  const std::vector<double>& query_shift_;
  std::vector<float> raw_f_;
  std::vector<std::int32_t> raw_i_;
  std::vector<float> out_f_;
  std::vector<float> norms_f_;
  std::vector<std::int32_t> norms_i_;
  std::vector<float> inverse_f_;
  std::vector<double> inverse_d_;
  // Float corpus rows of the current block whose squared norm is too small
  // for float32 (it underflows, and 1/|q| * 1/|c| overflows): their cosines
  // are finished in double, from norms summed in double.
  std::vector<std::size_t> tiny_;
  std::vector<double> tiny_inverse_;
  std::vector<float> tiny_scores_;
  const void* norms_of_ = nullptr;
  std::size_t norms_count_ = 0;
};

// Squared query norms where scoring uses norms (empty otherwise), from the
// same kernel as the scores (so in the same summation shape); false if any
// is not finite.
bool query_norms(const Problem& p, const Kernels& kernels, const BatchQueries& batch,
                 std::vector<double>* norms);

// For affine codes (p.affine): the queries scaled by the steps (row-major,
// dim floats a row), and per query q . offsets and |q|^2, in double; false
// if any is not finite.
bool affine_queries(const Problem& p, std::vector<float>* scaled, std::vector<double>* shift,
                    std::vector<double>* norm2);

}  // namespace simkernel::detail
