// Corpus sources, the block reader, the cooccurrence.bin sink and the vectors.txt writer.
#include <fcntl.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "text.h"

namespace seqkernels {
namespace glove {

namespace {

std::string errno_text() { return std::strerror(errno); }

size_t read_some(int fd, char* buf, size_t n, const std::string& what, const std::function<void()>& on_interrupt) {
  for (;;) {
    const ssize_t got = ::read(fd, buf, n);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno == EINTR) {
      if (on_interrupt) on_interrupt();
      continue;
    }
    throw std::runtime_error("reading " + what + " failed: " + errno_text());
  }
}

void write_all(int fd, const char* data, size_t n, const std::string& what) {
  while (n > 0) {
    const ssize_t put = ::write(fd, data, n);
    if (put < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("writing " + what + " failed: " + errno_text());
    }
    data += put;
    n -= static_cast<size_t>(put);
  }
}

class FdSource : public ByteSource {
 public:
  FdSource(int fd, bool owned, std::string what, std::function<void()> on_interrupt)
      : fd_(fd), owned_(owned), what_(std::move(what)), on_interrupt_(std::move(on_interrupt)) {
    struct stat st;
    if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) size_ = st.st_size;
  }
  ~FdSource() override {
    if (owned_) ::close(fd_);
  }
  size_t read(char* buf, size_t n) override { return read_some(fd_, buf, n, what_, on_interrupt_); }
  int64_t size() const override { return size_; }

 private:
  int fd_;
  bool owned_;
  std::string what_;
  std::function<void()> on_interrupt_;
  int64_t size_ = -1;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const char* data, size_t size) : data_(data), size_(size) {}
  size_t read(char* buf, size_t n) override {
    n = std::min(n, size_ - pos_);
    if (n) std::memcpy(buf, data_ + pos_, n);
    pos_ += n;
    return n;
  }
  int64_t size() const override { return static_cast<int64_t>(size_); }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

class FdRecordSink : public RecordSink {
 public:
  explicit FdRecordSink(int fd) : fd_(fd) { buf_.reserve(kBufferRecords); }
  void write(const CooccurRecord* records, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      buf_.push_back(records[i]);
      if (buf_.size() == kBufferRecords) flush();
    }
  }
  void finish() override { flush(); }

 private:
  static constexpr size_t kBufferRecords = 1 << 16;  // 1 MiB
  void flush() {
    write_all(fd_, reinterpret_cast<const char*>(buf_.data()), buf_.size() * sizeof(CooccurRecord),
              "the co-occurrence output");
    buf_.clear();
  }
  int fd_;
  std::vector<CooccurRecord> buf_;
};

}  // namespace

std::unique_ptr<ByteSource> file_source(const std::string& path, std::function<void()> on_interrupt) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open corpus file '" + path + "': " + errno_text());
  return std::make_unique<FdSource>(fd, true, "corpus file '" + path + "'", std::move(on_interrupt));
}

std::unique_ptr<ByteSource> fd_source(int fd, std::function<void()> on_interrupt) {
  SK_CHECK(fd >= 0, "fd: expected a file descriptor >= 0, got " << fd);
  return std::make_unique<FdSource>(fd, false, "the corpus (fd " + std::to_string(fd) + ")", std::move(on_interrupt));
}

std::unique_ptr<ByteSource> memory_source(const char* data, size_t size) {
  SK_CHECK(data != nullptr || size == 0, "memory_source: null data");
  return std::make_unique<MemorySource>(data, size);
}

std::unique_ptr<RecordSink> fd_record_sink(int fd) {
  SK_CHECK(fd >= 0, "fd: expected a file descriptor >= 0, got " << fd);
  return std::make_unique<FdRecordSink>(fd);
}

