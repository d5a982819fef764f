// Co-occurrence counting (Stanford cooccur) in bounded memory.
//
// Per block of the corpus:
//   1. threads tokenize slices of the block into word ids (1-based; 0 marks a line break; tokens
//      outside the vocabulary are dropped, so they take no position);
//   2. the ids are laid out after the last <= window ids of the line still open at the end of the
//      previous block (the "history"), so windows run across block and slice borders;
//   3. threads split the target positions; each adds its pairs to its own dense table (Stanford's
//      layout: cell (i, j) when i * j <= max_product, which holds the frequent pairs) — through
//      buckets of consecutive cells when the table is large (kBucketShift) — or else to its own
//      pair buffer, which, when full, is radix-sorted, summed by key and spilled to an unnamed
//      temporary file as one sorted run.
// Symmetric counting adds each pair once, to the canonical cell (min, max): X is symmetric, so this
// halves the updates. The mirrored half is produced at the end: dense cells are read by column,
// and every sorted run has a transposed twin.
// The sorted runs, their files, cursors and merges are the external sort (external_sort.h).
// At the end the remaining buffers become in-memory runs, disk runs are merged in groups of at most
// `max_open_runs` until that many remain (so any number of runs works), and a k-way merge,
// interleaved row by row with the dense tables and run in parallel over row ranges, writes the
// records in (word1, word2) order.
//
// Determinism: the weights are scaled to integers (see weight_scale), so for windows up to 22 the
// sums are exact and the output is bit-identical for every thread count and memory plan. Beyond
// that, a fixed thread count and memory plan still give the same bits run to run (equal keys are
// summed in run order, dense tables in thread order).
#include <omp.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>

#include "external_sort.h"
#include "text.h"

namespace seqkernels {
namespace glove {
namespace {

constexpr int64_t kMinRunRecords = 1024;   // smallest pair buffer per thread that we accept
constexpr double kDenseShare = 0.5;        // of the free budget, at most, for the dense tables
constexpr double kBytesPerToken = 6.0;     // English text with one separator per token
constexpr int64_t kParallelMinIds = 1 << 15;  // below this, one thread runs all slices of a phase

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Allocation bookkeeping for the stats (the budget itself is planned up front).
struct MemoryTracker {
  int64_t current = 0, peak = 0;
  void add(int64_t b) { current += b; peak = std::max(peak, current); }
  void sub(int64_t b) { current -= b; }
};

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

// Row r of a dense table holds columns first..limit, cell (r, c) at offset + c. Stanford's layout
// (asymmetric counting) has first = 1 and limit = min(V, P / r); the canonical layout (symmetric
// counting, cells (a, b) with a <= b only) has first = r and the same limit, so only rows with
// r * r <= P hold cells.
struct RowInfo {
  int64_t offset;
  int64_t limit;
};

int64_t dense_cells(int64_t V, int64_t max_product, bool canonical) {
  int64_t cells = 0;
  for (int64_t r = 1; r <= V; ++r) {
    const int64_t first = canonical ? r : 1, lim = std::min(V, max_product / r);
    if (lim < first) break;  // limits only fall as r grows
    cells += lim - first + 1;
  }
  return cells;
}

std::vector<RowInfo> dense_layout(int64_t V, int64_t max_product, bool canonical) {
  std::vector<RowInfo> rows(static_cast<size_t>(V) + 1, RowInfo{0, 0});
  for (int64_t r = 1, offset = 0; r <= V; ++r) {
    const int64_t first = canonical ? r : 1, lim = std::min(V, max_product / r);
    if (lim < first) {
      rows[r] = {0, canonical ? r - 1 : 0};  // empty: no column c >= first passes c <= limit
      continue;
    }
    rows[r] = {offset - first, lim};
    offset += lim - first + 1;
  }
  return rows;
}

// Dense updates can go through buckets of kBucketCells consecutive cells of a thread's table: an
// update is appended to its bucket as 4 bytes (the cell within the bucket above kCodeBits, and
// 2·distance + [a == b] below, which names its weight), and a full bucket is applied in one pass.
// Its cells then come into cache once for many updates instead of one cache miss per update
// (the table is far larger than the caches). Each cell's additions keep their order.
constexpr int kBucketShift = 16, kCodeBits = 32 - kBucketShift;
constexpr int64_t kBucketCells = int64_t{1} << kBucketShift, kBucketMask = kBucketCells - 1;
constexpr uint32_t kMaxBucketCapacity = 1u << 16, kMinBucketCapacity = 1u << 12;
constexpr int64_t kMinBucketedCells = int64_t{1} << 20;  // smaller tables stay in cache: no buckets
inline int64_t dense_buckets(int64_t cells) { return (cells + kBucketCells - 1) >> kBucketShift; }

// The largest max_product whose table has at most `max_cells` cells (V*V when the full matrix fits).
int64_t max_product_for(int64_t V, int64_t max_cells, bool canonical) {
  if (dense_cells(V, V * V, canonical) <= max_cells) return V * V;
  int64_t lo = 0, hi = V * V;  // dense_cells(lo) <= max_cells < dense_cells(hi)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (dense_cells(V, mid, canonical) <= max_cells ? lo : hi) = mid;
  }
  return lo;
}

// Everything one thread owns while counting.
class ThreadCounter {
 public:
  ThreadCounter(int thread, const RowInfo* rows, int64_t cells, size_t capacity, int bits, bool canonical,
                uint32_t bucket_capacity)
      : thread_(thread), rows_(rows), bits_(bits), canonical_(canonical), dense_(static_cast<size_t>(cells)),
        buf_(capacity), scratch_(capacity), mirror_(canonical ? capacity : 0),
        buckets_(static_cast<size_t>(dense_buckets(cells)) * bucket_capacity),
        bucket_fill_(bucket_capacity ? static_cast<size_t>(dense_buckets(cells)) : 0),
        bucket_capacity_(bucket_capacity) {}

