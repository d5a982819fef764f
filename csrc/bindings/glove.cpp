// pybind11 bindings of the GloVe kernels (seqkernels/glove.h) into seqkernels._C. The Python API in
// seqkernels.glove validates first with friendlier messages; these checks keep any direct call
// from reaching a kernel with a bad pointer. The GIL is released around every long call and
// re-taken only to report progress (which also lets Ctrl-C cancel a run).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "array_checks.h"
#include "corpus_argument.h"
#include "seqkernels/glove.h"

namespace py = pybind11;
using namespace seqkernels;
using namespace seqkernels::glove;
using seqkernels::bindings::checked;
using seqkernels::bindings::Corpus;
using seqkernels::bindings::make_corpus;
using seqkernels::bindings::to_numpy;

namespace {

// Wraps an optional Python callable progress(stage, done, total); always checks for signals.
Progress make_progress(const py::object& callback) {
  return [callback](const char* stage, int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (!callback.is_none()) callback(stage, done, total);
  };
}

// Collects the records as 0-based COO arrays.
class ArraySink : public RecordSink {
 public:
  void write(const CooccurRecord* r, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      rows.push_back(r[i].word1 - 1);
      cols.push_back(r[i].word2 - 1);
      values.push_back(r[i].value);
    }
  }
  std::vector<int32_t> rows, cols;
  std::vector<double> values;
};

py::dict stats_dict(const CooccurStats& s) {
  py::dict d;
  d["tokens"] = s.tokens;
  d["kept_tokens"] = s.kept_tokens;
  d["records"] = s.records;
  d["max_product"] = s.max_product;
  d["overflow_length"] = s.overflow_length;
  d["runs_spilled"] = s.runs_spilled;
  d["spilled_records"] = s.spilled_records;
  d["spilled_bytes"] = s.spilled_bytes;
  d["merge_passes"] = s.merge_passes;
  d["dense_bucket_capacity"] = s.dense_bucket_capacity;
  d["budget_bytes"] = s.budget_bytes;
  d["peak_bytes"] = s.peak_bytes;
  d["threads"] = s.num_threads;
  d["seconds_tokenize"] = s.seconds_tokenize;
  d["seconds_count"] = s.seconds_count;
  d["seconds_merge"] = s.seconds_merge;
  return d;
}

CooccurOptions cooccur_options(int window_size, bool symmetric, bool distance_weighting, double memory_gb, int threads,
                               int64_t max_product, int64_t overflow_length) {
  CooccurOptions o;
  o.window_size = window_size;
  o.symmetric = symmetric;
  o.distance_weighting = distance_weighting;
  o.memory_gb = memory_gb;
  o.num_threads = threads;
  o.max_product = max_product;
  o.overflow_length = overflow_length;
  return o;
}

}  // namespace

