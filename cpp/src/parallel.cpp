#include "simkernel/parallel.hpp"

#if !defined(_WIN32)
#include <pthread.h>  // pthread_atfork (Windows has no fork)
#endif

#include <algorithm>
#include <atomic>
#include <exception>
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
  // (nothing run) if the pool is busy. Where no more threads can be started
  // (a pids or address-space limit), the job runs on those there are:
  // `workers` is lowered to match.
  bool try_run(unsigned& workers, const std::function<void(unsigned)>& work) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || job_ != nullptr) return false;
    while (threads_.size() + 1 < workers) {
      unsigned id = static_cast<unsigned>(threads_.size()) + 1;
      try {
        threads_.emplace_back([this, id] { serve(id); });
      } catch (const std::exception&) {  // std::system_error, std::bad_alloc
        break;
      }
    }
    workers = std::min<unsigned>(workers, static_cast<unsigned>(threads_.size()) + 1);
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
// memory, not its threads) and builds a new one on first use. No lock guards
// the pointer: a lock held by another thread at fork() would stay locked in
// the child forever.
std::atomic<Pool*> g_pool{nullptr};

Pool& pool() {
#if !defined(_WIN32)
  static const bool registered =
      pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr); }) == 0;
  (void)registered;
#endif
  Pool* current = g_pool.load();
  if (current == nullptr) {
    auto* fresh = new Pool;
    if (g_pool.compare_exchange_strong(current, fresh)) {
      current = fresh;
    } else {
      delete fresh;  // another thread made one first
    }
  }
  return *current;
}

// Joins the threads it holds however the scope is left, so none is ever
// destroyed while joinable (std::terminate).
struct Joined {
  ~Joined() {
    for (std::thread& thread : threads) thread.join();
  }
  std::vector<std::thread> threads;
};

}  // namespace

StopFlag::StopFlag(std::function<bool()> check_interrupt)
    : check_interrupt_(std::move(check_interrupt)),
      last_check_(std::chrono::steady_clock::now()) {}

bool StopFlag::stopped(unsigned worker) {
  if (worker == 0 && check_interrupt_ && !stopped()) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_check_ >= kCheckInterval) {
      last_check_ = now;
      // Should the check end this thread instead of returning (a forced
      // unwind while Python finalizes), the other workers stop at once.
      struct StopUnlessReturned {
        std::atomic<bool>& stop;
        bool returned = false;
        ~StopUnlessReturned() {
          if (!returned) stop.store(true, std::memory_order_relaxed);
        }
      } guard{stop_};
      bool interrupted = check_interrupt_();
      guard.returned = true;
      if (interrupted) stop_.store(true, std::memory_order_relaxed);
    }
  }
  return stopped();
}

unsigned worker_count(std::size_t tasks, unsigned threads) {
  static const std::size_t most = 4 * std::max(1u, std::thread::hardware_concurrency());
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min({std::size_t{threads}, tasks, most})));
}

void parallel_for(std::size_t tasks, unsigned threads,
                  const std::function<void(std::size_t, unsigned)>& task) {
  unsigned workers = worker_count(tasks, threads);
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
    // The pool threads use `run` and `next` on this stack: wait for them
    // however run(0) is left, an exception or a forced unwind included (a
    // daemon thread ended by Python's finalization).
    struct WaitForPool {
      Pool& pool;
      ~WaitForPool() { pool.wait(); }
    } waiting{shared};
    run(0);
    return;
  }
  // The pool is busy: threads of this call's own, as many as can be started
  // (the tasks are shared, so fewer workers only take longer).
  Joined own;
  for (unsigned w = 1; w < workers; ++w) {
    try {
      own.threads.emplace_back(run, w);
    } catch (const std::exception&) {
      break;
    }
  }
  run(0);
}

}  // namespace simkernel