  // One call per block; noinline keeps it a separate entry in profiles.
  template <bool Canonical>
  __attribute__((noinline)) void count(const int32_t* ids, int64_t lo, int64_t hi, int window, const double* weight,
                                       const std::string& temp_dir, const std::string& prefix,
                                       std::vector<SortedRun>& runs, std::mutex& m) {
    const RowInfo* rows = rows_;
    double* dense = dense_.data();
    Pair* buf = buf_.data();
    const size_t cap = buf_.size();
    size_t n = used_;
    const int bits = bits_;
    const size_t bucket_capacity = bucket_capacity_;
    uint32_t* buckets = buckets_.data();
    uint32_t* fill = bucket_fill_.data();
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t right = ids[p];
      if (right == 0) continue;
      const int64_t stop = std::max<int64_t>(0, p - window);
      for (int64_t q = p - 1, d = 1; q >= stop; --q, ++d) {
        const int64_t left = ids[q];
        if (left == 0) break;  // the line started after q
        int64_t a = left, b = right;
        double v = weight[d];
        if (Canonical) {
          a = std::min(left, right);
          b = std::max(left, right);
          if (a == b) v += v;  // X[a][a] gets both orientations: 2/d
        }
        const RowInfo& ra = rows[a];
        if (b <= ra.limit) {
          const int64_t cell = ra.offset + b;
          if (bucket_capacity) {  // code: 2·d + [a == b], the weight v stands for (see kCodeBits)
            const size_t k = static_cast<size_t>(cell >> kBucketShift);
            buckets[k * bucket_capacity + fill[k]] = (static_cast<uint32_t>(cell & kBucketMask) << kCodeBits) |
                                                     static_cast<uint32_t>(2 * d + (Canonical && a == b));
            if (++fill[k] == bucket_capacity) flush_bucket(k, weight);
          } else {
            dense[cell] += v;
          }
        } else {
          buf[n].key = (static_cast<uint64_t>(a) << bits) | static_cast<uint64_t>(b);
          buf[n].value = v;
          if (++n == cap) {
            used_ = n;
            spill(temp_dir, prefix, runs, m);
            n = 0;
          }
        }
      }
    }
    used_ = n;
  }

  // Applies the updates still waiting in the buckets (after the last block).
  void flush_buckets(const double* weight) {
    for (size_t k = 0; k < bucket_fill_.size(); ++k)
      if (bucket_fill_.data()[k]) flush_bucket(k, weight);
  }

  // Sorts and sums the buffer, which stays here as an in-memory run (with its transposed twin for
  // canonical counting); frees the sort scratch.
  void finish_buffer() {
    sort_buffer();
    if (canonical_) {
      mirror_used_ = transpose(buf_.data(), used_, mirror_.data());
      radix_sort(mirror_.data(), scratch_.data(), mirror_used_, 2 * bits_, bits_);
    }
    scratch_.release();
  }

  void memory_runs(std::vector<SortedRun>& runs) const {
    runs.push_back(memory_run(buf_.data(), static_cast<int64_t>(used_), final_rank(0)));
    if (canonical_) runs.push_back(memory_run(mirror_.data(), static_cast<int64_t>(mirror_used_), final_rank(1)));
  }
  const double* dense() const { return dense_.data(); }
  void populate_dense() { dense_.populate(); }
  int64_t spilled() const { return spilled_; }
  int64_t spilled_records() const { return spilled_records_; }
  int64_t spilled_bytes() const { return spilled_bytes_; }

