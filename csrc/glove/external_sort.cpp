// The external sort's out-of-line pieces (external_sort.h).
#include "external_sort.h"

#include <fcntl.h>
#include <omp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace seqkernels {
namespace glove {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

TempFile::TempFile(const std::string& dir, const std::string& prefix) {
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

TempFile::~TempFile() { ::close(fd_); }

std::unique_ptr<TempFile> TempFile::open_existing(const std::string& path) {
  std::unique_ptr<TempFile> f(new TempFile());
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) throw std::runtime_error("cannot open run file '" + path + "': " + errno_text());
  return f;
}

int64_t TempFile::size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw std::runtime_error("cannot stat a run file: " + errno_text());
  return static_cast<int64_t>(st.st_size);
}

void TempFile::append(const void* data, size_t bytes) {
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

void TempFile::read_at(void* data, size_t bytes, int64_t offset) const {
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

namespace {

constexpr double kExactLimit = 9007199254740992.0;  // 2^53: integers below it are exact doubles

void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

uint64_t get_varint(const uint8_t*& p, const uint8_t* end) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p == end) break;
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  throw std::runtime_error("a temporary run file is corrupt (a number runs past its block)");
}

bool is_small_integer(double v) { return v >= 0 && v < kExactLimit && v == static_cast<double>(static_cast<uint64_t>(v)); }

void encode_block(const Pair* p, size_t n, std::vector<uint8_t>& out) {
  bool integers = true;
  for (size_t i = 0; i < n && integers; ++i) integers = is_small_integer(p[i].value);
  out.push_back(integers ? 1 : 0);
  uint64_t previous = 0;
  for (size_t i = 0; i < n; ++i) {
    put_varint(out, p[i].key - previous);
    previous = p[i].key;
    if (integers) {
      put_varint(out, static_cast<uint64_t>(p[i].value));
    } else {
      uint8_t raw[sizeof(double)];
      std::memcpy(raw, &p[i].value, sizeof(double));
      out.insert(out.end(), raw, raw + sizeof(double));
    }
  }
}

void decode_block(const uint8_t* p, const uint8_t* end, size_t n, Pair* out) {
  if (p == end) throw std::runtime_error("a temporary run file is corrupt (an empty block)");
  const bool integers = *p++ == 1;
  uint64_t key = 0;
  for (size_t i = 0; i < n; ++i) {
    key += get_varint(p, end);
    out[i].key = key;
    if (integers) {
      out[i].value = static_cast<double>(get_varint(p, end));
    } else {
      if (end - p < static_cast<ptrdiff_t>(sizeof(double)))
        throw std::runtime_error("a temporary run file is corrupt (a value runs past its block)");
      std::memcpy(&out[i].value, p, sizeof(double));
      p += sizeof(double);
    }
  }
}

}  // namespace

void SortedRun::read_compact(Pair* dst, int64_t pos, int64_t n) const {
  std::vector<uint8_t> bytes;
  std::vector<Pair> block;
  while (n > 0) {
    const int64_t b = pos / kIndexStride, in_block = pos - b * kIndexStride;
    const int64_t count = std::min(kIndexStride, records - b * kIndexStride);
    bytes.resize(static_cast<size_t>(block_offsets[b + 1] - block_offsets[b]));
    file->read_at(bytes.data(), bytes.size(), block_offsets[b]);
    block.resize(static_cast<size_t>(count));
    decode_block(bytes.data(), bytes.data() + bytes.size(), block.size(), block.data());
    const int64_t take = std::min(n, count - in_block);
    std::memcpy(dst, block.data() + in_block, static_cast<size_t>(take) * sizeof(Pair));
    dst += take;
    pos += take;
    n -= take;
  }
}

