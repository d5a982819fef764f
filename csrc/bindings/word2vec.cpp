// pybind11 bindings of the word2vec kernels (seqkernels/word2vec.h) into seqkernels._C. The Python
// API in seqkernels.word2vec validates first with friendlier messages; the checks here and in the
// dispatcher keep any direct call from reaching a kernel with a bad pointer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "array_checks.h"
#include "corpus_argument.h"
#include "seqkernels/word2vec.h"

namespace py = pybind11;
using namespace seqkernels;
using seqkernels::bindings::checked;

void bind_word2vec(py::module_& m) {
  m.def("word2vec_encode",
        [](const py::object& corpus, const std::vector<std::string>& words, int64_t max_sentence) {
          bindings::Corpus c = bindings::make_corpus(corpus);
          word2vec::EncodedCorpus e;
          {
            py::gil_scoped_release nogil;
            e = word2vec::encode_corpus(*c.source, words, max_sentence);
          }
          const int64_t tokens = e.tokens;
          return py::make_tuple(bindings::to_numpy(std::move(e.ids)), bindings::to_numpy(std::move(e.offsets)), tokens);
        },
        py::arg("corpus"), py::arg("words"), py::arg("max_sentence") = 10000,
        "The corpus as word ids: returns (ids int32 (N,), offsets int64 (S+1,), tokens read); a line is a "
        "sentence, tokens outside `words` are dropped, long lines are cut every max_sentence kept tokens.");

  m.def("word2vec_train_epoch",
        [](const py::array& syn0, const py::array& syn1neg, const py::array& ids, const py::array& offsets,
           const py::object& keep, const py::array& table, int window, int negative, bool cbow, double learning_rate,
           int64_t words_before, int64_t words_total, uint64_t seed, int threads, int64_t private_rows) {
          SK_CHECK(syn0.ndim() == 2 && syn0.shape(0) >= 1 && syn0.shape(1) >= 1, "syn0: expected shape (V, D)");
          SK_CHECK(ids.ndim() == 1, "ids: expected 1 dimension");
          SK_CHECK(offsets.ndim() == 1 && offsets.shape(0) >= 1, "offsets: expected 1 dimension, S + 1 >= 1 entries");
          SK_CHECK(table.ndim() == 1, "table: expected 1 dimension");
          word2vec::TrainArgs a;
          a.vocab_size = syn0.shape(0);
          a.vector_size = static_cast<int>(syn0.shape(1));
          a.syn0 = checked<float>(syn0, "syn0", {syn0.shape(0), syn0.shape(1)}, true);
          a.syn1neg = checked<float>(syn1neg, "syn1neg", {syn0.shape(0), syn0.shape(1)}, true);
          a.ids = checked<int32_t>(ids, "ids", {ids.shape(0)});
          a.offsets = checked<int64_t>(offsets, "offsets", {offsets.shape(0)});
          a.sentences = offsets.shape(0) - 1;
          SK_CHECK(a.offsets[a.sentences] == ids.shape(0),
                   "offsets: the last offset (" << a.offsets[a.sentences] << ") must equal len(ids) (" << ids.shape(0) << ")");
          if (!keep.is_none()) a.keep = checked<double>(keep.cast<py::array>(), "keep", {syn0.shape(0)});
          a.table = checked<int32_t>(table, "table", {table.shape(0)});
          a.table_size = table.shape(0);
          a.window = window;
          a.negative = negative;
          a.cbow = cbow;
          a.learning_rate = learning_rate;
          a.words_before = words_before;
          a.words_total = words_total;
          a.seed = seed;
          a.num_threads = threads;
          a.private_rows = private_rows;
          word2vec::EpochResult r;
          {
            py::gil_scoped_release nogil;
            r = word2vec::train_epoch(a);
          }
          return py::make_tuple(r.words, r.trained, r.learning_rate);
        },
        py::arg("syn0"), py::arg("syn1neg"), py::arg("ids"), py::arg("offsets"), py::arg("keep"), py::arg("table"),
        py::arg("window"), py::arg("negative"), py::arg("cbow"), py::arg("learning_rate"), py::arg("words_before"),
        py::arg("words_total"), py::arg("seed"), py::arg("threads") = 0, py::arg("private_rows") = -1,
        "One word2vec epoch (skip-gram or CBOW, negative sampling) updating syn0 and syn1neg in place; returns "
        "(words read, words kept by subsampling, final learning rate). threads=1 is deterministic. private_rows: "
        "rows of the most frequent words each thread trains in its own copy during a piece (-1: 0 for one thread, "
        "256 for several).");
}