 private:
  void sort_buffer() {
    radix_sort(buf_.data(), scratch_.data(), used_, 2 * bits_);
    used_ = reduce_sorted(buf_.data(), used_);
  }
  // Writes (b, a) for every (a, b) with a < b of the sorted, summed `src` into dst; returns the count.
  // The result is in a-order within each b, so a stable sort by b alone sorts it.
  size_t transpose(const Pair* src, size_t n, Pair* dst) const {
    const uint64_t mask = (uint64_t{1} << bits_) - 1;
    size_t m = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t a = src[i].key >> bits_, b = src[i].key & mask;
      if (a != b) dst[m++] = {(b << bits_) | a, src[i].value};
    }
    return m;
  }
  // Merge order of runs with equal keys: spills first (by sequence), then the final buffers.
  int64_t spill_rank(int kind) const { return (seq_ * 2 + kind) * 4096 + thread_; }
  int64_t final_rank(int kind) const { return (int64_t{1} << 62) + kind * 4096 + thread_; }

  void spill(const std::string& temp_dir, const std::string& prefix, std::vector<SortedRun>& runs, std::mutex& m) {
    sort_buffer();
    std::vector<SortedRun> made;
    RunWriter writer(temp_dir, prefix, 0, spill_rank(0));
    writer.put_all(buf_.data(), used_);
    made.push_back(writer.finish());
    if (canonical_) {  // the transposed twin, sorted in the scratch with the (written) buffer as temp
      const size_t k = transpose(buf_.data(), used_, scratch_.data());
      radix_sort(scratch_.data(), buf_.data(), k, 2 * bits_, bits_);
      RunWriter twin(temp_dir, prefix, 0, spill_rank(1));
      twin.put_all(scratch_.data(), k);
      made.push_back(twin.finish());
    }
    for (const SortedRun& r : made) {
      spilled_records_ += r.records;
      spilled_bytes_ += r.disk_bytes();
    }
    {
      std::lock_guard<std::mutex> lock(m);
      for (SortedRun& r : made) runs.push_back(std::move(r));
    }
    spilled_ += static_cast<int64_t>(made.size());
    ++seq_;
    used_ = 0;
  }

  // A bucket's updates, in the order they were made: each cell's additions keep their order.
  void flush_bucket(size_t k, const double* weight) {
    double* cells = dense_.data() + (static_cast<int64_t>(k) << kBucketShift);
    const uint32_t* e = buckets_.data() + k * bucket_capacity_;
    const uint32_t n = bucket_fill_.data()[k];
    // With about one update per cell or more, ask for the bucket's cells in address order first:
    // the lines then arrive at the memory system's streaming rate instead of one miss at a time.
    const int64_t span = std::min<int64_t>(kBucketCells, static_cast<int64_t>(dense_.size()) -
                                                             (static_cast<int64_t>(k) << kBucketShift));
    if (static_cast<int64_t>(n) >= span / 2)
      for (int64_t c = 0; c < span; c += 64 / sizeof(double)) __builtin_prefetch(cells + c, 1, 3);
    constexpr uint32_t code_mask = (uint32_t{1} << kCodeBits) - 1;
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t code = e[i] & code_mask;
      const double w = weight[code >> 1];
      cells[e[i] >> kCodeBits] += (code & 1) ? w + w : w;
    }
    bucket_fill_.data()[k] = 0;
  }

  int thread_;
  const RowInfo* rows_;
  int bits_;
  bool canonical_;
  LargeBuffer<double> dense_;
  LargeBuffer<Pair> buf_, scratch_, mirror_;
  size_t used_ = 0, mirror_used_ = 0;
  LargeBuffer<uint32_t> buckets_;     // dense_buckets(cells) buckets of bucket_capacity_ updates
  LargeBuffer<uint32_t> bucket_fill_;  // updates waiting per bucket (own pages: written per update,
                                       // so never beside another thread's data)
  uint32_t bucket_capacity_ = 0;      // 0: updates go straight to the table
  int64_t seq_ = 0, spilled_ = 0, spilled_records_ = 0, spilled_bytes_ = 0;
};

void check_vocabulary_word(const std::string& w, size_t index) {
  SK_CHECK(!w.empty(), "vocabulary: word " << index << " is empty");
  SK_CHECK(w.size() <= static_cast<size_t>(kMaxTokenBytes),
           "vocabulary: word " << index << " is longer than " << kMaxTokenBytes << " bytes, so no token can match it");
  SK_CHECK(w.find_first_of(" \t\n\r") == std::string::npos,
           "vocabulary: word " << index << " ('" << w << "') contains a blank, tab, newline or carriage return, "
                               << "so no token can match it");
  SK_CHECK(w != "<unk>", "vocabulary: word " << index << " is the reserved token <unk>");
}

