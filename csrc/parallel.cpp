#include "xmhash/parallel.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace xmhash {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  if (const char* env = std::getenv("XMHASH_NUM_THREADS")) {
    int v = std::atoi(env);
    if (v > 0) return v;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

namespace {

// One parallel_for in flight: its tasks, its counter and its first error.
struct Job {
  std::size_t n_tasks = 0;
  const std::function<void(std::size_t, int)>* fn = nullptr;
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;

  void work(int worker) {
    for (;;) {
      std::size_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks) return;
      try {
        (*fn)(t, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(n_tasks, std::memory_order_relaxed);  // stop handing out work
      }
    }
  }
};

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // Serialises users: a second caller (another Python thread) gets false and runs with its own threads.
  bool try_acquire() { return busy_.try_lock(); }
  void release() { busy_.unlock(); }

  void run(Job& job, int threads) {
    grow(threads - 1);
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = &job;
      wanted_ = threads - 1;
      started_ = 0;
      done_.store(0, std::memory_order_relaxed);
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    cv_.notify_all();
    job.work(0);
    int started;
    {
      // Every task has been handed out: workers that have not woken up yet are not needed (on a loaded machine
      // they may not run for a while), so close the job to them and wait only for those still working.
      std::lock_guard<std::mutex> lock(m_);
      wanted_ = started_;
      started = started_;
    }
    spin_until([&] { return done_.load(std::memory_order_acquire) == started; });
    std::unique_lock<std::mutex> lock(m_);
    done_cv_.wait(lock, [&] { return done_.load(std::memory_order_relaxed) == started; });
    job_ = nullptr;
  }

 private:
  // Waits up to ~100 us for pred() without sleeping: a sleeping thread takes tens of microseconds (more on a
  // loaded machine) to wake up, as long as a whole single-query search.
  template <class Pred>
  static void spin_until(Pred pred) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (pred()) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#else
        std::this_thread::yield();
#endif
      }
      if (std::chrono::steady_clock::now() > until) return;
    }
  }

  void grow(int n) {
    while (static_cast<int>(workers_.size()) < n) workers_.emplace_back([this] { loop(); });
  }

  void loop() {
    std::size_t seen = 0;
    for (;;) {
      // After a job, stay awake a little for the next one (back-to-back calls, e.g. single queries).
      spin_until([&] {
        return stop_.load(std::memory_order_relaxed) || published_.load(std::memory_order_acquire) != seen;
      });
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [&] { return stop_.load(std::memory_order_relaxed) || generation_ != seen; });
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = generation_;
      if (started_ >= wanted_) continue;  // the job was closed before this worker got to it
      Job* job = job_;
      const int slot = ++started_;  // worker numbers 1..wanted_ for this job
      lock.unlock();
      job->work(slot);
      lock.lock();
      done_.fetch_add(1, std::memory_order_release);
      lock.unlock();
      done_cv_.notify_one();
    }
  }

  std::mutex busy_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  int wanted_ = 0, started_ = 0;
  std::atomic<int> done_{0};
  std::size_t generation_ = 0;
  std::atomic<std::size_t> published_{0};  // generation_, readable without the lock
  std::atomic<bool> stop_{false};
};

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose: joining threads during interpreter exit can deadlock
  return *p;
}

}  // namespace

void parallel_for(std::size_t n_tasks, int threads, const std::function<void(std::size_t, int)>& fn) {
  if (n_tasks == 0) return;
  threads = resolve_threads(threads);
  if (static_cast<std::size_t>(threads) > n_tasks) threads = static_cast<int>(n_tasks);
  Job job;
  job.n_tasks = n_tasks;
  job.fn = &fn;
  if (threads <= 1) {
    job.work(0);
  } else if (pool().try_acquire()) {
    try {
      pool().run(job, threads);
    } catch (...) {
      pool().release();
      throw;
    }
    pool().release();
  } else {
    std::vector<std::thread> extra;
    for (int w = 1; w < threads; ++w) extra.emplace_back([&job, w] { job.work(w); });
    job.work(0);
    for (auto& t : extra) t.join();
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace xmhash
