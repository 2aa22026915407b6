// The Python binding: checks what it is given, releases the GIL, translates
// results and errors. No maths here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#if defined(__GLIBCXX__)
#include <cxxabi.h>  // abi::__forced_unwind
#endif

#include "simkernel/dispatch.hpp"
#include "simkernel/search.hpp"

namespace py = pybind11;
using namespace simkernel;

namespace {

// Raised for NaN or infinity met while scoring; the Python layer catches it
// and names the argument that holds the bad value.
PyObject* g_non_finite_error = nullptr;  // owned by the module for its life
// Raised when a range search passes max_results; the Python layer names it.
PyObject* g_too_many_results_error = nullptr;

struct PairInfo {
  const char* name;
  Pair pair;
  // numpy dtype chars: f float32, e float16, E bfloat16 (ml_dtypes), b int8,
  // B uint8
  char query_kind;
  char corpus_kind;
};

constexpr PairInfo kPairs[] = {
    {"f32_f32", Pair::f32_f32, 'f', 'f'}, {"f32_f16", Pair::f32_f16, 'f', 'e'},
    {"f32_bf16", Pair::f32_bf16, 'f', 'E'},
    {"f32_i8", Pair::f32_i8, 'f', 'b'},   {"f32_bits", Pair::f32_bits, 'f', 'B'},
    {"i8_i8", Pair::i8_i8, 'b', 'b'},     {"bits_bits", Pair::bits_bits, 'B', 'B'},
};

const PairInfo& pair_info(const std::string& name) {
  for (const PairInfo& info : kPairs) {
    if (name == info.name) return info;
  }
  throw py::value_error("unknown pair '" + name + "'");
}

Metric parse_metric(const std::string& name) {
  if (name == "dot") return Metric::dot;
  if (name == "cosine") return Metric::cosine;
  if (name == "sqeuclidean") return Metric::sqeuclidean;
  if (name == "l2") return Metric::l2;
  if (name == "hamming") return Metric::hamming;
  throw py::value_error("unknown metric '" + name + "'");
}

std::size_t row_elements(char kind, std::size_t dim) {
  return kind == 'B' ? (dim + 7) / 8 : dim;
}

// A 2-D array of the expected dtype whose rows are contiguous; rows themselves
// may be anywhere (any row stride, negative included).
Matrix as_matrix(const py::array& a, char kind, std::size_t dim,
                 const char* what) {
  if (a.ndim() != 2 || a.dtype().char_() != kind) {
    throw py::type_error(std::string(what) + " must be a 2-D array of dtype '" +
                         kind + "'");
  }
  if (static_cast<std::size_t>(a.shape(1)) != row_elements(kind, dim)) {
    throw py::value_error(std::string(what) + " rows have " +
                          std::to_string(a.shape(1)) + " elements, expected " +
                          std::to_string(row_elements(kind, dim)));
  }
  if (a.shape(0) > 0 && a.shape(1) > 1 && a.strides(1) != a.itemsize()) {
    throw py::value_error(std::string(what) + " rows must be contiguous");
  }
  return {a.data(), a.strides(0), static_cast<std::size_t>(a.shape(0))};
}

// The corpus is an array, or a list of arrays searched as one (an Index's
// pieces); the arrays stay alive in the caller's hands for the whole call.
Problem make_problem(const py::array& queries, const py::object& corpus,
                     const std::string& pair, const std::string& metric,
                     std::size_t dim) {
  const PairInfo& info = pair_info(pair);
  py::list given = py::isinstance<py::list>(corpus) ? corpus.cast<py::list>() : py::list();
  if (!py::isinstance<py::list>(corpus)) given.append(corpus);
  std::vector<Matrix> pieces;
  for (const py::handle& piece : given) {
    // Borrowed, never converted: a converted temporary would not outlive this line.
    if (!py::isinstance<py::array>(piece)) throw py::type_error("corpus must be numpy arrays");
    pieces.push_back(as_matrix(py::reinterpret_borrow<py::array>(piece), info.corpus_kind,
                               dim, "corpus"));
  }
  if (info.pair == Pair::i8_i8 && dim > kMaxInt8Dim) {
    throw py::value_error("int8 rows longer than " + std::to_string(kMaxInt8Dim) +
                          " could overflow int32 scores");
  }
  if (info.pair == Pair::bits_bits && dim > kMaxHammingBits) {
    throw py::value_error("bit rows longer than " + std::to_string(kMaxHammingBits) +
                          " bits could overflow int32 Hamming counts");
  }
  return {info.pair, parse_metric(metric),
          as_matrix(queries, info.query_kind, dim, "queries"), Corpus(std::move(pieces)),
          dim};
}

// The arrays behind AffineCodes, held for the call: (steps, offsets,
// row_sqnorms) of float32 (dim), float32 (dim) and float64 (corpus rows).
struct AffineArrays {
  py::array_t<float, py::array::c_style> steps, offsets;
  py::array_t<double, py::array::c_style> row_sqnorms;
};

std::optional<AffineArrays> attach_affine(const py::object& affine, Problem& p) {
  if (affine.is_none()) return std::nullopt;
  auto parts = affine.cast<py::tuple>();
  if (parts.size() != 3) throw py::value_error("affine must be (steps, offsets, row_sqnorms)");
  AffineArrays arrays{parts[0].cast<py::array_t<float, py::array::c_style>>(),
                      parts[1].cast<py::array_t<float, py::array::c_style>>(),
                      parts[2].cast<py::array_t<double, py::array::c_style>>()};
  auto length = [](const auto& a) { return a.ndim() == 1 ? static_cast<std::size_t>(a.shape(0)) : 0; };
  if (p.pair != Pair::f32_i8 || length(arrays.steps) != p.dim || length(arrays.offsets) != p.dim ||
      length(arrays.row_sqnorms) != p.corpus.rows) {
    throw py::value_error("affine codes need float queries, int8 rows, a step and an offset per "
                          "dimension and a squared norm per row");
  }
  p.affine = {arrays.steps.data(), arrays.offsets.data(), arrays.row_sqnorms.data()};
  return arrays;
}

// A top-k call's (scores, indices), allocated while the GIL is held; the
// kernels write into them without it.
struct Results {
  Results(const Problem& p, std::size_t per_query)
      : shape{static_cast<py::ssize_t>(p.queries.rows),
              static_cast<py::ssize_t>(per_query)},
        scores(integer_scores(p.pair, p.metric)
                   ? py::array(py::array_t<std::int32_t>(shape))
                   : py::array(py::array_t<float>(shape))),
        indices(shape),
        score_data(scores.mutable_data()),
        index_data(indices.mutable_data()) {}