// Sizes of everything, fixed before any counting so that the budget holds.
struct Plan {
  int threads = 1;
  int64_t V = 0;
  bool canonical = false;     // symmetric counting into canonical cells
  size_t block_bytes = 0;
  int64_t max_product = 0;
  int64_t cells = 0;          // dense cells per thread
  int64_t capacity = 0;       // pair-buffer records per thread
  int bits = 1;               // bits of a word id in a key
  uint32_t bucket_capacity = 0;  // updates per dense-table bucket (0: no buckets)
  size_t reader_records = 0;  // buffer of a run cursor in the merges
  size_t fan_in = 2;          // runs merged at once
  double scale = 1.0;         // integer scale of the weights (weight_scale)
  double divisor = 1.0;       // of the written values: scale, or 1 for exact sums
  int64_t planned_bytes = 0;
};

Plan plan_memory(const CooccurOptions& o, int64_t V, int T, const detail::WordLookup& lookup, int64_t corpus_bytes) {
  Plan plan;
  plan.threads = T;
  plan.V = V;
  plan.canonical = o.symmetric;
  const int64_t budget = static_cast<int64_t>(o.memory_gb * 1073741824.0);
  plan.block_bytes = o.block_bytes ? o.block_bytes : detail::default_block_bytes(budget);
  // Block buffer, plus at worst one id per two bytes in the slices and again in the joined array.
  const int64_t io_bytes =
      static_cast<int64_t>(plan.block_bytes + kMaxTokenBytes + 1) + 4 * static_cast<int64_t>(plan.block_bytes);
  const int64_t fixed = static_cast<int64_t>(lookup.bytes()) + (V + 1) * static_cast<int64_t>(sizeof(RowInfo)) + io_bytes;
  // Pair buffer and sort scratch, and for canonical counting the transposed twin.
  const int64_t per_record = (plan.canonical ? 3 : 2) * static_cast<int64_t>(sizeof(Pair));
  const int64_t avail = budget - fixed;
  auto gb = [](int64_t b) { return static_cast<double>(b) / 1073741824.0; };
  SK_CHECK(avail >= T * kMinRunRecords * per_record,
           "memory: " << o.memory_gb << " GB is too small to hold one run: " << V << " words and " << T
                      << " threads need at least " << gb(fixed + T * kMinRunRecords * per_record)
                      << " GB (vocabulary table, I/O blocks and one " << kMinRunRecords << "-record buffer per thread)");

  if (o.max_product >= 0) {
    plan.max_product = std::min(o.max_product, V * V);
  } else {
    const int64_t share =
        static_cast<int64_t>(kDenseShare * static_cast<double>(avail - T * kMinRunRecords * per_record));
    plan.max_product = max_product_for(V, share / T / static_cast<int64_t>(sizeof(double)), plan.canonical);
    if (corpus_bytes >= 0) {
      // A dense cell pays off only if it is likely to be hit: with Zipf-distributed words, cell
      // (i, j) expects about pairs / (i * j * H^2) hits (H = ln V + 0.58), so cells with
      // i * j > pairs / H^2 are cheaper as sparse pairs (no table pages to touch and scan).
      // Measured on a 12M-token corpus: this P is ~2x faster than a table filling half of 1 GB.
      const double tokens = static_cast<double>(corpus_bytes) / kBytesPerToken;
      const double pairs = tokens * o.window_size * (o.symmetric ? 2.0 : 1.0);
      const double H = std::log(static_cast<double>(V)) + 0.5772;
      plan.max_product = std::min(plan.max_product, std::max<int64_t>(V, static_cast<int64_t>(pairs / (H * H))));
    }
  }
  plan.cells = dense_cells(V, plan.max_product, plan.canonical);
  const int64_t dense_bytes = T * plan.cells * static_cast<int64_t>(sizeof(double));
  // Buckets for large tables, if they fit in a quarter of what the tables leave (halving them down
  // to kMinBucketCapacity first); the window must fit the 16-bit code.
  auto bucket_bytes = [&](uint32_t capacity) {
    return T * dense_buckets(plan.cells) * static_cast<int64_t>(capacity) * static_cast<int64_t>(sizeof(uint32_t));
  };
  if (plan.cells >= kMinBucketedCells && 2 * static_cast<int64_t>(o.window_size) + 1 < (int64_t{1} << kCodeBits)) {
    const int64_t room = (avail - dense_bytes - T * kMinRunRecords * per_record) / 4;
    plan.bucket_capacity = kMaxBucketCapacity;
    while (plan.bucket_capacity >= kMinBucketCapacity && bucket_bytes(plan.bucket_capacity) > room)
      plan.bucket_capacity /= 2;
    if (plan.bucket_capacity < kMinBucketCapacity) plan.bucket_capacity = 0;
  }
  const int64_t dense_total = dense_bytes + bucket_bytes(plan.bucket_capacity);
  if (o.overflow_length > 0) {
    plan.capacity = o.overflow_length;
    if (dense_total + T * plan.capacity * per_record > avail) plan.bucket_capacity = 0;  // the caller's sizes first
  } else {
    plan.capacity = std::max<int64_t>(kMinRunRecords, (avail - dense_total) / (T * per_record));
    // With the full matrix dense no pair is ever buffered.
    if (plan.cells == dense_cells(V, V * V, plan.canonical)) plan.capacity = kMinRunRecords;
  }
  SK_CHECK(dense_bytes + T * plan.capacity * per_record <= avail,
           "memory: " << o.memory_gb << " GB cannot hold the requested tables: max_product " << plan.max_product
                      << " needs " << gb(dense_bytes) << " GB of dense tables and overflow_length " << plan.capacity
                      << " needs " << gb(T * plan.capacity * per_record) << " GB of pair buffers for " << T
                      << " threads, but only " << gb(avail) << " GB are left after the vocabulary and I/O buffers");
  while ((int64_t{1} << plan.bits) <= V) ++plan.bits;
  // The merges live in the space the sort scratch gives back (capacity pairs per thread): each
  // thread's run cursors and its chunk of output.
  plan.reader_records = static_cast<size_t>(std::clamp<int64_t>(plan.capacity / 64, 256, 1 << 16));
  plan.fan_in = o.max_open_runs > 0 ? static_cast<size_t>(o.max_open_runs)
                                    : static_cast<size_t>(std::clamp<int64_t>(
                                          plan.capacity / static_cast<int64_t>(plan.reader_records) - 1, 2, 256));
  plan.scale = o.distance_weighting ? weight_scale(o.window_size) : 1.0;
  plan.divisor = o.exact_sums ? 1.0 : plan.scale;
  plan.planned_bytes = fixed + dense_bytes + bucket_bytes(plan.bucket_capacity) + T * plan.capacity * per_record;
  return plan;
}

