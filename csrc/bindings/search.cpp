// pybind11 binding of the fused beam-search step (seqkernels/beam_search.h) into seqkernels._C.
// seqkernels.ops.beam_step validates first with friendlier messages; these checks keep any direct
// call from reaching the kernel with a bad pointer or an out-of-vocabulary token id.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "array_checks.h"
#include "seqkernels/beam_search.h"

namespace py = pybind11;
using namespace seqkernels;
using seqkernels::bindings::checked;
using seqkernels::bindings::shape_str;

namespace {

// A (rows, width) int32 array of token ids below `vocab`; entries < 0 allowed only when `padded`.
const int32_t* token_ids(const py::object& o, const char* name, py::ssize_t rows, int vocab, bool padded,
                         int* width) {
  if (o.is_none()) return nullptr;
  SK_CHECK(py::isinstance<py::array>(o), name << ": expected a NumPy array or None");
  const py::array a = o.cast<py::array>();
  const bool matrix = width != nullptr;
  SK_CHECK(a.ndim() == (matrix ? 2 : 1), name << ": expected " << (matrix ? 2 : 1) << " dimensions, got "
                                              << shape_str(a));
  if (matrix) *width = static_cast<int>(a.shape(1));
  const int32_t* p = matrix ? checked<int32_t>(a, name, {rows, a.shape(1)}) : checked<int32_t>(a, name, {rows});
  for (py::ssize_t i = 0; i < a.size(); ++i)
    SK_CHECK(p[i] < vocab && (padded || p[i] >= 0),
             name << ": token " << p[i] << " at flat index " << i << " is outside the vocabulary [0, " << vocab << ")");
  return p;
}

template <typename T>
py::tuple beam_step_t(const py::array& scores, const py::array& beam_scores, int eos_id, bool log_probs,
                      bool forbid_eos, int num_threads, const py::object& history, const py::object& history_hash,
                      double repetition_penalty, int no_repeat_ngram, const py::object& banned,
                      const py::object& forced, int candidates) {
  SK_CHECK(beam_scores.ndim() == 2, "beam_scores: expected 2 dimensions (N, B), got " << shape_str(beam_scores));
  SK_CHECK(scores.ndim() == 2, "scores: expected 2 dimensions (N*B, V), got " << shape_str(scores));
  BeamStepArgs<T> a;
  a.items = static_cast<int>(beam_scores.shape(0));
  a.beams = static_cast<int>(beam_scores.shape(1));
  a.vocab = static_cast<int>(scores.shape(1));
  SK_CHECK(a.items >= 1 && a.beams >= 1, "beam_scores: expected N >= 1 and B >= 1, got " << shape_str(beam_scores));
  SK_CHECK(a.vocab >= 1, "scores: expected V >= 1, got " << shape_str(scores));
  SK_CHECK(eos_id >= 0 && eos_id < a.vocab, "eos_id: expected 0 <= eos_id < " << a.vocab << ", got " << eos_id);
  const py::ssize_t rows = static_cast<py::ssize_t>(a.items) * a.beams;
  a.scores = checked<T>(scores, "scores", {rows, a.vocab});
  a.beam_scores = checked<T>(beam_scores, "beam_scores", {a.items, a.beams});
  a.eos_id = eos_id;
  a.log_probs = log_probs;
  a.forbid_eos = forbid_eos;
  a.num_threads = num_threads;
  SK_CHECK(std::isfinite(repetition_penalty) && repetition_penalty > 0,
           "repetition_penalty: expected a finite number > 0, got " << repetition_penalty);
  SK_CHECK(no_repeat_ngram >= 0, "no_repeat_ngram_size: expected >= 0, got " << no_repeat_ngram);
  a.repetition_penalty = repetition_penalty;
  a.no_repeat_ngram = no_repeat_ngram;
  a.history = token_ids(history, "history", rows, a.vocab, false, &a.history_len);
  if (!history_hash.is_none()) {
    SK_CHECK(a.history, "history_hash: given without history");
    SK_CHECK(py::isinstance<py::array>(history_hash), "history_hash: expected a NumPy array or None");
    a.history_hash = checked<uint64_t>(history_hash.cast<py::array>(), "history_hash", {rows, a.history_len});
  }
  a.banned = token_ids(banned, "banned", rows, a.vocab, true, &a.banned_width);
  a.forced = token_ids(forced, "forced", rows, a.vocab, true, nullptr);
  SK_CHECK(candidates == 0 || candidates >= 2 * a.beams,
           "candidates: expected 0 or >= 2B = " << 2 * a.beams << ", got " << candidates);
  a.candidates = candidates;
  const py::ssize_t N = a.items, K = candidates > 0 ? candidates : 2 * a.beams;
  py::array_t<T> cand_score({N, K}), cand_logp({N, K});
  py::array_t<int32_t> cand_beam({N, K}), cand_token({N, K}), alive({N, static_cast<py::ssize_t>(a.beams)});
  py::array_t<bool> cand_finished({N, K});
  a.cand_score = cand_score.mutable_data();
  a.cand_logp = cand_logp.mutable_data();
  a.cand_beam = cand_beam.mutable_data();
  a.cand_token = cand_token.mutable_data();
  a.cand_finished = reinterpret_cast<uint8_t*>(cand_finished.mutable_data());
  a.alive = alive.mutable_data();
  int bad_item;
  {
    py::gil_scoped_release nogil;
    bad_item = beam_step<T>(a);
  }
  SK_CHECK(bad_item < 0, "scores: NaN or +inf in the rows of item " << bad_item << " (rows " << bad_item * a.beams << ".."
                                                            << (bad_item + 1) * a.beams - 1 << ")");
  for (py::ssize_t i = 0; i < N * a.beams; ++i)
    SK_CHECK(a.beam_scores[i] < std::numeric_limits<T>::infinity(), "beam_scores: NaN or +inf at flat index " << i);
  return py::make_tuple(cand_score, cand_beam, cand_token, cand_logp, cand_finished, alive);
}

// Every row's collect_marks as CSR (offsets (rows + 1,), tokens, kinds): what the CUDA step reads.
py::tuple beam_step_marks(py::ssize_t rows, int vocab, int eos_id, bool forbid_eos, const py::object& history,
                          const py::object& history_hash, double repetition_penalty, int no_repeat_ngram,
                          const py::object& banned) {
  SK_CHECK(rows >= 1 && vocab >= 1, "rows and vocab: expected >= 1, got " << rows << " and " << vocab);
  SK_CHECK(eos_id >= 0 && eos_id < vocab, "eos_id: expected 0 <= eos_id < " << vocab << ", got " << eos_id);
  SK_CHECK(no_repeat_ngram >= 0, "no_repeat_ngram_size: expected >= 0, got " << no_repeat_ngram);
  BeamStepArgs<float> a;  // only the controls are read
  a.eos_id = eos_id;
  a.forbid_eos = forbid_eos;
  a.repetition_penalty = repetition_penalty;
  a.no_repeat_ngram = no_repeat_ngram;
  a.history = token_ids(history, "history", rows, vocab, false, &a.history_len);
  if (!history_hash.is_none()) {
    SK_CHECK(a.history && py::isinstance<py::array>(history_hash), "history_hash: expected a NumPy array with history");
    a.history_hash = checked<uint64_t>(history_hash.cast<py::array>(), "history_hash", {rows, a.history_len});
  }
  a.banned = token_ids(banned, "banned", rows, vocab, true, &a.banned_width);
  py::array_t<int32_t> offsets(rows + 1);
  std::vector<int32_t> tokens;
  std::vector<uint8_t> kinds;
  std::vector<std::pair<int, uint8_t>> marks;
  int32_t* off = offsets.mutable_data();
  off[0] = 0;
  for (py::ssize_t r = 0; r < rows; ++r) {
    collect_marks(a, r, marks);
    for (const auto& [v, kind] : marks) {
      tokens.push_back(v);
      kinds.push_back(kind);
    }
    off[r + 1] = static_cast<int32_t>(tokens.size());
  }
  py::array_t<int32_t> tok(static_cast<py::ssize_t>(tokens.size()));
  py::array_t<uint8_t> kin(static_cast<py::ssize_t>(kinds.size()));
  std::copy(tokens.begin(), tokens.end(), tok.mutable_data());
  std::copy(kinds.begin(), kinds.end(), kin.mutable_data());
  return py::make_tuple(offsets, tok, kin);
}

}  // namespace

