// Shared by the binding files that read corpora (glove.cpp, word2vec.cpp): the corpus argument
// (a path, a file descriptor or bytes) as a ByteSource, and std::vector -> NumPy without a copy.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "seqkernels/glove.h"

namespace seqkernels {
namespace bindings {

// A corpus argument: a path (str), a file descriptor (int) or a bytes-like object.
struct Corpus {
  std::unique_ptr<glove::ByteSource> source;
  pybind11::buffer_info keep;  // holds the bytes-like object's buffer while the source reads it
};

// Raises the pending Python exception (KeyboardInterrupt) if a signal handler set one.
inline void check_signals() {
  pybind11::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw pybind11::error_already_set();
}

inline Corpus make_corpus(const pybind11::object& corpus) {
  namespace py = pybind11;
  Corpus c;
  if (py::isinstance<py::str>(corpus)) {
    c.source = glove::file_source(corpus.cast<std::string>(), check_signals);
  } else if (py::isinstance<py::int_>(corpus) && !py::isinstance<py::bool_>(corpus)) {
    c.source = glove::fd_source(corpus.cast<int>(), check_signals);
  } else if (py::isinstance<py::buffer>(corpus)) {
    c.keep = corpus.cast<py::buffer>().request();
    SK_CHECK(c.keep.itemsize == 1 && c.keep.ndim <= 1, "corpus: expected a bytes-like object of single bytes");
    c.source = glove::memory_source(static_cast<const char*>(c.keep.ptr), static_cast<size_t>(c.keep.size));
  } else {
    throw py::type_error("corpus: expected a path (str), a file descriptor (int) or bytes, got " +
                         std::string(py::str(py::type::of(corpus).attr("__name__"))));
  }
  return c;
}

// Hands a vector's buffer to NumPy (freed with the array).
template <typename T>
pybind11::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* owned = new std::vector<T>(std::move(v));
  pybind11::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return pybind11::array_t<T>({static_cast<pybind11::ssize_t>(owned->size())}, owned->data(), free_when_done);
}

}  // namespace bindings
}  // namespace seqkernels
