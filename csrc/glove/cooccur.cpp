// Co-occurrence counting (Stanford cooccur) in bounded memory.
//
// Per block of the corpus:
//   1. threads tokenize slices of the block into word ids (1-based; 0 marks a line break; tokens
//      outside the vocabulary are dropped, so they take no position);
//   2. the ids are laid out after the last <= window ids of the line still open at the end of the
//      previous block (the "history"), so windows run across block and slice borders;
//   3. threads split the target positions; each adds its pairs to its own dense table (Stanford's
//      layout: cell (i, j) when j <= max_product / i, which holds the frequent pairs) or else to its
//      own pair buffer, which, when full, is radix-sorted, summed by key and spilled to an
//      (already unlinked) temporary file as one sorted run.
// At the end the remaining buffers become in-memory runs, disk runs are merged in groups of at most
// `max_open_runs` until that many remain (so any number of runs works), and one k-way merge,
// interleaved row by row with the dense tables, writes the records in (word1, word2) order.
//
// Determinism: the weights are scaled to integers (see weight_scale), so for windows up to 22 the
// sums are exact and the output is bit-identical for every thread count and memory plan. Beyond
// that, a fixed thread count and memory plan still give the same bits run to run (equal keys are
// summed in run order, dense tables in thread order).
#include <omp.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>

#include "text.h"

namespace seqkernels {
namespace glove {
namespace {

constexpr int64_t kMinRunRecords = 1024;   // smallest pair buffer per thread that we accept
constexpr double kDenseShare = 0.5;        // of the free budget, at most, for the dense tables
constexpr double kBytesPerToken = 6.0;     // English text with one separator per token
constexpr int64_t kParallelMinIds = 1 << 15;  // below this, one thread runs all slices of a phase

std::string errno_text() { return std::strerror(errno); }

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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
  TempFile(const std::string& dir, const std::string& prefix) {
#ifdef O_TMPFILE
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (fd_ < 0) {
      std::string templ = dir + "/" + prefix + "-XXXXXX";
      fd_ = ::mkostemp(templ.data(), O_CLOEXEC);
      if (fd_ < 0) throw std::runtime_error("cannot create a temporary file in '" + dir + "': " + errno_text());
      ::unlink(templ.c_str());
    }
  }
  ~TempFile() { ::close(fd_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void append(const void* data, size_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t put = ::write(fd_, p, bytes);
      if (put < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("writing a temporary run file failed (is the disk full?): " + errno_text());
      }
      p += put;
      bytes -= static_cast<size_t>(put);
    }
  }
  void read_at(void* data, size_t bytes, int64_t offset) const {
    char* p = static_cast<char*>(data);
    while (bytes > 0) {
      const ssize_t got = ::pread(fd_, p, bytes, offset);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) throw std::runtime_error("reading a temporary run file failed: " + errno_text());
      p += got;
      bytes -= static_cast<size_t>(got);
      offset += got;
    }
  }

 private:
  int fd_ = -1;
};

// A sorted, summed run of pairs, in memory (borrowed) or in a temporary file, with the key of every
// kIndexStride-th record so that a key range can be found without reading the whole run.
struct SortedRun {
  static constexpr int64_t kIndexStride = 4096;
  const Pair* memory = nullptr;
  std::unique_ptr<TempFile> file;
  int64_t records = 0;
  int64_t rank = 0;  // merge order of equal keys: runs are summed in rank order
  std::vector<uint64_t> index;