  py::tuple as_tuple() const { return py::make_tuple(scores, indices); }

  std::vector<py::ssize_t> shape;
  py::array scores;
  py::array_t<std::int64_t> indices;
  void* score_data;
  std::int64_t* index_data;
};

bool python_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// Runs `work(stop)` without the GIL; Ctrl-C is noticed between blocks.
//
// A daemon thread may come back from the core while Python is finalizing:
// taking the GIL then ends the thread by a forced unwind (pthread_exit). So
// the GIL is taken back by a plain call, never in a scope guard's destructor
// (a destructor is noexcept: the unwind would reach std::terminate), and the
// interrupt check does not take it at all once finalizing has begun (it
// asks the scan to stop instead, so no worker is left running).
template <typename Work>
void run_without_gil(Work&& work) {
  StopFlag stop([] {
    if (python_finalizing()) return true;
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
  });
  PyThreadState* state = PyEval_SaveThread();
  Status status;
  try {
    status = work(stop);
#if defined(__GLIBCXX__)
  } catch (abi::__forced_unwind&) {
    // The interrupt check lost the race with finalization and is ending
    // this thread: taking the GIL again here would start a second forced
    // unwind inside this handler, which aborts the process.
    throw;
#endif
  } catch (...) {
    PyEval_RestoreThread(state);
    throw;
  }
  PyEval_RestoreThread(state);
  if (status == Status::interrupted && PyErr_Occurred() == nullptr) {
    // Stopped for finalization, with no signal to report.
    PyErr_SetString(PyExc_RuntimeError, "interrupted: Python is shutting down");
  }
  if (status == Status::interrupted) throw py::error_already_set();
  if (status == Status::non_finite) {
    PyErr_SetString(g_non_finite_error, "non-finite value met while scoring");
    throw py::error_already_set();
  }
  if (status == Status::too_many_results) {
    PyErr_SetString(g_too_many_results_error, "more results than max_results");
    throw py::error_already_set();
  }
  if (status == Status::out_of_memory) throw std::bad_alloc();
}

unsigned check_threads(int threads) {
  if (threads < 1) throw py::value_error("threads must be >= 1");
  return static_cast<unsigned>(threads);
}

// A bitmap of allowed corpus rows: one row of ceil(n / 8) bytes for every
// query, or one per query.
RowFilter as_filter(const std::optional<py::array_t<std::uint8_t, py::array::c_style>>& allowed,
                    const Problem& p) {
  if (!allowed) return {};
  const auto& bits = *allowed;
  std::size_t bytes = (p.corpus.rows + 7) / 8;
  bool fits = bits.ndim() == 2 && static_cast<std::size_t>(bits.shape(1)) == bytes &&
              (bits.shape(0) == 1 ||
               static_cast<std::size_t>(bits.shape(0)) == p.queries.rows);
  if (!fits) {
    throw py::value_error("allowed must be a (1 or queries, ceil(corpus rows / 8)) uint8 bitmap");
  }
  return {bits.data(), bits.shape(0) == 1 ? 0 : bytes};
}

py::tuple topk_binding(const py::array& queries, const py::object& corpus,
                       const std::string& pair, const std::string& metric,
                       std::size_t dim, std::size_t k, int threads,
                       const std::optional<py::array_t<std::uint8_t, py::array::c_style>>& allowed,
                       const py::object& affine) {
  Problem p = make_problem(queries, corpus, pair, metric, dim);
  auto held = attach_affine(affine, p);
  unsigned workers = check_threads(threads);
  RowFilter filter = as_filter(allowed, p);
  Results out(p, result_count(k, p.corpus.rows));
  run_without_gil([&](StopFlag& stop) {
    return topk(p, k, filter, workers, stop, out.score_data, out.index_data);
  });
  return out.as_tuple();
}

void cdist_binding(const py::array& queries, const py::object& corpus,
                   const std::string& pair, const std::string& metric,
                   std::size_t dim, int threads, py::array& out, const py::object& affine) {
  Problem p = make_problem(queries, corpus, pair, metric, dim);
  auto held = attach_affine(affine, p);
  unsigned workers = check_threads(threads);
  char kind = integer_scores(p.pair, p.metric) ? 'i' : 'f';
  bool fits = out.ndim() == 2 && out.dtype().kind() == kind &&
              out.itemsize() == 4 &&
              static_cast<std::size_t>(out.shape(0)) == p.queries.rows &&
              static_cast<std::size_t>(out.shape(1)) == p.corpus.rows &&
              (out.flags() & py::array::c_style) && out.writeable();
  if (!fits) {
    throw py::value_error(
        "out must be a writeable C-contiguous (queries, corpus) array of the "
        "score dtype");
  }
  void* score_data = out.mutable_data();
  run_without_gil(
      [&](StopFlag& stop) { return cdist(p, workers, stop, score_data); });
}

py::tuple rescore_binding(const py::array& queries,
                          const py::array_t<std::int64_t, py::array::c_style>& candidates,
                          const py::object& vectors, const std::string& pair,
                          const std::string& metric, std::size_t dim,
                          std::size_t k, int threads, const py::object& affine) {
  Problem p = make_problem(queries, vectors, pair, metric, dim);
  auto held = attach_affine(affine, p);
  unsigned workers = check_threads(threads);
  if (candidates.ndim() != 2 ||
      static_cast<std::size_t>(candidates.shape(0)) != p.queries.rows) {
    throw py::value_error("candidates must have one row per query");
  }
  std::size_t m = static_cast<std::size_t>(candidates.shape(1));
  const std::int64_t* cand = candidates.data();
  // Negative candidates are padding, skipped by the core.
  for (std::size_t i = 0; i < p.queries.rows * m; ++i) {
    if (cand[i] >= 0 && static_cast<std::size_t>(cand[i]) >= p.corpus.rows) {
      throw py::value_error("candidates out of range");
    }
  }
  Results out(p, result_count(k, m));
  run_without_gil([&](StopFlag& stop) {
    return rescore(p, cand, m, k, workers, stop, out.score_data, out.index_data);
  });
  return out.as_tuple();
}

// A vector handed to numpy without a copy: the array owns it.
template <typename T>
py::array_t<T> as_numpy(std::vector<T>&& values) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule free_owned(owned, [](void* v) { delete static_cast<std::vector<T>*>(v); });
  return py::array_t<T>({static_cast<py::ssize_t>(owned->size())}, owned->data(), free_owned);
}