// Words of one slice of a block as ids (1-based; 0 for a line break; out-of-vocabulary dropped).
// Returns the number of tokens read and adds the in-vocabulary ones to `kept`.
// The threads' output vectors sit side by side in one array, so `out` is swapped into a local for
// the walk: a push_back into it would write its end pointer into a cache line that the other
// threads are writing too, once per token.
int64_t tokenize_slice(const char* begin, const char* end, const detail::WordLookup& lookup, std::string& scratch,
                       std::vector<int32_t>& out, int64_t& kept) {
  std::vector<int32_t> ids;
  ids.swap(out);
  ids.clear();
  int64_t tokens = 0, in_vocabulary = 0;
  detail::tokenize(
      begin, end, scratch,
      [&](const char* p, size_t len) {
        ++tokens;
        const int64_t id = lookup.find(p, len);
        if (id > 0) {
          ids.push_back(static_cast<int32_t>(id));
          ++in_vocabulary;
        }
      },
      [&] {
        if (ids.empty() || ids.back() != 0) ids.push_back(0);
      });
  ids.swap(out);
  kept += in_vocabulary;
  return tokens;
}

// Counting: every block of the corpus through the threads' counters.
void count_blocks(ByteSource& corpus, const detail::WordLookup& lookup, const Plan& plan, const CooccurOptions& o,
                  const std::string& temp_dir, std::vector<std::unique_ptr<ThreadCounter>>& counters,
                  std::vector<SortedRun>& disk_runs, CooccurStats& stats) {
  const int T = plan.threads, window = o.window_size;
  std::vector<double> weight(static_cast<size_t>(window) + 1);
  for (int d = 1; d <= window; ++d) weight[d] = o.distance_weighting ? plan.scale / static_cast<double>(d) : 1.0;
  std::mutex runs_mutex;
  FirstFailure failure;
  std::vector<std::vector<int32_t>> slice_ids(T);
  std::vector<std::string> scratch(T);
  std::vector<int64_t> slice_tokens(T, 0), slice_kept(T, 0);
  std::vector<int32_t> ids, history;
  detail::BlockReader reader(corpus, plan.block_bytes);
  const char* data;
  size_t size;
  double clock = now_seconds();
  while (reader.next(data, size)) {
    const std::vector<size_t> bounds = detail::split_at_separators(data, size, T);
#pragma omp parallel for schedule(static, 1) num_threads(T) if (size >= detail::kParallelMinBytes)
    for (int t = 0; t < T; ++t)
      slice_tokens[t] += tokenize_slice(data + bounds[t], data + bounds[t + 1], lookup, scratch[t], slice_ids[t],
                                        slice_kept[t]);
    // ids = the open line's history, then every slice's ids.
    std::vector<size_t> at(T + 1, history.size());
    for (int t = 0; t < T; ++t) at[t + 1] = at[t] + slice_ids[t].size();
    ids.resize(at[T]);
    std::copy(history.begin(), history.end(), ids.begin());
    for (int t = 0; t < T; ++t) std::copy(slice_ids[t].begin(), slice_ids[t].end(), ids.begin() + at[t]);

    const int64_t first = static_cast<int64_t>(history.size()), total = static_cast<int64_t>(ids.size());
    const double counting = now_seconds();
    stats.seconds_tokenize += counting - clock;
#pragma omp parallel for schedule(static, 1) num_threads(T) if (total - first >= kParallelMinIds)
    for (int t = 0; t < T; ++t) {
      if (failure.failed()) continue;
      const int64_t lo = first + (total - first) * t / T, hi = first + (total - first) * (t + 1) / T;
      try {
        if (plan.canonical)
          counters[t]->count<true>(ids.data(), lo, hi, window, weight.data(), temp_dir, o.temp_prefix, disk_runs,
                                   runs_mutex);
        else
          counters[t]->count<false>(ids.data(), lo, hi, window, weight.data(), temp_dir, o.temp_prefix, disk_runs,
                                    runs_mutex);
      } catch (...) {
        failure.record();
      }
    }
    failure.rethrow();
    clock = now_seconds();
    stats.seconds_count += clock - counting;

    // The open line's last <= window ids carry over to the next block.
    int64_t h = total;
    while (h > 0 && total - h < window && ids[h - 1] != 0) --h;
    history.assign(ids.begin() + h, ids.end());
    if (o.progress) o.progress("cooccur", reader.consumed(), corpus.size());
  }
  const double flushing = now_seconds();
#pragma omp parallel for schedule(static, 1) num_threads(T)
  for (int t = 0; t < T; ++t) counters[t]->flush_buckets(weight.data());
  stats.seconds_count += now_seconds() - flushing;
  for (int t = 0; t < T; ++t) {
    stats.tokens += slice_tokens[t];
    stats.kept_tokens += slice_kept[t];
  }
}

