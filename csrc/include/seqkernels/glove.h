// seqkernels — GloVe on the CPU: vocabulary counting, co-occurrence counting with bounded memory,
// AdaGrad training and the Stanford file writers (docs/ops.md §5; issue 5).
//
// Stanford GloVe (vocab_count, cooccur, glove) is the compatibility target; the exact rules are
// written out, for reading, in python/seqkernels/reference/glove.py, and every function here is
// tested against that module. Deliberate differences from Stanford are listed there.
//
// Dimension legend for this header (beside common.h's):
//   V  vocabulary size (words are ids 0..V-1 here; files store them 1-based)
//   D  vector size (Stanford's -vector-size)
//   N  co-occurrence records
//
// Nothing here knows about Python. Every function validates its arguments and throws
// std::invalid_argument (→ ValueError) for bad ones and std::runtime_error (→ RuntimeError) for
// I/O failures; none calls exit(). Progress callbacks are called only from the calling thread,
// outside parallel regions, and may throw to cancel: all temporary files are removed on the way
// out (RAII), whatever the exit path.
//
// CUDA: training is cuda/glove/train.cu (section "CUDA training" below). A CUDA co-occurrence (not
// written yet) slots in behind the same interfaces: co-occurrence
// keeps this file's tokenizer, vocabulary lookup, RecordSink and sorted-run merge, and replaces
// only the per-block pair counting (ids uploaded per block, pairs radix-sorted and reduced by key
// on the device; each block's result becomes one more sorted run). Training keeps TrainArgs, with
// device pointers, and the same per-record update (train.cpp holds it as one inline function).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "seqkernels/common.h"

namespace seqkernels {
namespace glove {

// Stanford keeps at most this many bytes of a token (MAX_STRING_LENGTH - 1).
constexpr int kMaxTokenBytes = 999;

// ---- input -------------------------------------------------------------------------------------

// A stream of corpus bytes. Implementations: a file (opened and closed here), a file descriptor
// (stdin; not closed), or memory owned by the caller (kept alive for the whole call).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Fills up to n bytes; returns 0 only at the end. Throws std::runtime_error on a read error.
  virtual size_t read(char* buf, size_t n) = 0;
  // Total size in bytes when known in advance (files, memory), else -1 (pipes).
  virtual int64_t size() const { return -1; }
};
// on_interrupt, when given, runs whenever a read is interrupted by a signal (before it resumes) and
// may throw to cancel: it lets Ctrl-C stop a read that waits on a pipe.
std::unique_ptr<ByteSource> file_source(const std::string& path, std::function<void()> on_interrupt = {});
std::unique_ptr<ByteSource> fd_source(int fd, std::function<void()> on_interrupt = {});
std::unique_ptr<ByteSource> memory_source(const char* data, size_t size);

// progress(stage, done, total): stage is "vocab", "cooccur", "merge"; done/total in bytes for the
// counting stages (total -1 when unknown) and in row chunks of the final merge for "merge".
using Progress = std::function<void(const char* stage, int64_t done, int64_t total)>;

// ---- vocabulary (vocab_count) ------------------------------------------------------------------

struct VocabOptions {
  int64_t min_count = 1;   // drop words seen fewer times (applied after max_vocab, as Stanford)
  int64_t max_vocab = 0;   // keep at most this many words; 0 = no limit
  int num_threads = 0;     // 0 = OpenMP's default
  size_t block_bytes = 0;  // bytes read per block; 0 = automatic (tests use tiny blocks)
  Progress progress;
};

struct VocabResult {
  std::vector<std::string> words;  // (V,) Stanford's order: count descending, then signed bytes
  std::vector<int64_t> counts;     // (V,)
  int64_t tokens = 0;              // tokens in the corpus
  int64_t distinct = 0;            // distinct tokens before min_count / max_vocab
};

// Counts tokens with one hash table per thread over parallel slices of each block. Throws
// std::invalid_argument if the corpus contains the reserved token <unk>.
VocabResult count_vocabulary(ByteSource& corpus, const VocabOptions& options);

// Stanford's word order: true when a sorts before b under scmp (signed chars, then the end).
bool stanford_word_less(const std::string& a, const std::string& b);
// Stanford's hash-table bucket of a word (bitwisehash, 2^20 buckets): the tie order of max_vocab.
uint32_t stanford_bucket(const std::string& word);

// ---- co-occurrence (cooccur) -------------------------------------------------------------------

// One record of cooccurrence.bin: 16 bytes, little-endian, 1-based ids.
struct CooccurRecord {
  int32_t word1;
  int32_t word2;
  double value;
};
static_assert(sizeof(CooccurRecord) == 16, "cooccurrence.bin records are 16 bytes");

// Where the sorted, unique, nonzero records go, in order.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void write(const CooccurRecord* records, size_t n) = 0;
  virtual void finish() {}
};
// Writes Stanford's cooccurrence.bin to a file descriptor (buffered; the fd is not closed).
std::unique_ptr<RecordSink> fd_record_sink(int fd);

