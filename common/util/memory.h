// How a process that moves large buffers at a high rate keeps its freed memory.
#pragma once

namespace rally {

// glibc returns freed memory to the kernel eagerly: blocks above its mmap threshold (128 KiB at
// first) are unmapped on free, and the top of a heap is trimmed when more than the trim
// threshold is free. A process that allocates and frees 64 KiB–1 MiB items thousands of times a
// second (the replay storing and evicting trajectories, a writer encoding them, gRPC's buffers)
// then spends much of its time in page faults, zeroing fresh pages and TLB shootdowns. This keeps
// freed memory in the process for reuse: blocks below 32 MiB come from the heaps, and up to
// 1 GiB of freed memory stays mapped. The resident size then stays near its high-water mark.
// Call once at the start of main, before threads start.
void RetainFreedMemory();

}  // namespace rally