// What a final-merge chunk reads: the runs, the dense tables and their layout.
struct MergeInputs {
  const std::vector<SortedRun>* runs;
  std::vector<const double*> tables;  // the threads' dense tables, summed in thread order
  const RowInfo* rows;
  const Plan* plan;
};

// Output rows [row_first, row_last): run records and dense cells interleaved in column order. For
// row r the dense cells are, in the canonical layout, the mirrored column r of the rows c < r
// ("mirror": a prefix of the columns, since c * r <= P) and the canonical row r from column r on
// ("direct"); in Stanford's layout only the direct part, from column 1. Run records fill the gaps.
void merge_chunk(const MergeInputs& in, int64_t row_first, int64_t row_last, std::vector<CooccurRecord>& out) {
  const Plan& plan = *in.plan;
  const int bits = plan.bits;
  const double scale = plan.divisor;
  const int T = static_cast<int>(in.tables.size());
  const RowInfo* rows = in.rows;
  const uint64_t col_mask = (uint64_t{1} << bits) - 1;
  auto cell = [&](int64_t offset) {
    double v = in.tables[0][offset];
    for (int t = 1; t < T; ++t) v += in.tables[t][offset];
    return v;
  };
  auto emit = [&](int64_t r, int64_t c, double v) {
    if (v != 0) out.push_back({static_cast<int32_t>(r), static_cast<int32_t>(c), v / scale});
  };
  // Column r of the rows c < r: consecutive rows r read neighbouring cells of each row c, so every
  // read asks for the line 8 columns on (the hardware prefetchers cannot follow ~1,000 strided
  // streams at once; without this each line was a cache miss).
  auto emit_mirror = [&](int64_t r) {
    if (!plan.canonical) return;
    for (int64_t c = 1; c < r && r <= rows[c].limit; ++c) {
      const int64_t offset = rows[c].offset + r;
      for (int t = 0; t < T; ++t) __builtin_prefetch(in.tables[t] + offset + 8, 0, 3);
      emit(r, c, cell(offset));
    }
  };
  auto emit_direct = [&](int64_t r) {
    for (int64_t c = plan.canonical ? r : 1; c <= rows[r].limit; ++c) emit(r, c, cell(rows[r].offset + c));
  };
  int64_t row = row_first;  // rows < row are complete; of `row`, the parts up to `phase` are out
  int phase = 0;            // 0: nothing yet, 1: its mirror cells, 2: all its dense cells
  auto advance = [&](int64_t r, int want) {
    for (; row < r; ++row, phase = 0) {
      if (phase < 1) emit_mirror(row);
      if (phase < 2) emit_direct(row);
    }
    if (want >= 1 && phase < 1) emit_mirror(row);
    if (want >= 2 && phase < 2) emit_direct(row);
    phase = std::max(phase, want);
  };
  std::vector<Pair> scratch_block;
  std::vector<RunCursor> cursors;
  const uint64_t key_first = static_cast<uint64_t>(row_first) << bits,
                 key_last = static_cast<uint64_t>(row_last) << bits;
  for (const SortedRun& run : *in.runs) {
    const int64_t b = run.lower_bound(key_first, scratch_block), e = run.lower_bound(key_last, scratch_block);
    if (b < e) cursors.emplace_back(run, b, e, plan.reader_records);
  }
  merge_cursors(cursors, [&](uint64_t key, double value) {
    const int64_t r = static_cast<int64_t>(key >> bits), c = static_cast<int64_t>(key & col_mask);
    // A record left of the direct part (c < r: canonical only) comes after the mirror cells; one
    // right of it (c > limit) after all of the row's dense cells.
    advance(r, plan.canonical && c < r ? 1 : 2);
    out.push_back({static_cast<int32_t>(r), static_cast<int32_t>(c), value / scale});
  });
  advance(row_last, 0);
}

