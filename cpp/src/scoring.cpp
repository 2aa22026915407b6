#include "scoring.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace simkernel::detail {
namespace {

// The kernel that widens a pair's rows for the batch kernel (null for
// float32 rows, which it reads in place, and for integer pairs).
WidenKernel widen_for(const Kernels& k, Pair pair) {
  switch (pair) {
    case Pair::f32_f16: return k.widen_f16;
    case Pair::f32_bf16: return k.widen_bf16;
    case Pair::f32_i8: return k.widen_i8;
    case Pair::f32_bits: return k.widen_bits;
    default: return nullptr;
  }
}

bool integer_pair(Pair pair) {
  return pair == Pair::i8_i8 || pair == Pair::bits_bits;
}

bool distance(Metric metric) {
  return metric == Metric::sqeuclidean || metric == Metric::l2;
}

TileKernel kernel_for(const Kernels& k, Pair pair, Metric metric) {
  switch (pair) {
    case Pair::f32_f32: return k.dot_f32;
    case Pair::f32_f16: return k.dot_f16;
    case Pair::f32_bf16: return k.dot_bf16;
    case Pair::f32_i8: return k.dot_i8f;
    case Pair::f32_bits: return k.dot_bitsf;
    case Pair::i8_i8: return distance(metric) ? k.sqeuclidean_i8 : k.dot_i8;
    case Pair::bits_bits: return k.hamming;
  }
  return nullptr;
}

// Whether scoring needs every row's squared norm: cosine, and float
// distances, which are |q|^2 + |c|^2 - 2 q.c so that they run at the speed of
// a dot product (int8 distances are summed exactly instead). Bits have no
// norms to compute (each row's is dim).
bool uses_norms(Pair pair, Metric metric) {
  if (pair == Pair::f32_bits || pair == Pair::bits_bits) return false;
  return metric == Metric::cosine || (pair != Pair::i8_i8 && distance(metric));
}

// NaN and infinity have an all-ones exponent; an integer test per value that
// the compiler vectorises, so the check costs little next to the kernel.
bool all_finite(const float* x, std::size_t n) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// Outside [2^-100, 2^100] a float32 squared norm has lost precision to
// underflow (or is 0 for a non-zero row) or overflow, and 1/|q| * 1/|c| may
// leave float range: such rows (norms under ~9e-16 or over ~1e15) are
// finished in double.
constexpr float kTinyNorm2 = 7.8886091e-31f;
constexpr float kHugeNorm2 = 1.2676506e30f;

// A float32 or bfloat16 row's squared norm, summed in double.
double sqnorm_double(const void* row, Pair pair, std::size_t dim) {
  double norm2 = 0;
  for (std::size_t d = 0; d < dim; ++d) {
    float x = pair == Pair::f32_bf16 ? widen_bfloat16(static_cast<const BFloat16*>(row)[d])
                                     : static_cast<const float*>(row)[d];
    norm2 += static_cast<double>(x) * x;
  }
  return norm2;
}

// 1 / |x| from |x|^2, and 0 for a zero vector (whose cosine is 0).
float inverse_norm(float norm2) { return norm2 > 0 ? 1.0f / std::sqrt(norm2) : 0.0f; }
double inverse_norm(double norm2) { return norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0; }

}  // namespace

const void* row_at(const Matrix& m, std::size_t i) {
  return static_cast<const char*>(m.data) + static_cast<std::ptrdiff_t>(i) * m.row_stride;
}

BatchQueries pack_batch_queries(const Problem& p, const Kernels& kernels) {
  BatchQueries batch;
  if (p.pair == Pair::i8_i8) {
    // Exact dot products feed dot and cosine; int8 distances keep their
    // own exact kernel.
    bool dots = p.metric == Metric::dot || p.metric == Metric::cosine;
    if (dots && kernels.batch_dot_i8 != nullptr &&
        p.queries.rows >= batch_threshold(kernels.micro_batch_i8_group)) {
      batch.micro = p.queries.rows < kMinPackedBatch;
      batch.group = batch.micro ? kernels.micro_batch_i8_group : kernels.batch_i8_group;
      batch.int8 = true;
      batch.codes = pack_int8_groups(p.queries, p.dim, batch.group, kernels.batch_i8_bias);
    }
    return batch;
  }
  bool rows_fit = p.pair == Pair::f32_f32 ||
                  (widen_for(kernels, p.pair) != nullptr && p.dim <= kMaxWidenedDim);
  if (!rows_fit || kernels.batch_f32 == nullptr ||
      p.queries.rows < batch_threshold(kernels.micro_batch_group)) {
    return batch;
  }
  batch.micro = p.queries.rows < kMinPackedBatch;
  batch.group = batch.micro ? kernels.micro_batch_group : kernels.batch_group;
  batch.data = pack_query_groups(p.queries, p.dim, batch.group);
  return batch;
}

