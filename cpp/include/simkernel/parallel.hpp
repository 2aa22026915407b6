// A fork-join loop over tasks and the cooperative stop flag long calls poll.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>

namespace simkernel {

// Set when a call must end early (Ctrl-C). Worker 0 runs on the calling thread
// and is the only one that asks `check_interrupt` (which may take the GIL), at
// most every 50 ms; other workers only read the flag.
class StopFlag {
 public:
  explicit StopFlag(std::function<bool()> check_interrupt = nullptr);
  bool stopped(unsigned worker);
  bool stopped() const { return stop_.load(std::memory_order_relaxed); }

 private:
  std::function<bool()> check_interrupt_;
  std::atomic<bool> stop_{false};
  std::chrono::steady_clock::time_point last_check_;
};

// The workers a call of `tasks` tasks asked to use `threads` runs on: at
// least 1, at most one per task and at most 4 per hardware thread (more
// only cost memory and thread starts, whatever `threads` asked).
unsigned worker_count(std::size_t tasks, unsigned threads);

// Runs task(t, worker) for t in [0, tasks) on worker_count(tasks, threads)
// workers (fewer where the OS refuses to start more threads); worker 0
// is the calling thread, the others come from a pool kept between calls (or
// are started for the call when another call holds the pool). Each worker
// takes tasks in increasing order. Safe across fork().
void parallel_for(std::size_t tasks, unsigned threads,
                  const std::function<void(std::size_t, unsigned)>& task);

}  // namespace simkernel
