#include "common/util/shutdown.h"

#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/util/log.h"

namespace rally {
namespace {

std::mutex g_mu;
std::condition_variable g_cv;
bool g_requested = false;

}  // namespace

void InstallShutdownHandlers() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    while (sigwait(&set, &sig) == 0) {
      LogInfo("shutdown requested", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      RequestShutdown();
    }
  }).detach();
}

void RequestShutdown() {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_requested = true;
  }
  g_cv.notify_all();
}

bool ShutdownRequested() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_requested;
}

bool WaitForShutdown(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(g_mu);
  g_cv.wait_for(lock, timeout, [] { return g_requested; });
  return g_requested;
}

}  // namespace rally