std::vector<std::uint8_t> pack_int8_groups(const Matrix& queries, std::size_t dim, std::size_t group,
                                           std::uint8_t bias) {
  std::size_t groups = (queries.rows + group - 1) / group, quads = (dim + 3) / 4;
  // `bias` is a biased 0: padding dimensions and queries add nothing.
  std::vector<std::uint8_t> packed(groups * group * 4 * quads, bias);
  for (std::size_t i = 0; i < queries.rows; ++i) {
    const auto* q = static_cast<const std::uint8_t*>(row_at(queries, i));
    std::uint8_t* out = packed.data() + (i / group) * group * 4 * quads + (i % group) * 4;
    for (std::size_t d = 0; d < dim; ++d) out[(d / 4) * group * 4 + d % 4] = q[d] ^ bias;
  }
  return packed;
}

std::vector<float> pack_query_groups(const Matrix& queries, std::size_t dim, std::size_t group) {
  std::size_t groups = (queries.rows + group - 1) / group;
  std::vector<float> packed(groups * group * dim, 0.0f);
  for (std::size_t i = 0; i < queries.rows; ++i) {
    const auto* q = static_cast<const float*>(row_at(queries, i));
    float* out = packed.data() + (i / group) * group * dim + i % group;
    for (std::size_t d = 0; d < dim; ++d) out[d * group] = q[d];
  }
  return packed;
}

TileScorer::TileScorer(const Problem& p, const Kernels& kernels, const BatchQueries& batch,
                       const std::vector<double>& query_norm2,
                       const std::vector<double>& query_shift, std::size_t max_queries,
                       std::size_t max_rows, bool squares)
    : p_(p),
      batch_(batch),
      kernel_(batch.int8 && batch.micro ? kernels.micro_batch_dot_i8
              : batch.int8        ? kernels.batch_dot_i8
              : batch.micro       ? kernels.micro_batch_f32
              : batch.group != 0  ? kernels.batch_f32
                                  : kernel_for(kernels, p.pair, p.metric)),
      pack_(batch.group != 0 && !batch.micro ? kernels.pack_panels : nullptr),
      panel_width_(kernels.batch_panel),
      panels_(pack_ != nullptr ? (max_rows + panel_width_ - 1) / panel_width_ * panel_width_ * p.dim : 0),
      widen_(batch.group != 0 && !batch.int8 ? widen_for(kernels, p.pair) : nullptr),
      widened_(widen_ != nullptr ? max_rows * p.dim : 0),
      padded_(pack_ != nullptr && batch.int8 && p.dim % 4 != 0 ? max_rows * (p.dim + 3) / 4 * 4 : 0),
      integer_in_(integer_pair(p.pair)),
      integer_out_(integer_scores(p.pair, p.metric)),
      affine_(p.affine.steps != nullptr),
      // Affine codes bring the decoded rows' norms; the kernel's dot is all
      // they need of the rows.
      corpus_norms_(!affine_ && uses_norms(p.pair, p.metric)),
      squared_out_(squares && p.metric == Metric::l2 && !integer_in_),
      query_norm2_(query_norm2),
      query_shift_(query_shift),
      raw_f_(integer_in_ ? 0 : max_queries * max_rows),
      raw_i_(integer_in_ ? max_queries * max_rows : 0),
      out_f_(integer_in_ && !integer_out_ ? max_queries * max_rows : 0),
      norms_f_(integer_in_ ? 0 : max_rows),
      norms_i_(integer_in_ ? max_rows : 0),
      inverse_f_(integer_in_ ? 0 : max_rows),
      inverse_d_(integer_in_ || affine_ ? max_rows : 0) {}

