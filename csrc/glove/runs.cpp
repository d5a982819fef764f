// Co-occurrence counts as exact partial sums, for counting one corpus in pieces (the Dask map and
// reduce tasks of seqkernels.glove.distributed): a map task counts its shard with
// count_cooccurrences (exact_sums on) into one sorted run file per row range; a reduce task merges
// the runs of its row range from every shard. The values are integers (weights scaled by
// cooccur_value_scale), so their sums do not depend on how the corpus was split, and the records
// of the row ranges, concatenated, are byte for byte what one count_cooccurrences call writes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "external_sort.h"
#include "seqkernels/glove.h"

namespace seqkernels {
namespace glove {
namespace {

constexpr int kRunIdBits = 32;  // run files keep word1 << 32 | word2, whatever the vocabulary size
constexpr size_t kBufferRecords = 1 << 16;

void write_all(int fd, const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t put = ::write(fd, p, bytes);
    if (put < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("writing a run file failed (is the disk full?): ") + std::strerror(errno));
    }
    p += put;
    bytes -= static_cast<size_t>(put);
  }
}

// Records, in (word1, word2) order, to one run file per row range: range k takes the rows
// first_rows[k] <= word1 < first_rows[k + 1] (1-based), the last one every row from its first on.
class PartitionSink : public RecordSink {
 public:
  PartitionSink(std::vector<int> fds, std::vector<int64_t> first_rows)
      : fds_(std::move(fds)), first_rows_(std::move(first_rows)), counts_(fds_.size(), 0) {
    buf_.reserve(kBufferRecords);
  }
  void write(const CooccurRecord* r, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      while (part_ + 1 < fds_.size() && r[i].word1 >= first_rows_[part_ + 1]) {
        flush();
        ++part_;
      }
      buf_.push_back({(static_cast<uint64_t>(r[i].word1) << kRunIdBits) | static_cast<uint32_t>(r[i].word2),
                      r[i].value});
      ++counts_[part_];
      if (buf_.size() == kBufferRecords) flush();
    }
  }
  void finish() override { flush(); }
  const std::vector<int64_t>& counts() const { return counts_; }

 private:
  void flush() {
    if (!buf_.empty()) write_all(fds_[part_], buf_.data(), buf_.size() * sizeof(Pair));
    buf_.clear();
  }
  std::vector<int> fds_;
  std::vector<int64_t> first_rows_;
  std::vector<int64_t> counts_;
  std::vector<Pair> buf_;
  size_t part_ = 0;
};

}  // namespace

CooccurStats count_cooccurrence_runs(ByteSource& corpus, const std::vector<std::string>& words,
                                     const CooccurOptions& options, const std::vector<int>& fds,
                                     const std::vector<int64_t>& first_rows, std::vector<int64_t>& records_per_run) {
  SK_CHECK(!fds.empty() && fds.size() == first_rows.size(),
           "runs: expected one file descriptor per row range, got " << fds.size() << " and " << first_rows.size()
                                                                    << " first rows");
  for (size_t k = 0; k < first_rows.size(); ++k)
    SK_CHECK(first_rows[k] >= 1 && (k == 0 || first_rows[k] > first_rows[k - 1]),
             "first_rows: expected increasing 1-based rows, got " << first_rows[k] << " at " << k);
  SK_CHECK(first_rows[0] == 1, "first_rows: the first range must start at row 1, got " << first_rows[0]);
  CooccurOptions o = options;
  o.exact_sums = true;
  PartitionSink sink(fds, first_rows);
  CooccurStats stats = count_cooccurrences(corpus, words, o, sink);
  records_per_run = sink.counts();
  return stats;
}

int64_t merge_cooccurrence_runs(const std::vector<std::string>& paths, double scale, const std::string& temp_dir,
                                int max_open_runs, RecordSink& sink) {
  SK_CHECK(scale >= 1, "scale: expected >= 1, got " << scale);
  SK_CHECK(max_open_runs >= 2, "max_open_runs: expected >= 2, got " << max_open_runs);
  std::vector<SortedRun> runs;
  for (size_t i = 0; i < paths.size(); ++i) {
    SortedRun run;
    run.file = TempFile::open_existing(paths[i]);
    const int64_t bytes = run.file->size();
    SK_CHECK(bytes % static_cast<int64_t>(sizeof(Pair)) == 0,
             "run file '" << paths[i] << "' is truncated or corrupt: " << bytes << " bytes is not a multiple of "
                          << sizeof(Pair));
    run.records = bytes / static_cast<int64_t>(sizeof(Pair));
    run.rank = static_cast<int64_t>(i);
    if (run.records) runs.push_back(std::move(run));
  }
  // Open at most max_open_runs at once: more runs are first merged in groups into temporary runs
  // (exact sums, so grouping does not change a value).
  merge_to_fan_in(runs, static_cast<size_t>(max_open_runs), kBufferRecords / 16, 1, temp_dir, "seqkernels-reduce");
  std::vector<RunCursor> cursors;
  for (const SortedRun& run : runs) cursors.emplace_back(run, 0, run.records, kBufferRecords / 16);
  std::vector<CooccurRecord> out;
  out.reserve(kBufferRecords);
  int64_t written = 0;
  uint64_t previous = 0;
  const uint64_t mask = (uint64_t{1} << kRunIdBits) - 1;
  merge_cursors(cursors, [&](uint64_t key, double value) {
    SK_CHECK(key > previous, "run files: records out of order (key " << key << " after " << previous
                                                                     << "); they are not sorted runs of this format");
    previous = key;
    out.push_back({static_cast<int32_t>(key >> kRunIdBits), static_cast<int32_t>(key & mask), value / scale});
    if (out.size() == kBufferRecords) {
      sink.write(out.data(), out.size());
      written += static_cast<int64_t>(out.size());
      out.clear();
    }
  });
  sink.write(out.data(), out.size());
  written += static_cast<int64_t>(out.size());
  sink.finish();
  return written;
}

}  // namespace glove
}  // namespace seqkernels