// The final merge, in parallel over row ranges ("chunks"), written in row order. Chunk sizes come
// from an estimate of each row's work: its dense cells plus its run records (from the indexes).
int64_t write_output(const MergeInputs& in, const CooccurOptions& o, RecordSink& sink) {
  const Plan& plan = *in.plan;
  const int T = plan.threads;
  std::vector<int64_t> work(static_cast<size_t>(plan.V) + 2, 0);
  std::vector<int64_t> mirror_marks(static_cast<size_t>(plan.V) + 2, 0);  // +1/-1 at the ends of ranges
  for (int64_t r = 1; r <= plan.V; ++r) {
    const int64_t first = plan.canonical ? r : 1, limit = in.rows[r].limit;
    work[r] += std::max<int64_t>(0, limit - first + 1);
    if (plan.canonical && limit > r) {  // row r's cells (r, c) are mirrored into the rows c = r+1..limit
      ++mirror_marks[r + 1];
      --mirror_marks[limit + 1];
    }
  }
  for (int64_t r = 1, mirrors = 0; r <= plan.V; ++r) work[r] += (mirrors += mirror_marks[r]);
  for (const SortedRun& run : *in.runs)
    for (const uint64_t key : run.index) work[key >> plan.bits] += SortedRun::kIndexStride;
  int64_t total_work = 0;
  for (const int64_t w : work) total_work += w;
  const int wave = 2 * T;  // chunks merged per round, in parallel
  const int64_t chunk_work =
      std::clamp<int64_t>(std::min(total_work / (8 * T) + 1, plan.capacity / (2 * wave)), 4096, int64_t{1} << 20);
  std::vector<std::pair<int64_t, int64_t>> chunks;  // row ranges [first, last)
  for (int64_t r = 1, acc = 0, first = 1; r <= plan.V; ++r) {
    acc += work[r];
    if (acc >= chunk_work || r == plan.V) {
      chunks.push_back({first, r + 1});
      first = r + 1;
      acc = 0;
    }
  }
  // Waves of chunks alternate between two sets of output buffers, so that one thread writes the
  // previous wave while the others merge the next one.
  FirstFailure failure;
  std::vector<std::vector<CooccurRecord>> outputs[2] = {std::vector<std::vector<CooccurRecord>>(wave),
                                                        std::vector<std::vector<CooccurRecord>>(wave)};
  int64_t written = 0;
  int pending = 0;  // chunks of the previous wave waiting in outputs[(wave index - 1) % 2]
  const size_t waves = (chunks.size() + wave - 1) / wave;
  for (size_t w = 0; w <= waves; ++w) {
    const size_t c0 = w * wave;
    const int n = w < waves ? static_cast<int>(std::min<size_t>(wave, chunks.size() - c0)) : 0;
    std::vector<std::vector<CooccurRecord>>& current = outputs[w % 2];
    std::vector<std::vector<CooccurRecord>>& previous = outputs[(w + 1) % 2];
#pragma omp parallel num_threads(T) if (total_work >= kParallelMinIds)
    {
#pragma omp single nowait
      {
        try {
          for (int i = 0; i < pending; ++i) {
            sink.write(previous[i].data(), previous[i].size());
            written += static_cast<int64_t>(previous[i].size());
          }
        } catch (...) {
          failure.record();
        }
      }
#pragma omp for schedule(dynamic, 1)
      for (int i = 0; i < n; ++i) {
        if (failure.failed()) continue;
        try {
          // A local vector while merging: the output vectors sit side by side in `current`, and a
          // push_back into one of them writes its end pointer into a line other threads write.
          std::vector<CooccurRecord> records;
          records.swap(current[i]);
          records.clear();
          merge_chunk(in, chunks[c0 + i].first, chunks[c0 + i].second, records);
          records.swap(current[i]);
        } catch (...) {
          failure.record();
        }
      }
    }
    failure.rethrow();
    pending = n;
    if (o.progress && n) o.progress("merge", static_cast<int64_t>(c0 + n), static_cast<int64_t>(chunks.size()));
  }
  sink.finish();
  return written;
}

}  // namespace

