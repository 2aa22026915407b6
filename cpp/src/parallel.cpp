#include "simkernel/parallel.hpp"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

namespace simkernel {

namespace {
constexpr auto kCheckInterval = std::chrono::milliseconds(50);
}

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
  std::size_t workers = std::min<std::size_t>(std::max(threads, 1u), tasks);
  if (workers <= 1) {
    for (std::size_t t = 0; t < tasks; ++t) task(t, 0);
    return;
  }
  std::atomic<std::size_t> next{0};
  auto run = [&](unsigned worker) {
    for (std::size_t t = next++; t < tasks; t = next++) task(t, worker);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (unsigned w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& thread : pool) thread.join();
}

}  // namespace simkernel
