// The CPU kernels' thread team (contract in seqkernels/thread_team.h).
#include "seqkernels/thread_team.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace seqkernels {
namespace {

using Clock = std::chrono::steady_clock;

// Inside a run (tasks waiting for a stage, the caller waiting for the end): about one recurrent step at the shapes
// people train — spinning longer only burns a core that a descheduled teammate (or another program)
// needs — then give the core away a few times before sleeping (cheaper to come back than a wake).
constexpr auto kSpin = std::chrono::microseconds(30);
constexpr auto kYield = std::chrono::microseconds(200);
// Between runs, idle workers spin only briefly: the time-parallel GEMMs and the recurrence of one
// call follow each other closely, but the next call may be far away and torch's or NumPy's own
// threads need the cores in between.
constexpr auto kIdleSpin = std::chrono::microseconds(10);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

void futex_wait(const std::atomic<uint32_t>& word, uint32_t seen) {
#if defined(__linux__)
  // Returns at once if the word no longer holds `seen` (so a wake between our check and the sleep is
  // never lost); spurious returns are handled by the caller's loop.
  syscall(SYS_futex, reinterpret_cast<const uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
#else
  (void)word;
  (void)seen;
  std::this_thread::yield();
#endif
}

void futex_wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

thread_local bool t_in_team = false;  // nested team_run calls run inline

// Waits until word != seen: spin for `spin`, yield until `spin + yield`, then sleep on the futex.
void wait_for_change(const std::atomic<uint32_t>& word, uint32_t seen, std::atomic<int>& sleepers,
                     Clock::duration spin, Clock::duration yield);

// A job handed to a worker is taken by the worker or withdrawn by the caller, never both: the
// caller withdraws it once it has finished its own share, so a worker that has not got a core
// yet (a busy neighbour, a vCPU the host is running elsewhere) holds up nothing. Kernels hand out
// their pieces dynamically, so the members that did start have done all the work.
enum JobState : int { kNoJob, kPosted, kTaken, kWithdrawn };

struct Worker {
  alignas(64) std::atomic<uint32_t> gen{0};  // bumped by the caller to hand this worker a job
  std::atomic<int> sleepers{0};
  std::atomic<int> state{kNoJob};
  std::thread thread;
};

struct Pool {
  std::mutex run_mutex;  // one team run at a time; others run inline
  std::vector<std::unique_ptr<Worker>> workers;  // ranks 1..n
  // The current job (written before the workers' gen is bumped, read only by participants).
  const std::function<void(const TeamMember&)>* job = nullptr;
  int job_size = 1;
  std::atomic<int> remaining{0};
  alignas(64) std::atomic<uint32_t> done_gen{0};
  std::atomic<int> done_sleepers{0};
  std::mutex error_mutex;
  std::exception_ptr error;

  void record(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = e;
  }

  void run_member(int rank) {
    TeamMember m{rank, job_size};
    t_in_team = true;
    try {
      (*job)(m);
    } catch (...) {
      record(std::current_exception());
    }
    t_in_team = false;
  }

  void worker_loop(Worker& w, int rank) {
    uint32_t seen = 0;
    for (;;) {
      wait_for_change(w.gen, seen, w.sleepers, kIdleSpin, Clock::duration::zero());
      seen = w.gen.load(std::memory_order_acquire);
      int posted = kPosted;  // a late wake may find the job withdrawn (or a newer one posted)
      if (!w.state.compare_exchange_strong(posted, kTaken, std::memory_order_acq_rel)) continue;
      run_member(rank);
      finish_one();
    }
  }

  // One member fewer to wait for: taken jobs finish here, withdrawn ones in team_run.
  void finish_one() {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      done_gen.fetch_add(1, std::memory_order_seq_cst);
      wake_all(done_gen, done_sleepers);
    }
  }

  void grow(int n) {  // called with run_mutex held
    while (static_cast<int>(workers.size()) < n) {
      workers.push_back(std::make_unique<Worker>());
      Worker* w = workers.back().get();
      const int rank = static_cast<int>(workers.size());
      w->thread = std::thread([this, w, rank] { worker_loop(*w, rank); });
      w->thread.detach();  // lives as long as the process (or is left behind by fork)
    }
  }
};

std::atomic<Pool*> g_pool{nullptr};
std::atomic<int> g_forks{0};
std::atomic<long> g_withdrawn{0};

void after_fork_in_child() {
  // The parent's workers do not exist in the child; its pool (and any mutex a parent thread held
  // at the fork) is abandoned, never touched again, and a fresh one is made on first use.
  g_pool.store(nullptr);
  g_forks.fetch_add(1);
  t_in_team = false;
}

Pool* pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return p;
  static const int registered = [] { return pthread_atfork(nullptr, nullptr, after_fork_in_child); }();
  (void)registered;
  auto* fresh = new Pool;  // never deleted: workers may outlive static destruction
  if (g_pool.compare_exchange_strong(p, fresh)) return fresh;
  delete fresh;
  return p;
}