  void read(Pair* dst, int64_t pos, int64_t n) const {
    if (memory) std::memcpy(dst, memory + pos, static_cast<size_t>(n) * sizeof(Pair));
    else file->read_at(dst, static_cast<size_t>(n) * sizeof(Pair), pos * static_cast<int64_t>(sizeof(Pair)));
  }
  // First position whose key is >= key.
  int64_t lower_bound(uint64_t key, std::vector<Pair>& scratch) const {
    const auto it = std::upper_bound(index.begin(), index.end(), key);
    if (it == index.begin()) return 0;  // index[0] (the first key) is already > key
    const int64_t block = (it - index.begin()) - 1;  // index[block] <= key
    const int64_t lo = block * kIndexStride, n = std::min(kIndexStride, records - lo);
    const Pair* p;
    if (memory) {
      p = memory + lo;
    } else {
      scratch.resize(static_cast<size_t>(n));
      read(scratch.data(), lo, n);
      p = scratch.data();
    }
    return lo + (std::lower_bound(p, p + n, key, [](const Pair& a, uint64_t k) { return a.key < k; }) - p);
  }
};

SortedRun memory_run(const Pair* data, int64_t n, int64_t rank) {
  SortedRun r;
  r.memory = data;
  r.records = n;
  r.rank = rank;
  for (int64_t i = 0; i < n; i += SortedRun::kIndexStride) r.index.push_back(data[i].key);
  return r;
}

// Writes pairs to a new temporary file through a buffer, building the run's index on the way.
class RunWriter {
 public:
  RunWriter(const std::string& dir, const std::string& prefix, size_t buffer_records, int64_t rank)
      : buffer_records_(std::max<size_t>(buffer_records, 1)) {
    run_.file = std::make_unique<TempFile>(dir, prefix);
    run_.rank = rank;
    buf_.reserve(buffer_records_);
  }
  void put(uint64_t key, double value) {
    if (run_.records % SortedRun::kIndexStride == 0) run_.index.push_back(key);
    ++run_.records;
    buf_.push_back({key, value});
    if (buf_.size() == buffer_records_) flush();
  }
  void put_all(const Pair* p, size_t n) {
    const int64_t stride = SortedRun::kIndexStride, first = (run_.records + stride - 1) / stride * stride;
    for (int64_t k = first; k < run_.records + static_cast<int64_t>(n); k += stride)
      run_.index.push_back(p[k - run_.records].key);
    flush();
    run_.file->append(p, n * sizeof(Pair));
    run_.records += static_cast<int64_t>(n);
  }
  SortedRun finish() {
    flush();
    return std::move(run_);
  }

