// The external sort under co-occurrence counting: large lazily-zeroed buffers, unnamed temporary
// files, sorted runs (in memory or on disk, indexed by key), a buffered run writer, an LSD radix
// sort, run cursors and a k-way merge that sums equal keys in a fixed (rank) order.
//
// Nothing here knows about words: a record is a 64-bit key and a double. The local cooccur
// command (cooccur.cpp) and the distributed map and reduce tasks call the same pieces.
// Internal to csrc/glove.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <sys/mman.h>

namespace seqkernels {
namespace glove {

// A sorted-run record: key = (word1 << bits) | word2 with 1-based ids.
struct Pair {
  uint64_t key;
  double value;
};

// Memory from mmap, zeroed lazily by the kernel on first touch, so untouched parts cost neither
// time nor RSS. (Transparent huge pages were tried: on this VM kind the kernel's compaction for a
// fresh huge page made first touch 5x slower than 4 KiB pages, so none are requested.)
template <typename T>
class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t n) : n_(n) {
    if (n == 0) return;
    bytes_ = n * sizeof(T);
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
  }
  ~LargeBuffer() { release(); }
  LargeBuffer(LargeBuffer&& o) noexcept { swap(o); }
  LargeBuffer& operator=(LargeBuffer&& o) noexcept {
    release();
    swap(o);
    return *this;
  }
  void release() {
    if (data_) ::munmap(data_, bytes_);
    data_ = nullptr;
    n_ = bytes_ = 0;
  }
  T* data() const { return data_; }
  size_t size() const { return n_; }

  // Maps every page writable now. A table whose first access is `+=` would otherwise map the
  // shared zero page on the read and copy it on the write, and that copy flushes the TLBs of all
  // threads (an inter-processor interrupt, a VM exit here): 13% of counting time when measured.
  void populate() {
    if (!data_) return;
#ifdef MADV_POPULATE_WRITE
    if (::madvise(data_, bytes_, MADV_POPULATE_WRITE) == 0) return;
#endif
    volatile char* p = reinterpret_cast<volatile char*>(data_);  // older kernels: write each page
    for (size_t i = 0; i < bytes_; i += 4096) p[i] = 0;
  }

 private:
  void swap(LargeBuffer& o) {
    std::swap(data_, o.data_);
    std::swap(n_, o.n_);
    std::swap(bytes_, o.bytes_);
  }
  T* data_ = nullptr;
  size_t n_ = 0, bytes_ = 0;
};

// A temporary file without a name: created with O_TMPFILE where the file system supports it
// (cheapest, nothing to unlink), else created and unlinked at once. Either way nothing is left
// behind, even if the process is killed; the descriptor keeps the data until it is closed.
class TempFile {
 public:
  TempFile(const std::string& dir, const std::string& prefix);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void append(const void* data, size_t bytes);
  void read_at(void* data, size_t bytes, int64_t offset) const;
  int64_t size() const;

  // An existing file (a run another process wrote), opened for reading; closed, not removed.
  static std::unique_ptr<TempFile> open_existing(const std::string& path);

 private:
  TempFile() = default;
  int fd_ = -1;
};

// A sorted, summed run of pairs, in memory (borrowed) or in a temporary file, with the key of every
// kIndexStride-th record so that a key range can be found without reading the whole run.
//
// Files written by RunWriter are compact: blocks of kIndexStride records (the last one shorter),
// block k at byte block_offsets[k] (one more offset marks the end), each a flag byte and then per
// record the key as a varint delta from the previous key of the block (the first from 0) and the
// value as a varint when every value of the block is an integer below 2^53 (the scaled sums of
// cooccur are), else as its 8 raw bytes. Other files (open_existing) hold raw 16-byte pairs.
struct SortedRun {
  static constexpr int64_t kIndexStride = 4096;
  const Pair* memory = nullptr;
  std::unique_ptr<TempFile> file;
  int64_t records = 0;
  int64_t rank = 0;  // merge order of equal keys: runs are summed in rank order
  std::vector<uint64_t> index;
  bool compact = false;
  std::vector<int64_t> block_offsets;

  void read(Pair* dst, int64_t pos, int64_t n) const {
    if (memory) std::memcpy(dst, memory + pos, static_cast<size_t>(n) * sizeof(Pair));
    else if (compact) read_compact(dst, pos, n);
    else file->read_at(dst, static_cast<size_t>(n) * sizeof(Pair), pos * static_cast<int64_t>(sizeof(Pair)));
  }
  void read_compact(Pair* dst, int64_t pos, int64_t n) const;
  // Bytes of the file (0 in memory).
  int64_t disk_bytes() const {
    return memory ? 0 : compact ? block_offsets.back() : records * static_cast<int64_t>(sizeof(Pair));
  }
  // First position whose key is >= key.
  int64_t lower_bound(uint64_t key, std::vector<Pair>& scratch) const;
};

// A run over n sorted pairs held by the caller (borrowed; they must outlive the run).
SortedRun memory_run(const Pair* data, int64_t n, int64_t rank);