void bind_search(py::module_& m) {
  m.def("beam_step_marks", &beam_step_marks, py::arg("rows"), py::arg("vocab"), py::arg("eos_id"),
        py::arg("forbid_eos") = false, py::arg("history") = py::none(), py::arg("history_hash") = py::none(),
        py::arg("repetition_penalty") = 1.0, py::arg("no_repeat_ngram_size") = 0, py::arg("banned") = py::none(),
        "The tokens each row's decoding controls touch, as CSR (offsets, tokens, kinds: 1 penalised, 2 masked), "
        "for the CUDA beam step.");
  m.def("beam_step",
        [](const py::array& scores, const py::array& beam_scores, int eos_id, bool log_probs, bool forbid_eos,
           int num_threads, const py::object& history, const py::object& history_hash, double repetition_penalty,
           int no_repeat_ngram_size, const py::object& banned, const py::object& forced, int candidates) {
          if (py::isinstance<py::array_t<double>>(scores))
            return beam_step_t<double>(scores, beam_scores, eos_id, log_probs, forbid_eos, num_threads, history,
                                       history_hash, repetition_penalty, no_repeat_ngram_size, banned, forced,
                                       candidates);
          return beam_step_t<float>(scores, beam_scores, eos_id, log_probs, forbid_eos, num_threads, history,
                                    history_hash, repetition_penalty, no_repeat_ngram_size, banned, forced,
                                    candidates);
        },
        py::arg("scores"), py::arg("beam_scores"), py::arg("eos_id"), py::arg("log_probs") = false,
        py::arg("forbid_eos") = false, py::arg("num_threads") = 0, py::arg("history") = py::none(),
        py::arg("history_hash") = py::none(), py::arg("repetition_penalty") = 1.0,
        py::arg("no_repeat_ngram_size") = 0, py::arg("banned") = py::none(), py::arg("forced") = py::none(),
        py::arg("candidates") = 0,
        "Fused beam-search step (seqkernels/beam_search.h): returns (cand_score, cand_beam, cand_token, "
        "cand_logp, cand_finished, alive). scores and beam_scores: float32 or float64, same dtype; history, "
        "banned, forced: int32; history_hash: uint64. candidates: K >= 2B candidates per item (0: 2B).");
}