// ---- running on another library's OpenMP pool -----------------------------------------------------
// torch's CPU ops run on libgomp's pool, whose workers keep spinning for a while after each op
// (GOMP_SPINCOUNT). A layer of ours that runs next, on threads of its own, shares the cores with
// those spinners: LSTM B16 H256 T100 forward went from 10.1 ms alone to 15.9 ms right after a torch
// op. Handing our team's job to that same pool instead lets the spinning workers take it at once
// (10.8 ms). The pool is found by its soname among the libraries already loaded (torch's
// libgomp.so.1; ours, in a wheel, is vendored under another name) and driven through libgomp's ABI,
// GOMP_parallel, which is what `#pragma omp parallel` compiles to.
struct GompApi {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned) = nullptr;
  int (*thread_num)() = nullptr;
  int (*num_threads)() = nullptr;
};

std::atomic<bool> g_share_requested{false};
// Whether the pool is serving: a busy neighbour process shows up as a pool worker that joins late
// (it was spinning, so the scheduler does not favour it over the neighbour and it waits for a 4 ms
// tick; our own workers sleep between runs and are woken first). A few late joins in a row send the
// runs to our own team for a while; then the pool is tried again.
constexpr auto kLateJoin = std::chrono::microseconds(500);
constexpr int kLateJoinsInARow = 3;  // one alone is the host taking a vCPU for a moment
constexpr auto kOwnTeamAfterLateJoin = std::chrono::seconds(1);
std::atomic<Clock::rep> g_shared_pause_until{0};
std::atomic<int> g_late_joins{0};
std::atomic<const GompApi*> g_gomp{nullptr};
std::mutex g_gomp_mutex;

const GompApi* loaded_gomp() {
  if (const GompApi* api = g_gomp.load(std::memory_order_acquire)) return api;
  std::lock_guard<std::mutex> lock(g_gomp_mutex);
  if (const GompApi* api = g_gomp.load(std::memory_order_acquire)) return api;
  void* lib = dlopen("libgomp.so.1", RTLD_NOLOAD | RTLD_LAZY);  // only if someone already loaded it
  if (!lib) return nullptr;  // not (yet) in the process: asked again next time
  auto* api = new GompApi;   // kept for the life of the process, like the library
  api->parallel = reinterpret_cast<decltype(api->parallel)>(dlsym(lib, "GOMP_parallel"));
  api->thread_num = reinterpret_cast<decltype(api->thread_num)>(dlsym(lib, "omp_get_thread_num"));
  api->num_threads = reinterpret_cast<decltype(api->num_threads)>(dlsym(lib, "omp_get_num_threads"));
  if (!api->parallel || !api->thread_num || !api->num_threads) {
    delete api;
    return nullptr;
  }
  g_gomp.store(api, std::memory_order_release);
  return api;
}

// The pool to share, or null: sharing asked for, a libgomp loaded, and not a child of fork() (a
// parent's libgomp pool does not survive it; the child keeps to a fresh team of ours).
const GompApi* pool_to_share() {
  if (!g_share_requested.load(std::memory_order_relaxed) || g_forks.load(std::memory_order_relaxed) > 0)
    return nullptr;
  return loaded_gomp();
}
// ... and null while runs are sent to our own team after late joins (kOwnTeamAfterLateJoin).
const GompApi* shared_pool() {
  if (Clock::now().time_since_epoch().count() < g_shared_pause_until.load(std::memory_order_relaxed)) return nullptr;
  return pool_to_share();
}

struct SharedRun {
  const GompApi* api;
  const std::function<void(const TeamMember&)>* fn;
  Clock::time_point start;
  std::mutex error_mutex;
  std::exception_ptr error;
  std::atomic<bool> late_join{false};  // a pool worker started more than kLateJoin after `start`
};

void shared_member(void* data) {
  auto* run = static_cast<SharedRun*>(data);
  const bool nested = t_in_team;
  t_in_team = true;
  const int size = run->api->num_threads(), rank = run->api->thread_num();
  if (rank != 0 && Clock::now() - run->start > kLateJoin) run->late_join.store(true, std::memory_order_relaxed);
  try {
    (*run->fn)(TeamMember{rank, size});
  } catch (...) {
    std::lock_guard<std::mutex> lock(run->error_mutex);
    if (!run->error) run->error = std::current_exception();
  }
  t_in_team = nested;
}

}  // namespace