bool TileScorer::score(std::size_t q0, std::size_t nq, std::size_t first_row, const void* corpus,
                       std::ptrdiff_t corpus_stride, std::size_t nc, const void* prefetch,
                       std::size_t prefetch_bytes) {
  // Corpus norms depend only on the rows: a block scored against several
  // query blocks in a row has them computed once.
  bool new_norms = corpus_norms_ && (corpus != norms_of_ || nc != norms_count_);
  void* raw = integer_in_ ? static_cast<void*>(raw_i_.data()) : raw_f_.data();
  void* norms = integer_in_ ? static_cast<void*>(norms_i_.data())
                            : static_cast<void*>(norms_f_.data());
  Tile tile{row_at(p_.queries, q0), p_.queries.row_stride, nq, corpus,
            corpus_stride, nc, p_.dim, raw, new_norms ? norms : nullptr};
  if (batch_.int8) {
    std::size_t group_bytes = batch_.group * 4 * ((p_.dim + 3) / 4);
    tile.queries = batch_.codes.data() + q0 / batch_.group * group_bytes;  // q0 starts a group
    tile.query_stride = static_cast<std::ptrdiff_t>(group_bytes);
  } else if (batch_.group != 0) {
    tile.queries = batch_.data.data() + q0 * p_.dim;  // q0 starts a group
    tile.query_stride = static_cast<std::ptrdiff_t>(batch_.group * p_.dim * sizeof(float));
  }
  if (pack_ != nullptr || widen_ != nullptr) {
    // Prepared once per block, like its norms, for every query block after.
    if (corpus != prepared_of_ || nc != prepared_count_) {
      prepare_rows(corpus, corpus_stride, nc);
      prepared_of_ = corpus;
      prepared_count_ = nc;
    }
    tile.corpus = prepared_;
    tile.corpus_stride = prepared_stride_;
    tile.prefetch = prefetch;  // read only by the kernels that pack
    tile.prefetch_bytes = prefetch_bytes;
  }
  kernel_(tile);
  if (new_norms) {
    // float32 and bfloat16 cosine (bfloat16 has float32's exponent range)
    // finishes rows whose norm is out of float range itself (below);
    // anything else with a non-finite norm has a NaN or infinity.
    bool own_range = p_.metric == Metric::cosine &&
                     (p_.pair == Pair::f32_f32 || p_.pair == Pair::f32_bf16);
    if (!integer_in_ && !own_range && !all_finite(norms_f_.data(), nc)) return false;
    norms_of_ = corpus;
    norms_count_ = nc;
    tiny_.clear();
    for (std::size_t j = 0; j < nc; ++j) {
      if (integer_in_) {
        inverse_d_[j] = inverse_norm(static_cast<double>(norms_i_[j]));
      } else {
        inverse_f_[j] = inverse_norm(norms_f_[j]);
        if (own_range && !(norms_f_[j] >= kTinyNorm2 && norms_f_[j] <= kHugeNorm2)) {
          tiny_.push_back(j);
        }
      }
    }
    tiny_inverse_.clear();
    for (std::size_t j : tiny_) {
      double norm2 = sqnorm_double(row_at(Matrix{corpus, corpus_stride, nc}, j), p_.pair, p_.dim);
      if (!std::isfinite(norm2)) return false;  // a NaN or infinity in the row
      tiny_inverse_.push_back(inverse_norm(norm2));
      inverse_f_[j] = 0;  // the float pass leaves these columns to finish_tiny_cosines
    }
  }
  if (integer_in_) {
    if (!integer_out_) finish_int8(q0, nq, nc);
    return true;
  }
  if (!all_finite(raw_f_.data(), nq * nc)) return false;
  if (affine_) {
    finish_affine(q0, nq, first_row, nc);
  } else if (tiny_.empty()) {
    finish_float(q0, nq, nc);
  } else {
    finish_tiny_cosines(q0, nq, nc);
  }
  return true;
}

