// Process-wide shutdown signal: SIGTERM and SIGINT set it; every long-running loop polls it or
// waits on it. InstallShutdownHandlers() must run before any thread is started, because it blocks
// the signals in the calling thread (and so in every thread created afterwards) and handles them
// on a dedicated thread with sigwait.
#pragma once

#include <chrono>

namespace rally {

void InstallShutdownHandlers();
// Requests shutdown as if a signal had arrived (used by tests and fatal errors).
void RequestShutdown();
bool ShutdownRequested();
// Blocks until shutdown is requested or `timeout` passes; returns ShutdownRequested().
bool WaitForShutdown(std::chrono::milliseconds timeout);

}  // namespace rally