double cooccur_value_scale(const CooccurOptions& o) { return o.distance_weighting ? weight_scale(o.window_size) : 1.0; }

CooccurStats count_cooccurrences(ByteSource& corpus, const std::vector<std::string>& words,
                                 const CooccurOptions& o, RecordSink& sink) {
  SK_CHECK(o.window_size >= 1, "window_size: expected >= 1, got " << o.window_size);
  SK_CHECK(std::isfinite(o.memory_gb) && o.memory_gb > 0,
           "memory: expected a positive number of GB, got " << o.memory_gb);
  SK_CHECK(o.max_product >= -1, "max_product: expected >= 0 (or -1 to derive it from memory), got " << o.max_product);
  SK_CHECK(o.overflow_length == -1 || o.overflow_length >= 1,
           "overflow_length: expected >= 1 (or -1 to derive it from memory), got " << o.overflow_length);
  SK_CHECK(o.max_open_runs == 0 || o.max_open_runs >= 2,
           "max_open_runs: expected >= 2 (or 0 to derive it from memory), got " << o.max_open_runs);
  const int64_t V = static_cast<int64_t>(words.size());
  SK_CHECK(V >= 1, "vocabulary: is empty");
  SK_CHECK(V < (int64_t{1} << 31) - 1, "vocabulary: too many words (" << V << ")");
  const int T = detail::resolve_threads(o.num_threads);

  for (int64_t i = 0; i < V; ++i) check_vocabulary_word(words[i], static_cast<size_t>(i));
  const detail::WordLookup lookup(words);
  for (int64_t i = 0; i < V; ++i) {
    const int64_t id = lookup.table().find(words[i].data(), words[i].size(), 0);
    SK_CHECK(id == i + 1, "vocabulary: word " << i << " ('" << words[i] << "') repeats word " << id - 1);
  }
  const Plan plan = plan_memory(o, V, T, lookup, corpus.size());
  CooccurStats stats;
  stats.num_threads = T;
  stats.budget_bytes = static_cast<int64_t>(o.memory_gb * 1073741824.0);
  stats.max_product = plan.max_product;
  stats.overflow_length = plan.capacity;
  stats.dense_bucket_capacity = plan.bucket_capacity;
  MemoryTracker mem;
  mem.add(plan.planned_bytes);

  const std::vector<RowInfo> rows = dense_layout(V, plan.max_product, plan.canonical);
  std::vector<std::unique_ptr<ThreadCounter>> counters;
  for (int t = 0; t < T; ++t)
    counters.push_back(std::make_unique<ThreadCounter>(t, rows.data(), plan.cells, static_cast<size_t>(plan.capacity),
                                                       plan.bits, plan.canonical, plan.bucket_capacity));
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string temp_dir = !o.temp_dir.empty() ? o.temp_dir : (tmpdir && *tmpdir ? tmpdir : "/tmp");

#pragma omp parallel for schedule(static, 1) num_threads(T)
  for (int t = 0; t < T; ++t) counters[t]->populate_dense();  // each by its thread, in parallel
  std::vector<SortedRun> disk_runs;
  count_blocks(corpus, lookup, plan, o, temp_dir, counters, disk_runs, stats);

  const double clock = now_seconds();
#pragma omp parallel for schedule(static, 1) num_threads(T)
  for (int t = 0; t < T; ++t) counters[t]->finish_buffer();
  mem.sub(T * plan.capacity * static_cast<int64_t>(sizeof(Pair)));  // sort scratch given back
  mem.add(T * static_cast<int64_t>((plan.fan_in + 1) * plan.reader_records * sizeof(Pair)));
  for (int t = 0; t < T; ++t) {
    stats.runs_spilled += counters[t]->spilled();
    stats.spilled_records += counters[t]->spilled_records();
    stats.spilled_bytes += counters[t]->spilled_bytes();
  }
  stats.merge_passes += merge_to_fan_in(disk_runs, plan.fan_in, plan.reader_records, T, temp_dir, o.temp_prefix);

  std::vector<SortedRun> runs = std::move(disk_runs);
  for (int t = 0; t < T; ++t) counters[t]->memory_runs(runs);
  MergeInputs inputs{&runs, {}, rows.data(), &plan};
  for (int t = 0; t < T; ++t) inputs.tables.push_back(counters[t]->dense());
  stats.records = write_output(inputs, o, sink);
  stats.peak_bytes = mem.peak;
  // Each thread gives back its own tables and buffers: returning a few hundred MB of pages costs
  // tens of milliseconds, and the kernel can release two mappings at once.
  runs.clear();
#pragma omp parallel for schedule(static, 1) num_threads(T)
  for (int t = 0; t < T; ++t) counters[t].reset();
  stats.seconds_merge = now_seconds() - clock;
  return stats;
}

}  // namespace glove
}  // namespace seqkernels