struct CooccurOptions {
  int window_size = 15;            // context words on each side (Stanford -window-size), >= 1
  bool symmetric = true;           // count right context too (-symmetric 1)
  bool distance_weighting = true;  // add 1/d rather than 1 (-distance-weighting 1)
  double memory_gb = 4.0;          // budget for this call's tables and buffers, planned before
                                   //   counting (-memory); the sink's output is not included
  int num_threads = 0;             // 0 = OpenMP's default
  std::string temp_dir;            // where spilled runs go; "" = $TMPDIR or /tmp
  std::string temp_prefix = "seqkernels-cooccur";  // file name prefix (Stanford -overflow-file)
  // Overrides of the memory-derived sizes (Stanford -max-product, -overflow-length); -1 = derive.
  // Cell (i, j) (1-based ranks) is counted in a thread's dense table when j <= max_product / i,
  // otherwise it goes to that thread's pair buffer of overflow_length records, which is sorted,
  // summed and spilled to a temporary file as one run whenever it fills. Symmetric counting keeps
  // only the cells i <= j (X is symmetric) and writes the mirrored half at the end.
  int64_t max_product = -1;
  int64_t overflow_length = -1;
  int max_open_runs = 0;           // merge fan-in; 0 = derived from memory (>= 2)
  size_t block_bytes = 0;          // corpus bytes per block; 0 = automatic
  // Write each value times cooccur_value_scale(options) (the exact integer sums, when the weights
  // are integers after scaling): partial counts of pieces of a corpus then add up exactly.
  bool exact_sums = false;
  Progress progress;
};

struct CooccurStats {
  int64_t tokens = 0;           // tokens read
  int64_t kept_tokens = 0;      // tokens in the vocabulary
  int64_t records = 0;          // records written to the sink
  int64_t max_product = 0;      // as used
  int64_t overflow_length = 0;  // as used (per thread)
  int64_t dense_bucket_capacity = 0;  // updates a dense-table bucket holds before it is applied (0: none)
  int64_t runs_spilled = 0;     // sorted runs written to temporary files
  int64_t spilled_records = 0;  // records in those runs (16 bytes each in memory)
  int64_t spilled_bytes = 0;    // bytes of those runs on disk (compact: delta-coded keys, integer values)
  int64_t merge_passes = 0;     // intermediate merge passes (hierarchical merge; 0 = direct)
  int64_t budget_bytes = 0;     // memory_gb in bytes
  int64_t peak_bytes = 0;       // largest total of the tracked allocations (tables, buffers)
  int num_threads = 0;
  double seconds_tokenize = 0;  // reading and tokenizing blocks
  double seconds_count = 0;     // adding pairs (includes spilling full buffers)
  double seconds_merge = 0;     // sorting the last buffers, merging runs, writing the records
};

// Counts X over the corpus for the vocabulary `words` (id = index, 0-based) and writes its
// records to `sink` sorted by (word1, word2), one per key, nonzero values only. Threads split each
// block's tokens (windows that straddle the split read the other slice's ids) and own their
// tables and buffers. Throws std::invalid_argument for bad options, a vocabulary with duplicates
// or <unk>, or a memory limit too small for one run; std::runtime_error for I/O failures.
CooccurStats count_cooccurrences(ByteSource& corpus, const std::vector<std::string>& words,
                                 const CooccurOptions& options, RecordSink& sink);

