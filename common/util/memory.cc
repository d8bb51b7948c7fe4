#include "common/util/memory.h"

#include <malloc.h>

namespace rally {

void RetainFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Grow a heap 64 MiB at a time rather than by each request.
  mallopt(M_TOP_PAD, 64 << 20);
}

}  // namespace rally