void TileScorer::prepare_rows(const void* corpus, std::ptrdiff_t stride, std::size_t nc) {
  const void* rows = corpus;
  std::size_t values = p_.dim;  // 32-bit values a row: floats, or quads of int8
  if (widen_ != nullptr) {
    widen_(corpus, stride, nc, p_.dim, widened_.data());
    rows = widened_.data();
    stride = static_cast<std::ptrdiff_t>(p_.dim * sizeof(float));
  }
  if (batch_.int8) {
    values = (p_.dim + 3) / 4;
    if (!padded_.empty()) {
      // The last quad of each row zero-padded, so that it adds nothing.
      for (std::size_t j = 0; j < nc; ++j) {
        std::memcpy(padded_.data() + j * values * 4, row_at(Matrix{corpus, stride, nc}, j), p_.dim);
      }
      rows = padded_.data();
      stride = static_cast<std::ptrdiff_t>(values * 4);
    }
  }
  if (pack_ != nullptr) {
    pack_(rows, stride, nc, values, panels_.data());
    rows = panels_.data();
    stride = static_cast<std::ptrdiff_t>(panel_width_ * values * 4);
  }
  prepared_ = rows;
  prepared_stride_ = stride;
}

void TileScorer::finish_tiny_cosines(std::size_t q0, std::size_t nq, std::size_t nc) {
  float* s = raw_f_.data();
  tiny_scores_.resize(nq * tiny_.size());
  for (std::size_t i = 0; i < nq; ++i) {
    double inverse_q = inverse_norm(query_norm2_[q0 + i]);
    for (std::size_t t = 0; t < tiny_.size(); ++t) {
      double raw = s[i * nc + tiny_[t]];
      tiny_scores_[i * tiny_.size() + t] = static_cast<float>(raw * (inverse_q * tiny_inverse_[t]));
    }
  }
  finish_float(q0, nq, nc);
  for (std::size_t i = 0; i < nq; ++i) {
    for (std::size_t t = 0; t < tiny_.size(); ++t) {
      s[i * nc + tiny_[t]] = tiny_scores_[i * tiny_.size() + t];
    }
  }
}

void TileScorer::finish_float(std::size_t q0, std::size_t nq, std::size_t nc) {
  float* s = raw_f_.data();
  if (distance(p_.metric)) {
    // Rounding can take |q|^2 + |c|^2 - 2 q.c a little below zero.
    for (std::size_t i = 0; i < nq; ++i) {
      float query_norm2 = static_cast<float>(query_norm2_[q0 + i]);
      for (std::size_t j = 0; j < nc; ++j) {
        float& v = s[i * nc + j];
        v = std::max(query_norm2 + norms_f_[j] - 2.0f * v, 0.0f);
      }
    }
    if (p_.metric == Metric::l2 && !squared_out_) {
      for (std::size_t a = 0; a < nq * nc; ++a) s[a] = std::sqrt(s[a]);
    }
  } else if (p_.metric == Metric::cosine) {
    if (p_.pair == Pair::f32_bits) {
      std::fill_n(inverse_f_.data(), nc, inverse_norm(static_cast<float>(p_.dim)));
    }
    for (std::size_t i = 0; i < nq; ++i) {
      float inverse_q = inverse_norm(static_cast<float>(query_norm2_[q0 + i]));
      for (std::size_t j = 0; j < nc; ++j) {
        s[i * nc + j] *= inverse_q * inverse_f_[j];
      }
    }
  }
}

// int8 cosine and l2 in double from exact integers, then rounded once:
// cosine as raw * (1/|q| * 1/|c|), which the numpy backend computes in the
// same order, so these agree bit for bit too; both loops vectorise.
void TileScorer::finish_int8(std::size_t q0, std::size_t nq, std::size_t nc) {
  if (p_.metric == Metric::l2) {
    for (std::size_t a = 0; a < nq * nc; ++a) {
      out_f_[a] = static_cast<float>(std::sqrt(static_cast<double>(raw_i_[a])));
    }
    return;
  }
  for (std::size_t i = 0; i < nq; ++i) {
    double inverse_q = inverse_norm(query_norm2_[q0 + i]);
    for (std::size_t j = 0; j < nc; ++j) {
      out_f_[i * nc + j] = static_cast<float>(static_cast<double>(raw_i_[i * nc + j]) *
                                              (inverse_q * inverse_d_[j]));
    }
  }
}