// ---- co-occurrence in pieces (runs.cpp; the Dask map and reduce tasks) -------------------------

// The factor that makes the weights integers: lcm(1..window) with distance weighting when it is at
// most 2^32 (window <= 22), else 1; sums of scaled weights are then exact below 2^53.
double cooccur_value_scale(const CooccurOptions& options);

// Map: counts the corpus (one shard) with exact sums into sorted run files, one per row range:
// fds[k] gets the records with first_rows[k] <= word1 < first_rows[k + 1] (1-based; first_rows[0]
// = 1), as 16-byte pairs (key word1 << 32 | word2, scaled value). records_per_run: how many each.
CooccurStats count_cooccurrence_runs(ByteSource& corpus, const std::vector<std::string>& words,
                                     const CooccurOptions& options, const std::vector<int>& fds,
                                     const std::vector<int64_t>& first_rows, std::vector<int64_t>& records_per_run);

// Reduce: merges run files of one row range (from every shard, in shard order), sums equal keys,
// divides by `scale` and writes cooccurrence.bin records to sink. At most max_open_runs files are
// read at once (more are first merged in groups into temporary files in temp_dir). Returns the
// records written.
int64_t merge_cooccurrence_runs(const std::vector<std::string>& paths, double scale, const std::string& temp_dir,
                                int max_open_runs, RecordSink& sink);

// ---- training (glove) --------------------------------------------------------------------------

struct TrainArgs {
  int64_t vocab_size = 0;          // V
  int vector_size = 0;             // D
  int64_t records = 0;             // N
  const int32_t* rows = nullptr;   // (N,) word ids in [0, V), borrowed
  const int32_t* cols = nullptr;   // (N,) context-word ids in [0, V), borrowed
  const double* values = nullptr;  // (N,) X values, > 0, borrowed
  double* W = nullptr;             // (2V, D+1) Stanford layout: word i = row i, context j = row
                                   //   V+j, bias in column D; updated in place (borrowed)
  double* gradsq = nullptr;        // (2V, D+1) AdaGrad accumulators (start at 1), updated in place
  const double* log_values = nullptr;  // (N,) optional: log(values), from record_terms (saves a
  const double* weights = nullptr;     //   log and a pow per record and epoch); (N,) f(values)
  double eta = 0.05, x_max = 100.0, alpha = 0.75, grad_clip = 100.0;
  int num_threads = 0;             // Hogwild threads; thread t takes the t-th contiguous slice of
                                   //   the records (N/T each, the remainder to the last), as Stanford
};

struct EpochResult {
  double cost = 0.0;     // sum of 0.5 * f * diff^2 (Stanford prints cost / N)
  int64_t skipped = 0;   // records skipped because their diff was not finite
};

// One pass over the records in the given order (shuffle them beforehand). With one thread the
// result is deterministic; with more, threads update shared rows without locks (Hogwild), as
// Stanford does. Dispatches to the copy compiled for the CPU's capability (cpu_capability.h).
EpochResult train_epoch(const TrainArgs& args);

// log(x) and f(x) = (x > x_max ? 1 : pow(x / x_max, alpha)) per record, exactly as Stanford computes
// them inside its update (the same libm calls), for TrainArgs::log_values / weights.
void record_terms(const double* values, int64_t n, double x_max, double alpha, double* log_values, double* weights,
                  int num_threads);

// Stanford's initial parameters: srand(seed), then W[k] = (rand() / RAND_MAX - 0.5) / D for
// k = 0..count-1, with glibc's rand() reproduced exactly (so Stanford and seqkernels start from
// the same W for the same -seed on glibc systems).
void stanford_init(double* W, int64_t count, int vector_size, uint32_t seed);

// ---- vectors.txt -------------------------------------------------------------------------------

// Writes "word v1 v2 ... vk\n" per row with Stanford's "%lf" (6 decimals), after the line `header`
// unless it is empty. M is (rows, cols) row-major with leading dimension ld >= cols.
void write_text_vectors(const std::string& path, const std::vector<std::string>& words, const double* M,
                        int64_t rows, int64_t cols, int64_t ld, const std::string& header);

}  // namespace glove
}  // namespace seqkernels