namespace {
void wait_for_change(const std::atomic<uint32_t>& word, uint32_t seen, std::atomic<int>& sleepers,
                     Clock::duration spin, Clock::duration yield) {
  if (word.load(std::memory_order_acquire) != seen) return;
  const auto start = Clock::now();
  for (int i = 1;; ++i) {  // bounded spin
    cpu_relax();
    if (word.load(std::memory_order_acquire) != seen) return;
    if ((i & 63) == 0 && Clock::now() - start > spin) break;
  }
  while (Clock::now() - start < spin + yield) {  // give the core away, come back soon
    sched_yield();
    if (word.load(std::memory_order_acquire) != seen) return;
  }
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  while (word.load(std::memory_order_seq_cst) == seen) futex_wait(word, seen);
  sleepers.fetch_sub(1, std::memory_order_relaxed);
}
}  // namespace

void set_team_sharing(bool share) { g_share_requested.store(share, std::memory_order_relaxed); }

// The setting, not the moment: a pause after late joins (a busy host) is not reported.
bool team_shares_openmp_pool() { return pool_to_share() != nullptr; }

void wait_while_equal(const std::atomic<uint32_t>& word, uint32_t seen, std::atomic<int>& sleepers) {
  wait_for_change(word, seen, sleepers, kSpin, kYield);
}

void wake_all(std::atomic<uint32_t>& word, const std::atomic<int>& sleepers) {
  // Paired with wait_while_equal: the waiter registers as a sleeper before re-checking the word,
  // the waker changes the word before reading the sleeper count (both seq_cst), so one of the two
  // always sees the other.
  if (sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(word);
}

void team_run(int threads, const std::function<void(const TeamMember&)>& fn) {
  if (threads <= 1 || t_in_team) {
    fn(TeamMember{0, 1});
    return;
  }
  Pool* p = pool();
  std::unique_lock<std::mutex> lock(p->run_mutex, std::try_to_lock);
  if (!lock.owns_lock()) {  // another thread's call holds the team: run alone, same results
    fn(TeamMember{0, 1});
    return;
  }
  if (const GompApi* api = shared_pool()) {
    SharedRun run{api, &fn, Clock::now(), {}, nullptr};
    api->parallel(shared_member, &run, static_cast<unsigned>(threads), 0);
    if (!run.late_join.load(std::memory_order_relaxed)) {
      g_late_joins.store(0, std::memory_order_relaxed);
    } else if (g_late_joins.fetch_add(1, std::memory_order_relaxed) + 1 >= kLateJoinsInARow) {
      g_late_joins.store(0, std::memory_order_relaxed);
      g_shared_pause_until.store((Clock::now() + kOwnTeamAfterLateJoin).time_since_epoch().count());
    }
    if (run.error) std::rethrow_exception(run.error);
    return;
  }
  p->grow(threads - 1);
  p->job = &fn;
  p->job_size = threads;
  p->error = nullptr;
  p->remaining.store(threads - 1, std::memory_order_relaxed);
  const uint32_t done_seen = p->done_gen.load(std::memory_order_acquire);
  for (int r = 1; r < threads; ++r) {
    Worker& w = *p->workers[r - 1];
    w.state.store(kPosted, std::memory_order_release);  // publishes the job fields above
    w.gen.fetch_add(1, std::memory_order_seq_cst);
    wake_all(w.gen, w.sleepers);
  }
  p->run_member(0);
  for (int r = 1; r < threads; ++r) {  // withdraw the job from workers that have not started it
    int posted = kPosted;
    if (p->workers[r - 1]->state.compare_exchange_strong(posted, kWithdrawn, std::memory_order_acq_rel)) {
      g_withdrawn.fetch_add(1, std::memory_order_relaxed);
      p->finish_one();
    }
  }
  wait_while_equal(p->done_gen, done_seen, p->done_sleepers);
  p->job = nullptr;
  if (p->error) {
    std::exception_ptr e = p->error;
    p->error = nullptr;
    std::rethrow_exception(e);
  }
}

void team_parallel_for(int threads, long pieces, const std::function<void(long)>& fn) {
  if (pieces <= 0) return;
  const int n = static_cast<int>(std::min<long>(threads, pieces));
  // Pieces handed out one at a time: a member that lost its core holds up one piece, not a share.
  std::atomic<long> next{0};
  team_run(n, [&](const TeamMember&) {
    for (long i = next.fetch_add(1, std::memory_order_relaxed); i < pieces;
         i = next.fetch_add(1, std::memory_order_relaxed))
      fn(i);
  });
}

int default_team_size() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);  // "4" or "4,2" (nested lists: the first level)
    if (n > 0) return n;
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

int team_size(int requested) { return requested > 0 ? requested : default_team_size(); }

int team_forks_seen() { return g_forks.load(); }

long team_jobs_withdrawn() { return g_withdrawn.load(std::memory_order_relaxed); }

}  // namespace seqkernels
