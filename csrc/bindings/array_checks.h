// Array checks shared by the pybind11 binding files: no call from Python reaches a kernel with a
// pointer into an array of the wrong dtype, shape or layout.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "seqkernels/common.h"

namespace seqkernels {
namespace bindings {

inline std::string shape_str(const pybind11::array& a) {
  std::string s = "(";
  for (pybind11::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Raw pointer into a C-contiguous array of element type T and exactly `shape`.
template <typename T>
T* checked(const pybind11::array& a, const char* name, std::vector<pybind11::ssize_t> shape, bool writable = false) {
  // Equivalence, not identity: a deep-copied or unpickled dtype is a different object of the same type.
  SK_CHECK(pybind11::isinstance<pybind11::array_t<T>>(a), name << ": expected dtype "
                                                        << std::string(pybind11::str(pybind11::dtype::of<T>()))
                                                        << ", got " << std::string(pybind11::str(a.dtype())));
  SK_CHECK(a.flags() & pybind11::array::c_style, name << ": expected a C-contiguous array");
  SK_CHECK(!writable || a.writeable(), name << ": expected a writable array");
  bool same = a.ndim() == static_cast<pybind11::ssize_t>(shape.size());
  for (size_t i = 0; same && i < shape.size(); ++i) same = a.shape(i) == shape[i];
  std::string want;
  for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
  SK_CHECK(same, name << ": expected shape (" << want << (shape.size() == 1 ? ",)" : ")") << ", got "
                      << shape_str(a));
  return static_cast<T*>(const_cast<void*>(a.data()));
}

}  // namespace bindings
}  // namespace seqkernels
