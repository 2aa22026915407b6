#include "simkernel/parallel.hpp"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace simkernel {

namespace {

constexpr auto kCheckInterval = std::chrono::milliseconds(50);

// Threads kept between calls, so a small search does not pay tens of
// microseconds to start threads. One call uses the pool at a time; a call
// that finds it busy (another Python thread is searching) starts threads of
// its own. Workers sleep on a condition variable: nothing spins between calls
// to compete with numpy's or torch's threads.
class Pool {
 public:
  // Runs work(worker) for worker in [1, workers) on pool threads; false
  // (nothing run) if the pool is busy.
  bool try_run(unsigned workers, const std::function<void(unsigned)>& work) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || job_ != nullptr) return false;
    while (threads_.size() + 1 < workers) {
      unsigned id = static_cast<unsigned>(threads_.size()) + 1;
      threads_.emplace_back([this, id] { serve(id); });
    }
    job_ = &work;
    job_workers_ = workers;
    pending_ = workers - 1;
    ++generation_;
    lock.unlock();
    wake_.notify_all();
    return true;
  }

  // Waits until the job given to try_run has finished on every pool thread.
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void serve(unsigned id) {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (id >= job_workers_) continue;
      const auto* work = job_;
      lock.unlock();
      (*work)(id);
      lock.lock();
      if (--pending_ == 0) done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned job_workers_ = 0;
  unsigned pending_ = 0;
  std::uint64_t generation_ = 0;
};

// Never destroyed: its threads may still wait at exit. After fork() the
// child has none of the parent's threads, so it forgets the pool (leaking its
// memory, not its threads) and builds a new one on first use.
Pool* g_pool = nullptr;

Pool& pool() {
  static std::mutex creating;
  std::lock_guard<std::mutex> lock(creating);
  if (g_pool == nullptr) {
    static const bool registered =
        pthread_atfork(nullptr, nullptr, [] { g_pool = nullptr; }) == 0;
    (void)registered;
    g_pool = new Pool;
  }
  return *g_pool;
}

}  // namespace

StopFlag::StopFlag(std::function<bool()> check_interrupt)
    : check_interrupt_(std::move(check_interrupt)),
      last_check_(std::chrono::steady_clock::now()) {}

bool StopFlag::stopped(unsigned worker) {
  if (worker == 0 && check_interrupt_ && !stopped()) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_check_ >= kCheckInterval) {
      last_check_ = now;
      if (check_interrupt_()) stop_.store(true, std::memory_order_relaxed);
    }
  }
  return stopped();
}

void parallel_for(std::size_t tasks, unsigned threads,
                  const std::function<void(std::size_t, unsigned)>& task) {
  unsigned workers = static_cast<unsigned>(std::min<std::size_t>(std::max(threads, 1u), tasks));
  if (workers <= 1) {
    for (std::size_t t = 0; t < tasks; ++t) task(t, 0);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::function<void(unsigned)> run = [&](unsigned worker) {
    for (std::size_t t = next++; t < tasks; t = next++) task(t, worker);
  };
  Pool& shared = pool();
  if (shared.try_run(workers, run)) {
    run(0);
    shared.wait();
    return;
  }
  std::vector<std::thread> own;
  own.reserve(workers - 1);
  for (unsigned w = 1; w < workers; ++w) own.emplace_back(run, w);
  run(0);
  for (auto& thread : own) thread.join();
}

}  // namespace simkernel