py::tuple range_search_binding(const py::array& queries, const py::object& corpus,
                               const std::string& pair, const std::string& metric,
                               std::size_t dim, double threshold, std::size_t max_results,
                               int threads,
                               const std::optional<py::array_t<std::uint8_t, py::array::c_style>>& allowed,
                               const py::object& affine) {
  Problem p = make_problem(queries, corpus, pair, metric, dim);
  auto held = attach_affine(affine, p);
  unsigned workers = check_threads(threads);
  RowFilter filter = as_filter(allowed, p);
  RangeResults out;
  run_without_gil([&](StopFlag& stop) {
    return range_search(p, threshold, filter, max_results, workers, stop, &out);
  });
  py::array scores = integer_scores(p.pair, p.metric) ? py::array(as_numpy(std::move(out.i32)))
                                                      : py::array(as_numpy(std::move(out.f32)));
  return py::make_tuple(as_numpy(std::move(out.lims)), scores, as_numpy(std::move(out.indices)));
}

double stream_sum_binding(const py::array_t<float, py::array::c_style>& data, int threads) {
  unsigned workers = check_threads(threads);
  const float* values = data.data();
  std::size_t n = static_cast<std::size_t>(data.size());
  double sum = 0;
  run_without_gil([&](StopFlag&) {
    sum = stream_sum(values, n, workers);
    return Status::ok;
  });
  return sum;
}