// Affine codes in double, rounded once: dot = raw + q . offsets, then the
// metric from |q|^2 and the decoded row's |x|^2 (0 for a zero vector's
// cosine, as elsewhere).
void TileScorer::finish_affine(std::size_t q0, std::size_t nq, std::size_t first_row,
                               std::size_t nc) {
  // One loop per metric, so that each vectorises.
  const double* row_norm2 = p_.affine.row_sqnorms + first_row;
  if (p_.metric == Metric::cosine) {
    for (std::size_t j = 0; j < nc; ++j) inverse_d_[j] = inverse_norm(row_norm2[j]);
  }
  bool root = p_.metric == Metric::l2 && !squared_out_;
  for (std::size_t i = 0; i < nq; ++i) {
    float* s = raw_f_.data() + i * nc;
    double shift = query_shift_[q0 + i], query_norm2 = query_norm2_[q0 + i];
    if (p_.metric == Metric::dot) {
      for (std::size_t j = 0; j < nc; ++j) s[j] = static_cast<float>(s[j] + shift);
    } else if (p_.metric == Metric::cosine) {
      double inverse_q = inverse_norm(query_norm2);
      for (std::size_t j = 0; j < nc; ++j) {
        s[j] = static_cast<float>((s[j] + shift) * (inverse_q * inverse_d_[j]));
      }
    } else {
      // l2 is the float root of the float square, as the top-k sink roots
      // the squares it keeps, so that both give the same bits.
      for (std::size_t j = 0; j < nc; ++j) {
        auto squared = static_cast<float>(
            std::max(query_norm2 + row_norm2[j] - 2.0 * (s[j] + shift), 0.0));
        s[j] = root ? std::sqrt(squared) : squared;
      }
    }
  }
}

bool affine_queries(const Problem& p, std::vector<float>* scaled, std::vector<double>* shift,
                    std::vector<double>* norm2) {
  scaled->resize(p.queries.rows * p.dim);
  shift->resize(p.queries.rows);
  norm2->resize(p.queries.rows);
  for (std::size_t i = 0; i < p.queries.rows; ++i) {
    const auto* q = static_cast<const float*>(row_at(p.queries, i));
    double b = 0, n = 0;
    for (std::size_t d = 0; d < p.dim; ++d) {
      (*scaled)[i * p.dim + d] = q[d] * p.affine.steps[d];
      b += static_cast<double>(q[d]) * p.affine.offsets[d];
      n += static_cast<double>(q[d]) * q[d];
    }
    if (!std::isfinite(b) || !std::isfinite(n)) return false;
    (*shift)[i] = b;
    (*norm2)[i] = n;
  }
  return true;
}

bool query_norms(const Problem& p, const Kernels& kernels, const BatchQueries& batch,
                 std::vector<double>* norms) {
  if (p.metric != Metric::cosine && !uses_norms(p.pair, p.metric)) return true;
  norms->resize(p.queries.rows);
  if (batch.group != 0 && !batch.int8) {
    // The queries packed as panels of rows, a panel at a time: the batch
    // kernel's corpus norms of those (with no queries to score) are the
    // queries' norms in its shape, which both batch kernels share.
    std::size_t width = kernels.batch_panel;
    std::vector<float> panel(width * p.dim), panel_norms(width);
    for (std::size_t q0 = 0; q0 < p.queries.rows; q0 += width) {
      std::size_t n = std::min(width, p.queries.rows - q0);
      kernels.pack_panels(row_at(p.queries, q0), p.queries.row_stride, n, p.dim, panel.data());
      kernels.batch_f32(Tile{nullptr, 0, 0, panel.data(), 0, n, p.dim, nullptr, panel_norms.data()});
      for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(panel_norms[i])) return false;
        (*norms)[q0 + i] = panel_norms[i];
      }
    }
    return true;
  }
  bool integer = p.pair == Pair::i8_i8;
  TileKernel dot = integer ? kernels.dot_i8 : kernels.dot_f32;
  for (std::size_t i = 0; i < p.queries.rows; ++i) {
    const void* q = row_at(p.queries, i);
    float f = 0;
    std::int32_t n = 0;
    void* out = integer ? static_cast<void*>(&n) : static_cast<void*>(&f);
    dot(Tile{q, 0, 1, q, 0, 1, p.dim, out, nullptr});
    if (!integer && !std::isfinite(f)) return false;
    (*norms)[i] = integer ? static_cast<double>(n) : static_cast<double>(f);
  }
  return true;
}

}  // namespace simkernel::detail
