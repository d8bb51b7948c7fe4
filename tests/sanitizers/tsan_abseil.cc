// ThreadSanitizer's view of absl::Mutex and absl::Notification, for a TSan build against
// Debian's Abseil (built without TSan, so its locks are invisible to TSan: every field an
// absl::Mutex guards would be reported as a race in rally's own code).
//
// Linked into every executable of a RALLY_SANITIZE=thread build (tests/sanitizers/
// CMakeLists.txt), these definitions interpose Abseil's: each calls the library's own (found
// with dlsym(RTLD_NEXT)) and tells TSan the happens-before edges the lock gives: a release of the
// mutex's address when a critical section ends, an acquire when one begins. A condition that
// Mutex::Await hands to Abseil is wrapped so that its evaluation, which Abseil may run on any
// thread holding the lock, is a critical section too. Only the functions rally calls are here;
// a new one (CondVar, LockWhen, ReaderLock) needs its entry, or TSan reports its callers.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace {

#define RALLY_STRINGIFY2(x) #x
#define RALLY_STRINGIFY(x) RALLY_STRINGIFY2(x)

// The Itanium-mangled name of absl::<inline namespace>::<rest>.
std::string AbslSymbol(const std::string& rest) {
  const std::string ns = RALLY_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return "_ZN4absl" + std::to_string(ns.size()) + ns + rest;
}

template <typename F>
F Real(const std::string& rest) {
  const std::string name = AbslSymbol(rest);
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_abseil: %s not found in Abseil\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

struct GuardedCondition {
  const absl::Condition* condition;
  void* mutex;
};

bool EvalGuarded(void* arg) {
  auto* g = static_cast<GuardedCondition*>(arg);
  __tsan_acquire(g->mutex);
  const bool holds = g->condition->Eval();
  __tsan_release(g->mutex);
  return holds;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::Await(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  GuardedCondition guarded{&cond, this};
  __tsan_release(this);
  real(this, Condition(&EvalGuarded, &guarded));
  __tsan_acquire(this);
}

void Notification::Notify() {
  static auto real = Real<void (*)(Notification*)>("12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static auto real = Real<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