// A compute probe run on `threads` workers, without the GIL.
double peak_binding(double (*peak)(std::size_t, unsigned), std::size_t steps, int threads) {
  unsigned workers = check_threads(threads);
  double done = 0;
  run_without_gil([&](StopFlag&) {
    done = peak(steps, workers);
    return Status::ok;
  });
  return done;
}

double fma_peak_binding(std::size_t steps, int threads) { return peak_binding(fma_peak, steps, threads); }
double int8_peak_binding(std::size_t steps, int threads) { return peak_binding(int8_peak, steps, threads); }

// The registry as Python reads it: one dict per row, in order of preference.
py::list isas_binding() {
  py::list rows;
  for (const IsaInfo& isa : isas()) {
    py::dict row;
    row["name"] = isa.name;
    row["features"] = isa.features;
    row["verified"] = isa.verified;
    row["fallback"] = isa.fallback ? py::object(py::str(isa.fallback)) : py::object(py::none());
    row["supported"] = cpu_supports(isa);
    rows.append(row);
  }
  return rows;
}

py::dict capabilities_binding() {
  py::list compiled, supported, verified;
  for (const IsaInfo& isa : isas()) {
    compiled.append(isa.name);
    if (cpu_supports(isa)) supported.append(isa.name);
    if (cpu_supports(isa) && isa.verified) verified.append(isa.name);
  }
  py::dict d;
  d["isa"] = active_isa().name;
  d["compiled"] = compiled;
  d["supported"] = supported;
  d["verified"] = verified;
  d["cpu"] = cpu_features();
  d["batch_queries"] = batch_queries();
  d["packed_batch_queries"] = packed_batch_queries();
  return d;
}

bool select_isa_binding(const std::string& name) {
  const IsaInfo* isa = find_isa(name);
  if (isa == nullptr) throw py::value_error("unknown ISA '" + name + "'");
  return select_isa(*isa);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "simkernel's native core (use the simkernel package, not this module)";
  g_non_finite_error = PyErr_NewException("simkernel._core.NonFiniteError",
                                          PyExc_ValueError, nullptr);
  m.attr("NonFiniteError") = py::handle(g_non_finite_error);
  g_too_many_results_error = PyErr_NewException("simkernel._core.TooManyResultsError",
                                                PyExc_ValueError, nullptr);
  m.attr("TooManyResultsError") = py::handle(g_too_many_results_error);
  m.def("topk", &topk_binding, py::arg("queries"), py::arg("corpus"),
        py::arg("pair"), py::arg("metric"), py::arg("dim"), py::arg("k"),
        py::arg("threads"), py::arg("allowed") = py::none(), py::arg("affine") = py::none());
  m.def("range_search", &range_search_binding, py::arg("queries"), py::arg("corpus"),
        py::arg("pair"), py::arg("metric"), py::arg("dim"), py::arg("threshold"),
        py::arg("max_results"), py::arg("threads"), py::arg("allowed") = py::none(),
        py::arg("affine") = py::none());
  m.def("cdist", &cdist_binding, py::arg("queries"), py::arg("corpus"),
        py::arg("pair"), py::arg("metric"), py::arg("dim"), py::arg("threads"),
        py::arg("out"), py::arg("affine") = py::none());
  m.def("rescore", &rescore_binding, py::arg("queries"), py::arg("candidates"),
        py::arg("vectors"), py::arg("pair"), py::arg("metric"), py::arg("dim"),
        py::arg("k"), py::arg("threads"), py::arg("affine") = py::none());
  m.def("stream_sum", &stream_sum_binding, py::arg("data"), py::arg("threads"),
        "Sum of a float32 array, each thread streaming its own slice (the "
        "benchmark's read-bandwidth probe).");
  m.def("fma_peak", &fma_peak_binding, py::arg("steps"), py::arg("threads"),
        "Runs the active ISA's independent FMA chains for `steps` rounds on "
        "each thread and returns the float operations done (the benchmark's "
        "compute-peak probe).");
  m.def("int8_peak", &int8_peak_binding, py::arg("steps"), py::arg("threads"),
        "Runs the active ISA's int8 multiply-add chains for `steps` rounds on "
        "each thread and returns the multiply-adds done (the benchmark's "
        "int8 peak probe).");
  m.def("isas", &isas_binding);
  m.def("capabilities", &capabilities_binding);
  m.def("select_isa", &select_isa_binding, py::arg("name"));
}
