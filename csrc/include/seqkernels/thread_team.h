// The CPU kernels' own thread team: persistent workers, waits that degrade gracefully
// when a core is taken away, and a fresh team in a child process after fork().
//
// Why not OpenMP: (1) libgomp's pool does not survive fork() — a child that calls a parallel region
// after its parent used one never returns (multiprocessing's default start method, DataLoader
// workers); (2) an OpenMP barrier spins for a long time (GOMP_SPINCOUNT) on a thread that the OS
// has descheduled, so a busy neighbour process turns every per-step barrier into a stall; (3) torch
// and NumPy bring OpenMP pools of their own, and two spinning pools on the same cores steal each
// other's time.
//
// Waiting inside a run (a task waiting for the previous stage, the caller waiting for the end):
// spin on an atomic for a bounded time (about one recurrent step), then sched_yield for a while,
// then sleep on a futex until woken. Idle workers spin ~10 µs between runs, then sleep, so they cost
// nothing once a call has ended.
//
// The exception to (3): once torch is loaded, its pool's workers are spinning anyway, so team runs
// can be handed to that pool (set_team_sharing below) instead of competing with it.
//
// Results never depend on the team size or on which member runs what: kernels split work into
// pieces fixed by the problem shape alone and only hand those pieces out (recurrent.cpp, blas.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace seqkernels {

// Waits until *word != seen: bounded spin, then yields, then futex sleep (woken by wake_all).
void wait_while_equal(const std::atomic<uint32_t>& word, uint32_t seen, std::atomic<int>& sleepers);
// Wakes every thread sleeping in wait_while_equal on `word` (cheap when nobody sleeps).
void wake_all(std::atomic<uint32_t>& word, const std::atomic<int>& sleepers);

// Context handed to each member of a team run.
struct TeamMember {
  int rank = 0;   // 0 = the calling thread
  int size = 1;
};

// Runs fn(member) on up to `threads` threads (the caller is rank 0) and returns when all that
// started have finished; exceptions thrown by any member are rethrown on the caller (the first
// one). When the team is busy (a call from another thread is running, or this is a nested call
// from inside a team run), fn runs on the caller alone with size 1; and once the caller's own fn
// has returned, our workers that have not started yet (no core for them at the moment) are
// dropped rather than waited for (a shared OpenMP pool, below, waits for its own). So fn must hand
// its work out dynamically (a shared counter, as team_parallel_for does) and never split it by rank
// or size: those only ever affect speed.
void team_run(int threads, const std::function<void(const TeamMember&)>& fn);

// for i in [0, pieces): fn(i), the pieces handed out in order to up to `threads` members.
void team_parallel_for(int threads, long pieces, const std::function<void(long)>& fn);

// Default team size: OMP_NUM_THREADS if set, else the CPUs this process may run on.
int default_team_size();
// Threads for a call: `requested`, or the default team size when it is 0.
int team_size(int requested);

// Times the team has been re-created in a child process after fork() (for tests and info).
int team_forks_seen();
// Jobs dropped from workers that had not started them when the caller finished (for tests and info).
long team_jobs_withdrawn();

// Sharing: when on, team runs go to the process's libgomp pool (torch's, once torch is loaded)
// instead of our own workers, so that its workers, still spinning after a torch op, take our job
// rather than compete with it for the cores. Never in a child of fork(). Off by default; the Python
// package turns it on when torch is imported (seqkernels._backend).
void set_team_sharing(bool share);
// Whether team runs go to a shared OpenMP pool (sharing on, a libgomp found, not a fork child). A
// run may still take our own team for a moment: after a few pool workers in a row joined late (a
// busy host), runs stay on our team for a second; that pause is not reported here.
bool team_shares_openmp_pool();

}  // namespace seqkernels
