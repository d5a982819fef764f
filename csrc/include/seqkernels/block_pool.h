// Large scratch blocks reused across calls instead of fresh memory from the system.
//
// A fresh multi-megabyte block is new pages: the first write to each 4 KiB page faults and the
// kernel zeroes it. A training step's buffers (a layer's workspace, the backward's dZ) were fresh
// on every call: at B64 H512 T50 an LSTM forward + backward took ~15,000 page faults, 27–50 ms of
// system time on the writing threads (bench/NOTES.md, CPU recurrence v12). Blocks given back here
// are handed out again to requests of the same size class, so steady-state training touches no new
// pages.
//
// Ownership: take() returns a block of at least `bytes` (64-byte aligned, contents undefined) that
// the caller owns until it passes it to give() with the same `bytes`. The pool keeps at most
// kMaxFreeBlocks free blocks and kMaxFreeBytes in all (the oldest go first); release() frees them.
// Thread-safe: a block may be given back on another thread than the one that took it (autograd
// frees a workspace on its own thread).
#pragma once

#include <cstddef>

namespace seqkernels {
namespace block_pool {

constexpr std::size_t kMaxFreeBlocks = 16;
constexpr std::size_t kMaxFreeBytes = std::size_t(1) << 30;

void* take(std::size_t bytes);
void give(void* block, std::size_t bytes);
// Frees every free block; returns the bytes freed.
std::size_t release();
// Bytes held in free blocks now.
std::size_t free_bytes();

}  // namespace block_pool
}  // namespace seqkernels