 private:
  void flush() {
    if (!buf_.empty()) run_.file->append(buf_.data(), buf_.size() * sizeof(Pair));
    buf_.clear();
  }
  size_t buffer_records_;
  std::vector<Pair> buf_;
  SortedRun run_;
};

// Allocation bookkeeping for the stats (the budget itself is planned up front).
struct MemoryTracker {
  int64_t current = 0, peak = 0;
  void add(int64_t b) { current += b; peak = std::max(peak, current); }
  void sub(int64_t b) { current -= b; }
};

// LSD radix sort of n pairs by their low `key_bits` bits; stable, so equal keys keep buffer order.
void radix_sort(Pair* a, Pair* tmp, size_t n, int key_bits) {
  if (n < 2 || key_bits <= 0) return;
  const int passes = (key_bits + 10) / 11;
  const int digit = (key_bits + passes - 1) / passes;
  const size_t buckets = size_t{1} << digit;
  const uint64_t mask = buckets - 1;
  std::vector<size_t> counts(buckets * passes, 0);
  for (size_t i = 0; i < n; ++i)
    for (int p = 0; p < passes; ++p) ++counts[p * buckets + ((a[i].key >> (p * digit)) & mask)];
  Pair* src = a;
  Pair* dst = tmp;
  for (int p = 0; p < passes; ++p) {
    size_t* c = counts.data() + p * buckets;
    if (c[(src[0].key >> (p * digit)) & mask] == n) continue;  // every key has this digit
    size_t sum = 0;
    for (size_t b = 0; b < buckets; ++b) {
      const size_t k = c[b];
      c[b] = sum;
      sum += k;
    }
    const int shift = p * digit;
    for (size_t i = 0; i < n; ++i) dst[c[(src[i].key >> shift) & mask]++] = src[i];
    std::swap(src, dst);
  }
  if (src != a) std::memcpy(a, src, n * sizeof(Pair));
}

// Sums equal neighbours of a sorted buffer in place; returns the new length.
size_t reduce_sorted(Pair* a, size_t n) {
  if (n == 0) return 0;
  size_t out = 0;
  for (size_t i = 1; i < n; ++i) {
    if (a[i].key == a[out].key) a[out].value += a[i].value;
    else a[++out] = a[i];
  }
  return out + 1;
}

// lcm(1, ..., window) when it is at most 2^32 (window <= 22), else 1 (see the use).
double weight_scale(int window) {
  uint64_t l = 1;
  for (uint64_t d = 2; d <= static_cast<uint64_t>(window); ++d) {
    uint64_t a = l, b = d;
    while (b) std::swap(a %= b, b);  // a = gcd(l, d)
    l = l / a * d;
    if (l > (uint64_t{1} << 32)) return 1.0;
  }
  return static_cast<double>(l);
}

// Row r of a dense table holds columns 1..limit (cell (r, c) at offset + c), limit = min(V, P / r).
struct RowInfo {
  int64_t offset;
  int64_t limit;
};

int64_t dense_cells(int64_t V, int64_t max_product) {
  int64_t cells = 0;
  for (int64_t r = 1; r <= V; ++r) {
    const int64_t lim = std::min(V, max_product / r);
    if (lim == 0) break;
    cells += lim;
  }
  return cells;
}

// The largest max_product whose table has at most `max_cells` cells (V*V when the full matrix fits).
int64_t max_product_for(int64_t V, int64_t max_cells) {
  if (dense_cells(V, V * V) <= max_cells) return V * V;
  int64_t lo = 0, hi = V * V;  // dense_cells(lo) <= max_cells < dense_cells(hi)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (dense_cells(V, mid) <= max_cells ? lo : hi) = mid;
  }
  return lo;
}

// Everything one thread owns while counting.
class ThreadCounter {
 public:
  ThreadCounter(int thread, const RowInfo* rows, int64_t cells, size_t capacity, int key_bits)
      : thread_(thread), rows_(rows), key_bits_(key_bits), dense_(static_cast<size_t>(cells)), buf_(capacity),
        scratch_(capacity) {}

  template <bool Symmetric>
  void count(const int32_t* ids, int64_t lo, int64_t hi, int window, const double* weight,
             const std::string& temp_dir, const std::string& prefix, std::vector<SortedRun>& runs, std::mutex& m) {
    const RowInfo* rows = rows_;
    double* dense = dense_.data();
    Pair* buf = buf_.data();
    const size_t cap = buf_.size();
    size_t n = used_;
    const int bits = key_bits_ / 2;
    auto push = [&](int64_t a, int64_t b, double v) {
      buf[n].key = (static_cast<uint64_t>(a) << bits) | static_cast<uint64_t>(b);
      buf[n].value = v;
      if (++n == cap) {
        used_ = n;
        spill(temp_dir, prefix, runs, m);
        n = 0;
      }
    };
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t right = ids[p];
      if (right == 0) continue;
      const RowInfo rr = rows[right];
      const int64_t stop = std::max<int64_t>(0, p - window);
      for (int64_t q = p - 1, d = 1; q >= stop; --q, ++d) {
        const int64_t left = ids[q];
        if (left == 0) break;  // the line started after q
        const double v = weight[d];
        const RowInfo& lr = rows[left];
        if (right <= lr.limit) dense[lr.offset + right] += v;
        else push(left, right, v);
        if (Symmetric) {
          if (left <= rr.limit) dense[rr.offset + left] += v;
          else push(right, left, v);
        }
      }
    }
    used_ = n;
  }

