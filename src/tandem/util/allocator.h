// The process's heap for training: a step frees and allocates the same large
// tensors again and again (activations of [batch, 383] floats are 12.5 MB at batch
// 8192). glibc serves blocks above its mmap threshold with fresh mappings and
// trims the heap's free top back to the system, so such a step can fault in and
// zero every page of its large tensors anew each time: measured, 146-154k
// against 204-228k samples/s at batch 8192 (benchmarks/RESULTS.md).
#pragma once

namespace tandem::util {

/// Keeps freed memory in the process for reuse: blocks up to 32 MB (glibc's
/// largest mmap threshold) come from the heap, and the heap's free top is returned
/// to the system only past 1 GiB. Leaves glibc's defaults when the user set them
/// (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, or glibc.malloc tunables in
/// GLIBC_TUNABLES). Does nothing without glibc.
void keep_freed_memory();

}  // namespace tandem::util