void write_text_vectors(const std::string& path, const std::vector<std::string>& words, const double* M,
                        int64_t rows, int64_t cols, int64_t ld, const std::string& header) {
  SK_CHECK(rows >= 0 && cols >= 0 && ld >= cols, "write_text_vectors: bad shape (" << rows << ", " << cols
                                                                                    << ") with ld " << ld);
  SK_CHECK(static_cast<int64_t>(words.size()) == rows,
           "words: expected " << rows << " words (one per row), got " << words.size());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot create '" + path + "': " + errno_text());
  std::unique_ptr<FILE, int (*)(FILE*)> guard(f, &std::fclose);
  std::vector<char> line;
  char num[512];
  auto put = [&](const char* p, size_t n) { line.insert(line.end(), p, p + n); };
  bool ok = true;
  if (!header.empty()) {
    const std::string h = header + "\n";
    ok = std::fwrite(h.data(), 1, h.size(), f) == h.size();
  }
  for (int64_t r = 0; ok && r < rows; ++r) {
    line.clear();
    put(words[r].data(), words[r].size());
    for (int64_t c = 0; c < cols; ++c) {
      num[0] = ' ';
      // Shortest-exact fixed notation with 6 decimals: the same digits as printf("%lf").
      const auto res = std::to_chars(num + 1, num + sizeof(num), M[r * ld + c], std::chars_format::fixed, 6);
      if (res.ec != std::errc()) {  // only for absurd magnitudes; printf handles those
        const int n = std::snprintf(num + 1, sizeof(num) - 1, "%lf", M[r * ld + c]);
        put(num, static_cast<size_t>(n) + 1);
      } else {
        put(num, static_cast<size_t>(res.ptr - num));
      }
    }
    line.push_back('\n');
    ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  }
  if (!ok) throw std::runtime_error("writing '" + path + "' failed: " + errno_text());
  guard.release();
  if (std::fclose(f) != 0) throw std::runtime_error("writing '" + path + "' failed: " + errno_text());
}

namespace detail {

BlockReader::BlockReader(ByteSource& source, size_t block_bytes)
    : source_(source), buf_(std::max<size_t>(block_bytes, 1) + kMaxTokenBytes + 1), block_(block_bytes) {}

bool BlockReader::next(const char*& data, size_t& size) {
  char* buf = buf_.data();
  if (pending_size_ > 0) {  // the incomplete token after the last block's final separator
    std::memmove(buf, buf + pending_offset_, pending_size_);
    carry_ = pending_size_;
    pending_size_ = 0;
  }
  for (;;) {
    size_t filled = carry_;
    while (!eof_ && filled < buf_.size()) {
      const size_t got = source_.read(buf + filled, buf_.size() - filled);
      if (got == 0) eof_ = true;
      filled += got;
      consumed_ += static_cast<int64_t>(got);
    }
    if (skipping_) {
      // Inside a token longer than a block: keep its \r-free bytes up to 999, drop the rest
      // up to the next separator.
      size_t i = carry_;
      for (; i < filled && !is_separator(buf[i]); ++i)
        if (buf[i] != '\r' && carry_ < static_cast<size_t>(kMaxTokenBytes)) buf[carry_++] = buf[i];
      if (i == filled && !eof_) continue;  // still inside the token: read on
      std::memmove(buf + carry_, buf + i, filled - i);
      filled = carry_ + (filled - i);
      skipping_ = false;
    }
    if (eof_) {
      carry_ = 0;
      if (filled == 0) return false;
      data = buf;
      size = filled;
      return true;
    }
    size_t cut = filled;
    while (cut > 0 && !is_separator(buf[cut - 1])) --cut;
    if (cut > 0) {
      pending_offset_ = cut;
      pending_size_ = filled - cut;
      carry_ = 0;
      data = buf;
      size = cut;
      return true;
    }
    // The whole buffer is one token: compress it to its kept prefix and skip the rest.
    size_t kept = 0;
    for (size_t i = 0; i < filled && kept < static_cast<size_t>(kMaxTokenBytes); ++i)
      if (buf[i] != '\r') buf[kept++] = buf[i];
    carry_ = kept;
    skipping_ = true;
    // Bytes past the 999 kept ones in this buffer belong to the same token and are dropped.
  }
}

std::vector<size_t> split_at_separators(const char* data, size_t size, int parts) {
  std::vector<size_t> b(static_cast<size_t>(parts) + 1, size);
  b[0] = 0;
  for (int t = 1; t < parts; ++t) {
    size_t pos = std::max(b[t - 1], size / parts * t);
    while (pos < size && pos > 0 && !is_separator(data[pos - 1])) ++pos;
    b[t] = pos;
  }
  return b;
}

size_t default_block_bytes(int64_t budget_bytes) {
  const int64_t b = budget_bytes / 48;
  return static_cast<size_t>(std::clamp<int64_t>(b, 64 << 10, 8 << 20));
}

int resolve_threads(int requested) {
  SK_CHECK(requested >= 0, "threads: expected >= 0 (0 = all cores), got " << requested);
  return requested > 0 ? requested : std::max(1, omp_get_max_threads());
}

}  // namespace detail
}  // namespace glove
}  // namespace seqkernels