  // Sorts and sums the buffer, which stays here as an in-memory run; frees the sort scratch.
  void finish_buffer() {
    radix_sort(buf_.data(), scratch_.data(), used_, key_bits_);
    used_ = reduce_sorted(buf_.data(), used_);
    scratch_.release();
  }

  SortedRun memory_run_of_buffer() const { return memory_run(buf_.data(), static_cast<int64_t>(used_), (int64_t{1} << 62) + thread_); }
  const double* dense() const { return dense_.data(); }
  int64_t spilled() const { return seq_; }

 private:
  void spill(const std::string& temp_dir, const std::string& prefix, std::vector<SortedRun>& runs, std::mutex& m) {
    radix_sort(buf_.data(), scratch_.data(), used_, key_bits_);
    const size_t n = reduce_sorted(buf_.data(), used_);
    RunWriter writer(temp_dir, prefix, 0, seq_ * 4096 + thread_);
    writer.put_all(buf_.data(), n);
    SortedRun run = writer.finish();
    {
      std::lock_guard<std::mutex> lock(m);
      runs.push_back(std::move(run));
    }
    ++seq_;
    used_ = 0;
  }

  int thread_;
  const RowInfo* rows_;
  int key_bits_;
  LargeBuffer<double> dense_;
  LargeBuffer<Pair> buf_, scratch_;
  size_t used_ = 0;
  int64_t seq_ = 0;
};

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

void check_vocabulary_word(const std::string& w, size_t index) {
  SK_CHECK(!w.empty(), "vocabulary: word " << index << " is empty");
  SK_CHECK(w.size() <= static_cast<size_t>(kMaxTokenBytes),
           "vocabulary: word " << index << " is longer than " << kMaxTokenBytes << " bytes, so no token can match it");
  SK_CHECK(w.find_first_of(" \t\n\r") == std::string::npos,
           "vocabulary: word " << index << " ('" << w << "') contains a blank, tab, newline or carriage return, "
                               << "so no token can match it");
  SK_CHECK(w != "<unk>", "vocabulary: word " << index << " is the reserved token <unk>");
}

}  // namespace

