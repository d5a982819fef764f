# seqkernels_release_cuda_archs(<nvcc> <out-var>): the architecture list a released wheel carries,
# in CMAKE_CUDA_ARCHITECTURES syntax: every "sm_NN" that `nvcc --list-gpu-code` names from 75 up
# as SASS ("NN-real"), and the newest also as PTX ("NN", real + virtual) for GPUs newer than nvcc.
# Asking nvcc (rather than a fixed list) keeps the set right when the toolkit changes.
function(seqkernels_release_cuda_archs nvcc out_var)
  execute_process(COMMAND "${nvcc}" --list-gpu-code OUTPUT_VARIABLE _codes RESULT_VARIABLE _rc
                  ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "SEQKERNELS_CUDA_ARCHS=release: `${nvcc} --list-gpu-code` failed; "
                        "name the architectures instead (e.g. SEQKERNELS_CUDA_ARCHS=90)")
  endif()
  string(REGEX MATCHALL "sm_[0-9]+" _codes "${_codes}")  # plain sm_NN only (not sm_90a, sm_100f)
  set(_numbers "")
  foreach(_code IN LISTS _codes)
    string(REPLACE "sm_" "" _n "${_code}")
    if(_n GREATER_EQUAL 75)
      list(APPEND _numbers "${_n}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _numbers)
  list(SORT _numbers COMPARE NATURAL)
  list(LENGTH _numbers _count)
  if(_count EQUAL 0)
    message(FATAL_ERROR "SEQKERNELS_CUDA_ARCHS=release: ${nvcc} lists no architecture from sm_75 up")
  endif()
  list(POP_BACK _numbers _newest)
  set(_archs "")
  foreach(_n IN LISTS _numbers)
    list(APPEND _archs "${_n}-real")
  endforeach()
  list(APPEND _archs "${_newest}")
  set(${out_var} "${_archs}" PARENT_SCOPE)
endfunction()