void RunWriter::end_block() {
  encode_block(block_.data(), block_.size(), bytes_);
  block_.clear();
  run_.block_offsets.push_back(written_ + static_cast<int64_t>(bytes_.size()));
  if (bytes_.size() >= flush_bytes_) {
    run_.file->append(bytes_.data(), bytes_.size());
    written_ += static_cast<int64_t>(bytes_.size());
    bytes_.clear();
  }
}

SortedRun RunWriter::finish() {
  if (!block_.empty()) end_block();
  if (!bytes_.empty()) run_.file->append(bytes_.data(), bytes_.size());
  written_ += static_cast<int64_t>(bytes_.size());
  bytes_.clear();
  return std::move(run_);
}

int64_t SortedRun::lower_bound(uint64_t key, std::vector<Pair>& scratch) const {
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

SortedRun memory_run(const Pair* data, int64_t n, int64_t rank) {
  SortedRun r;
  r.memory = data;
  r.records = n;
  r.rank = rank;
  for (int64_t i = 0; i < n; i += SortedRun::kIndexStride) r.index.push_back(data[i].key);
  return r;
}

// LSD radix sort of n pairs by key bits [first_bit, key_bits); stable, so pairs equal in those bits
// keep their order (a run sorted by (a, b) and transposed to (b, a) needs sorting by b only).
void radix_sort(Pair* a, Pair* tmp, size_t n, int key_bits, int first_bit) {
  key_bits -= first_bit;
  if (n < 2 || key_bits <= 0) return;
  const int passes = (key_bits + 10) / 11;
  const int digit = (key_bits + passes - 1) / passes;
  const size_t buckets = size_t{1} << digit;
  const uint64_t mask = buckets - 1;
  std::vector<size_t> counts(buckets * passes, 0);
  for (size_t i = 0; i < n; ++i)
    for (int p = 0; p < passes; ++p) ++counts[p * buckets + ((a[i].key >> (first_bit + p * digit)) & mask)];
  Pair* src = a;
  Pair* dst = tmp;
  for (int p = 0; p < passes; ++p) {
    size_t* c = counts.data() + p * buckets;
    const int shift = first_bit + p * digit;
    if (c[(src[0].key >> shift) & mask] == n) continue;  // every key has this digit
    size_t sum = 0;
    for (size_t b = 0; b < buckets; ++b) {
      const size_t k = c[b];
      c[b] = sum;
      sum += k;
    }
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

int64_t merge_to_fan_in(std::vector<SortedRun>& disk_runs, size_t fan_in, size_t reader_records, int threads,
                        const std::string& temp_dir, const std::string& prefix) {
  std::sort(disk_runs.begin(), disk_runs.end(), [](const SortedRun& a, const SortedRun& b) { return a.rank < b.rank; });
  FirstFailure failure;
  int64_t passes = 0;
  while (disk_runs.size() > fan_in) {
    ++passes;
    const int64_t groups = static_cast<int64_t>((disk_runs.size() + fan_in - 1) / fan_in);
    std::vector<SortedRun> next(static_cast<size_t>(groups));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t g = 0; g < groups; ++g) {
      if (failure.failed()) continue;
      try {
        const size_t first = static_cast<size_t>(g) * fan_in, last = std::min(disk_runs.size(), first + fan_in);
        if (last - first == 1) {
          next[g] = std::move(disk_runs[first]);
          continue;
        }
        std::vector<RunCursor> cursors;
        for (size_t i = first; i < last; ++i)
          cursors.emplace_back(disk_runs[i], 0, disk_runs[i].records, reader_records);
        RunWriter writer(temp_dir, prefix, reader_records, disk_runs[first].rank);
        merge_cursors(cursors, [&](uint64_t key, double value) { writer.put(key, value); });
        next[g] = writer.finish();
        cursors.clear();
        for (size_t i = first; i < last; ++i) disk_runs[i].file.reset();  // closing frees the data
      } catch (...) {
        failure.record();
      }
    }
    failure.rethrow();
    disk_runs.swap(next);
  }
  return passes;
}

}  // namespace glove
}  // namespace seqkernels
