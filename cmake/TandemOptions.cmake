# Resolves TANDEM_WITH_{MPI,HDF5,CUDA,NCCL,TENSORBOARD} (ON/OFF/AUTO) into TANDEM_MPI,
# TANDEM_HDF5, TANDEM_CUDA, TANDEM_NCCL and TANDEM_TENSORBOARD (0/1). An impossible combination stops configure with a clear message.

function(_tandem_resolve name detected out)
  string(TOUPPER "${${name}}" v)
  if(v STREQUAL "AUTO")
    set(r ${detected})
  elseif(v MATCHES "^(ON|1|TRUE|YES)$")
    if(NOT detected)
      message(FATAL_ERROR "${name}=ON, but its dependency was not found")
    endif()
    set(r 1)
  elseif(v MATCHES "^(OFF|0|FALSE|NO)$")
    set(r 0)
  else()
    message(FATAL_ERROR "${name} must be ON, OFF or AUTO, got '${${name}}'")
  endif()
  set(${out} ${r} PARENT_SCOPE)
endfunction()

# MPI
set(_mpi 0)
if(NOT TANDEM_WITH_MPI MATCHES "^(OFF|0|FALSE|NO)$")
  find_package(MPI COMPONENTS C QUIET)
  if(MPI_C_FOUND)
    set(_mpi 1)
  endif()
endif()
_tandem_resolve(TANDEM_WITH_MPI ${_mpi} TANDEM_MPI)

# HDF5 (checkpoints): the C library.
set(_hdf5 0)
if(NOT TANDEM_WITH_HDF5 MATCHES "^(OFF|0|FALSE|NO)$")
  find_package(HDF5 COMPONENTS C QUIET)
  if(HDF5_FOUND)
    set(_hdf5 1)
  endif()
endif()
_tandem_resolve(TANDEM_WITH_HDF5 ${_hdf5} TANDEM_HDF5)
# Checkpoints checksum their datasets with XXH3 (libxxhash's header, compiled in).
if(TANDEM_HDF5)
  find_path(XXHASH_INCLUDE_DIR xxhash.h)
  if(NOT XXHASH_INCLUDE_DIR)
    message(FATAL_ERROR "HDF5 checkpoints need xxhash.h: apt-get install libxxhash-dev "
                        "(launch/install-deps.sh), or configure with -DTANDEM_WITH_HDF5=OFF")
  endif()
endif()

# CUDA: only probed, never required; enable_language(CUDA) happens in kernels/.
set(_cuda 0)
if(NOT TANDEM_WITH_CUDA MATCHES "^(OFF|0|FALSE|NO)$")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(_cuda 1)
  endif()
endif()
_tandem_resolve(TANDEM_WITH_CUDA ${_cuda} TANDEM_CUDA)

# NCCL follows CUDA unless set.
set(_nccl 0)
if(TANDEM_CUDA)
  # NCCL_HOME first (e.g. PyTorch's pip NCCL, which ships libnccl.so.2 alone), then
  # the CUDA toolkit's.
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ENV NCCL_HOME /usr/local/cuda PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 NAMES_PER_DIR HINTS ENV NCCL_HOME /usr/local/cuda
               PATH_SUFFIXES lib lib64)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(_nccl 1)
  endif()
endif()
if(TANDEM_WITH_NCCL MATCHES "^(ON|1|TRUE|YES)$" AND NOT TANDEM_CUDA)
  message(FATAL_ERROR "TANDEM_WITH_NCCL=ON needs TANDEM_WITH_CUDA on (NCCL runs on CUDA devices)")
endif()
_tandem_resolve(TANDEM_WITH_NCCL ${_nccl} TANDEM_NCCL)

# TensorBoard event files: Protocol Buffers (libprotobuf-dev) and protoc
# (protobuf-compiler) generate and serialize src/tandem/tensorboard/events.proto.
set(_tensorboard 0)
if(NOT TANDEM_WITH_TENSORBOARD MATCHES "^(OFF|0|FALSE|NO)$")
  find_package(Protobuf QUIET)
  if(Protobuf_FOUND AND Protobuf_PROTOC_EXECUTABLE)
    set(_tensorboard 1)
  endif()
endif()
_tandem_resolve(TANDEM_WITH_TENSORBOARD ${_tensorboard} TANDEM_TENSORBOARD)
