#include "seqkernels/block_pool.h"

#include <algorithm>
#include <deque>
#include <mutex>
#include <new>

namespace seqkernels {
namespace block_pool {
namespace {

// Sizes are rounded up to a class (a multiple of 1/8 of their power of two), so a block serves
// the same request and its near neighbours, never one much smaller (which would pin a large block).
std::size_t size_class(std::size_t bytes) {
  std::size_t pow2 = 4096;
  while (pow2 < bytes) pow2 <<= 1;
  const std::size_t step = std::max<std::size_t>(pow2 / 8, 4096);
  return (bytes + step - 1) / step * step;
}

struct Free {
  void* block;
  std::size_t size;  // its class
};

struct Pool {
  std::mutex mutex;
  std::deque<Free> blocks;  // oldest first
  std::size_t bytes = 0;
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: blocks may come back during interpreter teardown
  return *p;
}

}  // namespace

void* take(std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    for (auto it = p.blocks.begin(); it != p.blocks.end(); ++it)
      if (it->size == size) {
        void* block = it->block;
        p.bytes -= size;
        p.blocks.erase(it);
        return block;
      }
  }
  return ::operator new(size, std::align_val_t(64));
}

void give(void* block, std::size_t bytes) {
  if (block == nullptr) return;
  const std::size_t size = size_class(bytes);
  std::deque<Free> evicted;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (size <= kMaxFreeBytes) {
      p.blocks.push_back({block, size});
      p.bytes += size;
      block = nullptr;
      while (p.blocks.size() > kMaxFreeBlocks || p.bytes > kMaxFreeBytes) {
        evicted.push_back(p.blocks.front());
        p.bytes -= p.blocks.front().size;
        p.blocks.pop_front();
      }
    }
  }
  if (block) ::operator delete(block, std::align_val_t(64));
  for (const Free& f : evicted) ::operator delete(f.block, std::align_val_t(64));
}

std::size_t release() {
  std::deque<Free> all;
  std::size_t bytes;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    all.swap(p.blocks);
    bytes = p.bytes;
    p.bytes = 0;
  }
  for (const Free& f : all) ::operator delete(f.block, std::align_val_t(64));
  return bytes;
}

std::size_t free_bytes() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return p.bytes;
}

}  // namespace block_pool
}  // namespace seqkernels