CooccurStats count_cooccurrences(ByteSource& corpus, const std::vector<std::string>& words,
                                 const CooccurOptions& o, RecordSink& sink) {
  SK_CHECK(o.window_size >= 1, "window_size: expected >= 1, got " << o.window_size);
  SK_CHECK(std::isfinite(o.memory_gb) && o.memory_gb > 0, "memory: expected a positive number of GB, got " << o.memory_gb);
  SK_CHECK(o.max_product >= -1, "max_product: expected >= 0 (or -1 to derive it from memory), got " << o.max_product);
  SK_CHECK(o.overflow_length == -1 || o.overflow_length >= 1,
           "overflow_length: expected >= 1 (or -1 to derive it from memory), got " << o.overflow_length);
  SK_CHECK(o.max_open_runs == 0 || o.max_open_runs >= 2,
           "max_open_runs: expected >= 2 (or 0 to derive it from memory), got " << o.max_open_runs);
  const int64_t V = static_cast<int64_t>(words.size());
  SK_CHECK(V >= 1, "vocabulary: is empty");
  SK_CHECK(V < (int64_t{1} << 31) - 1, "vocabulary: too many words (" << V << ")");
  const int T = detail::resolve_threads(o.num_threads);
  const int window = o.window_size;

  CooccurStats stats;
  stats.num_threads = T;
  MemoryTracker mem;

  detail::WordTable table(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) {
    check_vocabulary_word(words[i], static_cast<size_t>(i));
    int64_t& id = table.upsert(words[i].data(), words[i].size());
    SK_CHECK(id == 0, "vocabulary: word " << i << " ('" << words[i] << "') repeats word " << id - 1);
    id = i + 1;
  }

  // ---- memory plan ----
  const int64_t budget = static_cast<int64_t>(o.memory_gb * 1073741824.0);
  stats.budget_bytes = budget;
  const size_t block = o.block_bytes ? o.block_bytes : detail::default_block_bytes(budget);
  // Block buffer, plus at worst one id per two bytes in the slices and again in the joined array.
  const int64_t io_bytes = static_cast<int64_t>(block + kMaxTokenBytes + 1) + 4 * static_cast<int64_t>(block);
  const int64_t fixed = static_cast<int64_t>(table.bytes()) + (V + 1) * static_cast<int64_t>(sizeof(RowInfo)) + io_bytes;
  const int64_t per_record = 2 * static_cast<int64_t>(sizeof(Pair));  // buffer + sort scratch
  const int64_t avail = budget - fixed;
  auto gb = [](int64_t b) { return static_cast<double>(b) / 1073741824.0; };
  SK_CHECK(avail >= T * kMinRunRecords * per_record,
           "memory: " << o.memory_gb << " GB is too small to hold one run: " << V << " words and " << T
                      << " threads need at least " << gb(fixed + T * kMinRunRecords * per_record)
                      << " GB (vocabulary table, I/O blocks and one " << kMinRunRecords << "-record buffer per thread)");

  int64_t max_product, cells;
  if (o.max_product >= 0) {
    max_product = std::min(o.max_product, V * V);
    cells = dense_cells(V, max_product);
  } else {
    const int64_t share = static_cast<int64_t>(kDenseShare * static_cast<double>(avail - T * kMinRunRecords * per_record));
    max_product = max_product_for(V, share / T / static_cast<int64_t>(sizeof(double)));
    if (corpus.size() >= 0) {
      // A dense cell pays off only if it is likely to be hit: with Zipf-distributed words, cell
      // (i, j) expects about pairs / (i * j * H^2) hits (H = ln V + 0.58), so cells with
      // i * j > pairs / H^2 are cheaper as sparse pairs (no table pages to touch and scan).
      // Measured on a 12M-token corpus: this P is ~2x faster than a table filling half of 1 GB.
      const double tokens = static_cast<double>(corpus.size()) / kBytesPerToken;
      const double pairs = tokens * window * (o.symmetric ? 2.0 : 1.0);
      const double H = std::log(static_cast<double>(V)) + 0.5772;
      max_product = std::min(max_product, std::max<int64_t>(V, static_cast<int64_t>(pairs / (H * H))));
    }
    cells = dense_cells(V, max_product);
  }
  const int64_t dense_bytes = T * cells * static_cast<int64_t>(sizeof(double));
  int64_t capacity;
  if (o.overflow_length > 0) {
    capacity = o.overflow_length;
  } else {
    capacity = std::max<int64_t>(kMinRunRecords, (avail - dense_bytes) / (T * per_record));
    // A buffer larger than all the pairs a full dense table would leave out is never needed.
    if (cells == dense_cells(V, V * V)) capacity = kMinRunRecords;
  }
  SK_CHECK(dense_bytes + T * capacity * per_record <= avail,
           "memory: " << o.memory_gb << " GB cannot hold the requested tables: max_product " << max_product
                      << " needs " << gb(dense_bytes) << " GB of dense tables and overflow_length " << capacity
                      << " needs " << gb(T * capacity * per_record) << " GB of pair buffers for " << T
                      << " threads, but only " << gb(avail) << " GB are left after the vocabulary and I/O buffers");
  stats.max_product = max_product;
  stats.overflow_length = capacity;
  mem.add(fixed + dense_bytes + T * capacity * per_record);

  std::vector<RowInfo> rows(static_cast<size_t>(V) + 1, RowInfo{0, 0});
  {
    int64_t offset = 0;
    for (int64_t r = 1; r <= V; ++r) {
      const int64_t lim = std::min(V, max_product / r);
      rows[r] = {offset - 1, lim};  // cell (r, c) at offset - 1 + c
      offset += lim;
    }
  }
  int bits = 1;
  while ((int64_t{1} << bits) <= V) ++bits;
  const int key_bits = 2 * bits;

  std::vector<std::unique_ptr<ThreadCounter>> counters;
  for (int t = 0; t < T; ++t)
    counters.push_back(std::make_unique<ThreadCounter>(t, rows.data(), cells, static_cast<size_t>(capacity), key_bits));

  // Exact counting: with S = lcm(1..window), the weights S/d are integers, and sums of integers
  // below 2^53 are exact in double whatever the order of the additions. So every thread count,
  // memory plan and device gives the same bits: the exact sum of the 1/d, rounded once at the end.
  // (Larger sums - beyond ~10^9 tokens at window 20, ~10^11 at window 10 - round like any float
  // sum.) Windows above 22 make S too large; they add 1/d directly.
  const double scale = o.distance_weighting ? weight_scale(window) : 1.0;
  std::vector<double> weight(static_cast<size_t>(window) + 1);
  for (int d = 1; d <= window; ++d) weight[d] = o.distance_weighting ? scale / static_cast<double>(d) : 1.0;

  const std::string temp_dir = o.temp_dir.empty() ? (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") : o.temp_dir;
  std::vector<SortedRun> disk_runs;
  std::mutex runs_mutex;
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto record_failure = [&] {
    std::lock_guard<std::mutex> lock(failure_mutex);
    if (!failure) failure = std::current_exception();
  };

  // ---- counting ----
  std::vector<std::vector<int32_t>> slice_ids(T);
  std::vector<std::string> scratch(T);
  std::vector<int64_t> slice_tokens(T, 0);
  std::vector<int32_t> ids, history;
  detail::BlockReader reader(corpus, block);
  const char* data;
  size_t size;
  double clock = now_seconds();
  while (reader.next(data, size)) {
    const std::vector<size_t> bounds = detail::split_at_separators(data, size, T);
#pragma omp parallel for schedule(static, 1) num_threads(T) if (size >= detail::kParallelMinBytes)
    for (int t = 0; t < T; ++t) {
      std::vector<int32_t>& out = slice_ids[t];
      out.clear();
      int64_t n = 0;
      detail::tokenize(
          data + bounds[t], data + bounds[t + 1], scratch[t],
          [&](const char* p, size_t len) {
            ++n;
            const int64_t id = table.find(p, len, 0);
            if (id > 0) out.push_back(static_cast<int32_t>(id));
          },
          [&] {
            if (out.empty() || out.back() != 0) out.push_back(0);
          });
      slice_tokens[t] += n;
    }
    // ids = history of the open line, then every slice's ids.
    std::vector<size_t> at(T + 1, history.size());
    for (int t = 0; t < T; ++t) at[t + 1] = at[t] + slice_ids[t].size();
    ids.resize(at[T]);
    std::copy(history.begin(), history.end(), ids.begin());
    for (int t = 0; t < T; ++t) {
      std::copy(slice_ids[t].begin(), slice_ids[t].end(), ids.begin() + at[t]);
      for (const int32_t id : slice_ids[t]) stats.kept_tokens += id != 0;
    }

    const int64_t first = static_cast<int64_t>(history.size()), total = static_cast<int64_t>(ids.size());
    const double counting = now_seconds();
    stats.seconds_tokenize += counting - clock;
#pragma omp parallel for schedule(static, 1) num_threads(T) if (total - first >= kParallelMinIds)
    for (int t = 0; t < T; ++t) {
      if (failure) continue;
      const int64_t lo = first + (total - first) * t / T, hi = first + (total - first) * (t + 1) / T;
      try {
        if (o.symmetric)
          counters[t]->count<true>(ids.data(), lo, hi, window, weight.data(), temp_dir, o.temp_prefix, disk_runs, runs_mutex);
        else
          counters[t]->count<false>(ids.data(), lo, hi, window, weight.data(), temp_dir, o.temp_prefix, disk_runs, runs_mutex);
      } catch (...) {
        record_failure();
      }
    }
    if (failure) std::rethrow_exception(failure);
    clock = now_seconds();
    stats.seconds_count += clock - counting;

    // The open line's last <= window ids carry over to the next block.
    int64_t h = total;
    while (h > 0 && total - h < window && ids[h - 1] != 0) --h;
    history.assign(ids.begin() + h, ids.end());
    if (o.progress) o.progress("cooccur", reader.consumed(), corpus.size());
  }
  for (int t = 0; t < T; ++t) stats.tokens += slice_tokens[t];

  // ---- finish the buffers and merge ----
  clock = now_seconds();
#pragma omp parallel for schedule(static, 1) num_threads(T)
  for (int t = 0; t < T; ++t) counters[t]->finish_buffer();
  mem.sub(T * capacity * static_cast<int64_t>(sizeof(Pair)));  // sort scratch given back
  for (int t = 0; t < T; ++t) stats.runs_spilled += counters[t]->spilled();

  // The merge phase lives in the space the sort scratch gave back (capacity pairs per thread):
  // each thread's cursor buffers and chunk of output.
  const size_t reader_records = static_cast<size_t>(std::clamp<int64_t>(capacity / 64, 256, 1 << 16));
  const size_t fan_in = o.max_open_runs > 0
                            ? static_cast<size_t>(o.max_open_runs)
                            : static_cast<size_t>(std::clamp<int64_t>(capacity / static_cast<int64_t>(reader_records) - 1, 2, 256));
  mem.add(T * static_cast<int64_t>((fan_in + 1) * reader_records * sizeof(Pair)));

  std::sort(disk_runs.begin(), disk_runs.end(), [](const SortedRun& a, const SortedRun& b) { return a.rank < b.rank; });
  while (disk_runs.size() > fan_in) {  // hierarchical merge: groups of fan_in runs become one run each
    ++stats.merge_passes;
    const int64_t groups = static_cast<int64_t>((disk_runs.size() + fan_in - 1) / fan_in);
    std::vector<SortedRun> next(static_cast<size_t>(groups));
#pragma omp parallel for schedule(dynamic, 1) num_threads(T)
    for (int64_t g = 0; g < groups; ++g) {
      if (failure) continue;
      try {
        const size_t first = static_cast<size_t>(g) * fan_in, last = std::min(disk_runs.size(), first + fan_in);
        if (last - first == 1) {
          next[g] = std::move(disk_runs[first]);
          continue;
        }
        std::vector<RunCursor> cursors;
        for (size_t i = first; i < last; ++i) cursors.emplace_back(disk_runs[i], 0, disk_runs[i].records, reader_records);
        RunWriter writer(temp_dir, o.temp_prefix, reader_records, disk_runs[first].rank);
        merge_cursors(cursors, [&](uint64_t key, double value) { writer.put(key, value); });
        next[g] = writer.finish();
        cursors.clear();
        for (size_t i = first; i < last; ++i) disk_runs[i].file.reset();  // closing frees the data
      } catch (...) {
        record_failure();
      }
    }
    if (failure) std::rethrow_exception(failure);
    disk_runs.swap(next);
  }

  std::vector<SortedRun> runs = std::move(disk_runs);
  for (int t = 0; t < T; ++t) runs.push_back(counters[t]->memory_run_of_buffer());

  // Final merge in parallel over row ranges ("chunks"): each chunk's dense rows and run segments
  // are merged by one thread into its own output buffer; the buffers are written in row order.
  // Chunk sizes come from an estimate of the work per row: its dense cells plus its sparse records
  // (from the runs' indexes).
  std::vector<int64_t> work(static_cast<size_t>(V) + 2, 0);
  for (int64_t r = 1; r <= V; ++r) work[r] = rows[r].limit;
  for (const SortedRun& run : runs)
    for (const uint64_t key : run.index) work[key >> bits] += SortedRun::kIndexStride;
  int64_t total_work = 0;
  for (const int64_t w : work) total_work += w;
  const int wave = 2 * T;  // chunks merged per round, in parallel
  const int64_t chunk_work = std::clamp<int64_t>(
      std::min(total_work / (8 * T) + 1, capacity / (2 * wave)), 4096, int64_t{1} << 20);
  std::vector<std::pair<int64_t, int64_t>> chunks;  // row ranges [first, last)
  for (int64_t r = 1, acc = 0, first = 1; r <= V; ++r) {
    acc += work[r];
    if (acc >= chunk_work || r == V) {
      chunks.push_back({first, r + 1});
      first = r + 1;
      acc = 0;
    }
  }
  std::vector<const double*> tables;  // the threads' dense tables, summed in thread order
  for (int t = 0; t < T; ++t) tables.push_back(counters[t]->dense());
  const uint64_t col_mask = (uint64_t{1} << bits) - 1;
  auto merge_chunk = [&](int64_t row_first, int64_t row_last, std::vector<CooccurRecord>& out) {
    std::vector<Pair> scratch_block;
    std::vector<RunCursor> cursors;
    const uint64_t key_first = static_cast<uint64_t>(row_first) << bits, key_last = static_cast<uint64_t>(row_last) << bits;
    for (const SortedRun& run : runs) {
      const int64_t b = run.lower_bound(key_first, scratch_block), e = run.lower_bound(key_last, scratch_block);
      if (b < e) cursors.emplace_back(run, b, e, reader_records);
    }
    int64_t next_dense_row = row_first;
    auto dense_rows_before = [&](int64_t row_end) {  // rows [next_dense_row, row_end)
      for (; next_dense_row < row_end; ++next_dense_row) {
        const RowInfo& ri = rows[next_dense_row];
        for (int64_t c = 1; c <= ri.limit; ++c) {
          double v = tables[0][ri.offset + c];
          for (int t = 1; t < T; ++t) v += tables[t][ri.offset + c];
          if (v != 0) out.push_back({static_cast<int32_t>(next_dense_row), static_cast<int32_t>(c), v / scale});
        }
      }
    };
    merge_cursors(cursors, [&](uint64_t key, double value) {
      const int64_t r = static_cast<int64_t>(key >> bits);
      dense_rows_before(r + 1);  // row r's dense columns all come before its sparse ones
      out.push_back({static_cast<int32_t>(r), static_cast<int32_t>(key & col_mask), value / scale});
    });
    dense_rows_before(row_last);
  };

  std::vector<std::vector<CooccurRecord>> outputs(static_cast<size_t>(wave));
  int64_t written = 0;
  for (size_t c0 = 0; c0 < chunks.size(); c0 += wave) {
    const int n = static_cast<int>(std::min<size_t>(wave, chunks.size() - c0));
#pragma omp parallel for schedule(dynamic, 1) num_threads(T) if (total_work >= kParallelMinIds)
    for (int i = 0; i < n; ++i) {
      if (failure) continue;
      try {
        outputs[i].clear();
        merge_chunk(chunks[c0 + i].first, chunks[c0 + i].second, outputs[i]);
      } catch (...) {
        record_failure();
      }
    }
    if (failure) std::rethrow_exception(failure);
    for (int i = 0; i < n; ++i) {
      sink.write(outputs[i].data(), outputs[i].size());
      written += static_cast<int64_t>(outputs[i].size());
    }
    if (o.progress) o.progress("merge", static_cast<int64_t>(c0 + n), static_cast<int64_t>(chunks.size()));
  }
  sink.finish();
  stats.records = written;
  stats.peak_bytes = mem.peak;
  stats.seconds_merge = now_seconds() - clock;
  return stats;
}

}  // namespace glove
}  // namespace seqkernels