void bind_glove(py::module_& m) {
  m.def("glove_vocab_count",
        [](const py::object& corpus, int64_t min_count, int64_t max_vocab, int threads, size_t block_bytes,
           const py::object& progress) {
          VocabOptions o;
          o.min_count = min_count;
          o.max_vocab = max_vocab;
          o.num_threads = threads;
          o.block_bytes = block_bytes;
          o.progress = make_progress(progress);
          Corpus c = make_corpus(corpus);
          VocabResult r;
          {
            py::gil_scoped_release nogil;
            r = count_vocabulary(*c.source, o);
          }
          py::list words;
          for (const std::string& w : r.words) words.append(py::bytes(w));
          return py::make_tuple(words, to_numpy(std::move(r.counts)), r.tokens, r.distinct);
        },
        py::arg("corpus"), py::arg("min_count") = 1, py::arg("max_vocab") = 0, py::arg("threads") = 0,
        py::arg("block_bytes") = 0, py::arg("progress") = py::none(),
        "Stanford vocab_count: returns (words: list[bytes], counts: int64 array, tokens, distinct).");

  m.def("glove_cooccur",
        [](const py::object& corpus, const std::vector<std::string>& words, int window_size, bool symmetric,
           bool distance_weighting, double memory_gb, int threads, const std::string& temp_dir, const py::object& output_fd,
           int64_t max_product, int64_t overflow_length, int max_open_runs, size_t block_bytes,
           const py::object& progress) -> py::tuple {
          CooccurOptions o =
              cooccur_options(window_size, symmetric, distance_weighting, memory_gb, threads, max_product, overflow_length);
          o.temp_dir = temp_dir;
          o.max_open_runs = max_open_runs;
          o.block_bytes = block_bytes;
          o.progress = make_progress(progress);
          Corpus c = make_corpus(corpus);
          if (!output_fd.is_none()) {
            auto sink = fd_record_sink(output_fd.cast<int>());
            CooccurStats s;
            {
              py::gil_scoped_release nogil;
              s = count_cooccurrences(*c.source, words, o, *sink);
            }
            return py::make_tuple(stats_dict(s), py::none(), py::none(), py::none()).cast<py::tuple>();
          }
          ArraySink sink;
          CooccurStats s;
          {
            py::gil_scoped_release nogil;
            s = count_cooccurrences(*c.source, words, o, sink);
          }
          return py::make_tuple(stats_dict(s), to_numpy(std::move(sink.rows)), to_numpy(std::move(sink.cols)),
                                to_numpy(std::move(sink.values)))
              .cast<py::tuple>();
        },
        py::arg("corpus"), py::arg("words"), py::arg("window_size") = 15, py::arg("symmetric") = true,
        py::arg("distance_weighting") = true, py::arg("memory_gb") = 4.0, py::arg("threads") = 0,
        py::arg("temp_dir") = "", py::arg("output_fd") = py::none(), py::arg("max_product") = -1,
        py::arg("overflow_length") = -1, py::arg("max_open_runs") = 0, py::arg("block_bytes") = 0,
        py::arg("progress") = py::none(),
        "Stanford cooccur: returns (stats, rows, cols, values) with 0-based int32 ids, or (stats, None, None, None) "
        "after writing cooccurrence.bin to output_fd.");

  m.def("glove_value_scale",
        [](int window_size, bool distance_weighting) {
          CooccurOptions o;
          o.window_size = window_size;
          o.distance_weighting = distance_weighting;
          return cooccur_value_scale(o);
        },
        py::arg("window_size"), py::arg("distance_weighting"),
        "The integer scale of the co-occurrence weights (lcm(1..window) for windows up to 22, else 1).");

  m.def("glove_cooccur_runs",
        [](const py::object& corpus, const std::vector<std::string>& words, const std::vector<int>& fds,
           const std::vector<int64_t>& first_rows, int window_size, bool symmetric, bool distance_weighting,
           double memory_gb, int threads, int64_t max_product, int64_t overflow_length) {
          const CooccurOptions o =
              cooccur_options(window_size, symmetric, distance_weighting, memory_gb, threads, max_product, overflow_length);
          Corpus c = make_corpus(corpus);
          CooccurStats s;
          std::vector<int64_t> counts;
          {
            py::gil_scoped_release nogil;
            s = count_cooccurrence_runs(*c.source, words, o, fds, first_rows, counts);
          }
          return py::make_tuple(stats_dict(s), counts);
        },
        py::arg("corpus"), py::arg("words"), py::arg("fds"), py::arg("first_rows"), py::arg("window_size") = 15,
        py::arg("symmetric") = true, py::arg("distance_weighting") = true, py::arg("memory_gb") = 4.0,
        py::arg("threads") = 0, py::arg("max_product") = -1, py::arg("overflow_length") = -1,
        "Map task: counts with exact sums into one sorted run file per row range; returns (stats, records per run).");

  m.def("glove_merge_runs",
        [](const std::vector<std::string>& paths, double scale, int output_fd, const std::string& temp_dir,
           int max_open_runs) {
          auto sink = fd_record_sink(output_fd);
          py::gil_scoped_release nogil;
          return merge_cooccurrence_runs(paths, scale, temp_dir, max_open_runs, *sink);
        },
        py::arg("paths"), py::arg("scale"), py::arg("output_fd"), py::arg("temp_dir"), py::arg("max_open_runs") = 64,
        "Reduce task: merges run files of one row range into cooccurrence.bin records on output_fd.");

  m.def("glove_stanford_init",
        [](int64_t vocab_size, int vector_size, uint32_t seed) {
          SK_CHECK(vocab_size >= 1, "vocab_size: expected >= 1, got " << vocab_size);
          SK_CHECK(vector_size >= 1, "vector_size: expected >= 1, got " << vector_size);
          py::array_t<double> W({static_cast<py::ssize_t>(2 * vocab_size), static_cast<py::ssize_t>(vector_size + 1)});
          double* p = W.mutable_data();
          {
            py::gil_scoped_release nogil;
            stanford_init(p, 2 * vocab_size * (vector_size + 1), vector_size, seed);
          }
          return W;
        },
        py::arg("vocab_size"), py::arg("vector_size"), py::arg("seed"),
        "Stanford's initial parameters (2V, D+1) for srand(seed) with glibc's rand().");

  m.def("glove_train_epoch",
        [](const py::array& W, const py::array& gradsq, const py::array& rows, const py::array& cols,
           const py::array& values, double eta, double x_max, double alpha, double grad_clip, int threads,
           const py::object& log_values, const py::object& weights) {
          SK_CHECK(W.ndim() == 2 && W.shape(0) % 2 == 0 && W.shape(0) >= 2 && W.shape(1) >= 2,
                   "W: expected shape (2V, D+1) with V >= 1 and D >= 1");
          SK_CHECK(rows.ndim() == 1, "rows: expected 1 dimension");
          TrainArgs a;
          a.vocab_size = W.shape(0) / 2;
          a.vector_size = static_cast<int>(W.shape(1) - 1);
          a.records = rows.shape(0);
          a.W = checked<double>(W, "W", {W.shape(0), W.shape(1)}, true);
          a.gradsq = checked<double>(gradsq, "gradsq", {W.shape(0), W.shape(1)}, true);
          a.rows = checked<int32_t>(rows, "rows", {a.records}, false);
          a.cols = checked<int32_t>(cols, "cols", {a.records}, false);
          a.values = checked<double>(values, "values", {a.records}, false);
          SK_CHECK(log_values.is_none() == weights.is_none(), "log_values and weights: give both or neither");
          if (!log_values.is_none()) {
            a.log_values = checked<double>(log_values.cast<py::array>(), "log_values", {a.records}, false);
            a.weights = checked<double>(weights.cast<py::array>(), "weights", {a.records}, false);
          }
          for (int64_t k = 0; k < a.records; ++k) {  // a bad id would write outside W
            SK_CHECK(a.rows[k] >= 0 && a.rows[k] < a.vocab_size && a.cols[k] >= 0 && a.cols[k] < a.vocab_size,
                     "rows/cols: record " << k << " has ids (" << a.rows[k] << ", " << a.cols[k]
                                          << ") outside [0, " << a.vocab_size << ")");
          }
          a.eta = eta;
          a.x_max = x_max;
          a.alpha = alpha;
          a.grad_clip = grad_clip;
          a.num_threads = threads;
          EpochResult r;
          {
            py::gil_scoped_release nogil;
            r = train_epoch(a);
          }
          return py::make_tuple(r.cost, r.skipped);
        },
        py::arg("W"), py::arg("gradsq"), py::arg("rows"), py::arg("cols"), py::arg("values"), py::arg("eta"),
        py::arg("x_max"), py::arg("alpha"), py::arg("grad_clip"), py::arg("threads") = 0,
        py::arg("log_values") = py::none(), py::arg("weights") = py::none(),
        "One Stanford AdaGrad epoch over the records in order; returns (summed cost, skipped records). "
        "log_values/weights: optional per-record log(x) and f(x) from glove_record_terms.");

  m.def("glove_record_terms",
        [](const py::array& values, double x_max, double alpha, int threads) {
          SK_CHECK(values.ndim() == 1, "values: expected 1 dimension");
          const double* v = checked<double>(values, "values", {values.shape(0)}, false);
          py::array_t<double> log_values(values.shape(0)), weights(values.shape(0));
          double* lp = log_values.mutable_data();
          double* wp = weights.mutable_data();
          {
            py::gil_scoped_release nogil;
            record_terms(v, values.shape(0), x_max, alpha, lp, wp, threads);
          }
          return py::make_tuple(log_values, weights);
        },
        py::arg("values"), py::arg("x_max"), py::arg("alpha"), py::arg("threads") = 0,
        "Per-record log(x) and f(x) = min(1, (x / x_max)^alpha) as Stanford computes them (libm log and pow).");

  m.def("glove_write_text_vectors",
        [](const std::string& path, const std::vector<std::string>& words, const py::array& M, const std::string& header) {
          SK_CHECK(M.ndim() == 2, "vectors: expected 2 dimensions");
          const double* p = checked<double>(M, "vectors", {M.shape(0), M.shape(1)}, false);
          py::gil_scoped_release nogil;
          write_text_vectors(path, words, p, M.shape(0), M.shape(1), M.shape(1), header);
        },
        py::arg("path"), py::arg("words"), py::arg("vectors"), py::arg("header") = "",
        "Writes an optional header line, then 'word v1 ... vk' lines with Stanford's %lf formatting.");

  m.def("glove_word_less", &stanford_word_less, py::arg("a"), py::arg("b"),
        "Stanford's vocabulary tie order (scmp on signed chars).");
  m.def("glove_bucket", &stanford_bucket, py::arg("word"), "Stanford's hash bucket of a word (bitwisehash).");
}