// Writes sorted pairs (unique keys) to a new temporary file as a compact run (see SortedRun),
// building its index on the way; encoded bytes are written out whenever about buffer_records
// pairs' worth (at least 64 KiB) have collected.
class RunWriter {
 public:
  RunWriter(const std::string& dir, const std::string& prefix, size_t buffer_records, int64_t rank)
      : flush_bytes_(std::max<size_t>(buffer_records * sizeof(Pair), size_t{1} << 16)) {
    run_.file = std::make_unique<TempFile>(dir, prefix);
    run_.rank = rank;
    run_.compact = true;
    run_.block_offsets.push_back(0);
    block_.reserve(SortedRun::kIndexStride);
  }
  void put(uint64_t key, double value) {
    if (block_.empty()) run_.index.push_back(key);
    block_.push_back({key, value});
    ++run_.records;
    if (block_.size() == static_cast<size_t>(SortedRun::kIndexStride)) end_block();
  }
  void put_all(const Pair* p, size_t n) {
    for (size_t i = 0; i < n; ++i) put(p[i].key, p[i].value);
  }
  SortedRun finish();

 private:
  void end_block();
  size_t flush_bytes_;
  std::vector<Pair> block_;
  std::vector<uint8_t> bytes_;  // encoded, not yet written
  int64_t written_ = 0;
  SortedRun run_;
};

// LSD radix sort of n pairs by key bits [first_bit, key_bits); stable, so pairs equal in those bits
// keep their order (a run sorted by (a, b) and transposed to (b, a) needs sorting by b only).
void radix_sort(Pair* a, Pair* tmp, size_t n, int key_bits, int first_bit = 0);

// Sums equal neighbours of a sorted buffer in place; returns the new length.
size_t reduce_sorted(Pair* a, size_t n);

// A cursor over positions [begin, end) of a sorted run (disk runs are read through a buffer).
class RunCursor {
 public:
  RunCursor(const SortedRun& run, int64_t begin, int64_t end, size_t buffer_records)
      : run_(&run), next_(begin), end_pos_(end), rank_(run.rank) {
    if (run.memory) {
      cur_ = run.memory + begin;
      end_ = run.memory + end;
      next_ = end;
    } else {
      buf_.resize(std::max<size_t>(buffer_records, 1));
      refill();
    }
  }
  bool valid() const { return cur_ < end_; }
  const Pair& head() const { return *cur_; }
  int64_t rank() const { return rank_; }
  void advance() {
    if (++cur_ == end_ && next_ < end_pos_) refill();
  }

 private:
  void refill() {
    const int64_t n = std::min<int64_t>(end_pos_ - next_, static_cast<int64_t>(buf_.size()));
    if (n <= 0) return;
    run_->read(buf_.data(), next_, n);
    next_ += n;
    cur_ = buf_.data();
    end_ = cur_ + n;
  }
  const SortedRun* run_;
  const Pair* cur_ = nullptr;
  const Pair* end_ = nullptr;
  int64_t next_, end_pos_, rank_;
  std::vector<Pair> buf_;
};

// K-way merge: emit(key, value) once per key in key order, equal keys summed in rank order.
template <typename Emit>
void merge_cursors(std::vector<RunCursor>& cursors, Emit&& emit) {
  auto after = [&](int a, int b) {  // heap order: smallest (key, rank) on top
    const uint64_t ka = cursors[a].head().key, kb = cursors[b].head().key;
    return ka != kb ? ka > kb : cursors[a].rank() > cursors[b].rank();
  };
  std::vector<int> heap;
  for (int i = 0; i < static_cast<int>(cursors.size()); ++i)
    if (cursors[i].valid()) heap.push_back(i);
  std::make_heap(heap.begin(), heap.end(), after);
  bool have = false;
  uint64_t key = 0;
  double value = 0;
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), after);
    RunCursor& c = cursors[heap.back()];
    const Pair& p = c.head();
    if (have && p.key == key) {
      value += p.value;
    } else {
      if (have) emit(key, value);
      key = p.key;
      value = p.value;
      have = true;
    }
    c.advance();
    if (c.valid()) std::push_heap(heap.begin(), heap.end(), after);
    else heap.pop_back();
  }
  if (have) emit(key, value);
}

// Collects exceptions thrown inside parallel loops (they must not escape an OpenMP region).
class FirstFailure {
 public:
  void record() {
    std::lock_guard<std::mutex> lock(m_);
    if (!failure_) failure_ = std::current_exception();
  }
  bool failed() const {
    std::lock_guard<std::mutex> lock(m_);
    return static_cast<bool>(failure_);
  }
  void rethrow() {
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  mutable std::mutex m_;
  std::exception_ptr failure_;
};


// Hierarchical merge: while more than fan_in runs are on disk, groups of fan_in consecutive runs
// (in rank order) become one run each, groups in parallel on `threads` threads, each cursor
// reading through a buffer of `reader_records`. Returns the number of passes.
int64_t merge_to_fan_in(std::vector<SortedRun>& disk_runs, size_t fan_in, size_t reader_records, int threads,
                        const std::string& temp_dir, const std::string& prefix);

}  // namespace glove
}  // namespace seqkernels
