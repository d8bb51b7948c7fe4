// The actor's generation worker for language-model policies: continuous batching of token
// generation over many sequences (one per seat of each text game the actor plays).
//
// Contract:
// - Threads. One worker thread owns the model and its KV cache and runs every forward pass. Any
//   number of environment threads call Open, Submit/Generate, Release and PublishWeights
//   concurrently; none of them touches the model.
// - Sequences. Open reserves KV-cache slots, one per sequence; a sequence's cached context
//   persists across its requests (a game's turns: each request appends only the new tokens) until
//   Release, which frees its slot. A sequence's context is, in order, the tokens every request
//   appended and the tokens it generated.
// - Continuous batching. Between two decode steps the worker applies pending releases and
//   weights, prefills the requests that arrived (their appended tokens, in batched passes of
//   similar lengths) and adds them to the running batch (at most max_batch requests run at once;
//   the rest wait in arrival order); each step then decodes one token for every running request,
//   and a request leaves the batch when it ends (stop token, stop string or max_new_tokens).
// - Reproducibility. Each request samples from its own std::mt19937_64 seeded with its `seed`, so
//   its tokens do not depend on which other requests share its batches.
// - Memory bound. The cache holds kv_cache_tokens tokens in all: slots of sequence_capacity
//   tokens each, preallocated (KvCache::BytesFor). Open blocks (until its deadline) while fewer
//   slots are free than it asks for, and proceeds when sequences are released; a game opens all
//   its seats' sequences in one call, so games never hold part of what they need (no deadlock).
//   An Open that asks for more slots than exist, and a request that would take its sequence past
//   sequence_capacity tokens (context, appended and max_new_tokens together), are refused with
//   RESOURCE_EXHAUSTED at once instead of waiting for ever.
// - Versions. PublishWeights hands new weights to the worker without blocking; they are applied
//   between decode steps (one in-place copy, so a swap stalls generation only for that copy),
//   the latest publication winning. Each generated token records the version of the weights that
//   produced its logits, and its behaviour log-probability under the distribution it was drawn
//   from (common/lm/sampling.h). A swap does not recompute the cache: a sequence's tokens after
//   it attend to keys and values the earlier weights computed (the recorded log-probabilities are
//   still exactly those the tokens were drawn with).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/lm/sampling.h"
#include "common/lm/tokenizer.h"
#include "common/lm/transformer.h"
#include "common/models/safetensors.h"

namespace rally {

struct GenerationWorkerOptions {
  int max_batch = 64;           // requests decoded together at most
  int sequence_capacity = 0;    // tokens per sequence; 0: the model's max_seq_len
  int64_t kv_cache_tokens = 0;  // the cache's bound over all sequences; 0: 64 sequences
  int64_t initial_version = 0;  // the version of the weights the model holds at construction
  // Decodes generated tokens to find stop strings; may be null when no request uses one. Must
  // outlive the worker.
  const Tokenizer* tokenizer = nullptr;
  // Called on the worker thread after each step with the step's index (0, 1, ...), no lock held:
  // for tests and metrics. A step is one pass of prefill and/or decode.
  std::function<void(int64_t step)> after_step;
};

struct GenerationRequest {
  int64_t sequence = 0;         // from Open
  std::vector<int32_t> append;  // tokens added to the context first; at least one
  SamplingOptions sampling;
  uint64_t seed = 0;                 // the request's own random stream
  int max_new_tokens = 16;           // at least one
  std::vector<int32_t> stop_tokens;  // generation ends after one of these (kept in the output)
  std::string stop_string;           // or once the decoded output contains it (needs a tokenizer)
};

struct GenerationResult {
  std::vector<int32_t> tokens;    // generated, the stop token included
  std::vector<float> log_probs;   // behaviour log-probability of each token
  std::vector<int64_t> versions;  // the weights' version that produced each token
  bool stopped = false;           // ended at a stop token or string (false: cut at the maximum)
};

class GenerationWorker {
 public:
  // Takes the model (whose weights are `options.initial_version`) and starts the worker thread.
  // INVALID_ARGUMENT for options that fit no sequence (capacity above the model's max_seq_len,
  // a bound below one sequence, non-positive max_batch).
  static absl::StatusOr<std::unique_ptr<GenerationWorker>> Create(
      Transformer model, const GenerationWorkerOptions& options);
  ~GenerationWorker();  // Stop()

  // `count` new, empty sequences, waiting until `timeout` for slots. RESOURCE_EXHAUSTED when the
  // cache has fewer slots than `count` in all; DEADLINE_EXCEEDED after the timeout; CANCELLED
  // once stopped.
  absl::StatusOr<std::vector<int64_t>> Open(int count, absl::Duration timeout);
  // Ends `sequence` and frees its slot (after its running request, if any). Unknown ids: no-op.
  void Release(int64_t sequence);

  // Queues a request; its sequence must have no other request pending. The future holds the
  // result, or INVALID_ARGUMENT (unknown sequence, empty append, bad sampling options, a token
  // outside the vocabulary, a second request on a sequence), RESOURCE_EXHAUSTED (past the
  // sequence's capacity) or CANCELLED (stopped).
  std::future<absl::StatusOr<GenerationResult>> Submit(GenerationRequest request);
  absl::StatusOr<GenerationResult> Generate(GenerationRequest request) {
    return Submit(std::move(request)).get();
  }

  // Queues weights (the model's tensor names, F32) of `version` for the next step.
  void PublishWeights(std::shared_ptr<const TensorSet> weights, int64_t version);
  // The version of the weights in use, and the error of the last publication that failed to load
  // (OK when none did; the previous weights stay in use then).
  int64_t version() const;
  absl::Status last_weights_error() const;
  // Waits until the weights of `version` are in use (true), or until they failed to load, the
  // worker stopped or `timeout` passed (false). The worker applies queued weights at its next
  // step, which a publication starts.
  bool WaitForVersion(int64_t version, absl::Duration timeout) const;

  // The cache's shape and the slots free now (not reserved by Open).
  int slots() const { return slots_; }
  int sequence_capacity() const { return capacity_; }
  int free_slots() const;

  // Fails pending requests with CANCELLED and joins the worker thread. Idempotent.
  void Stop();

 private:
  struct Pending;
  struct Running;
  struct SequenceState {
    int slot = -1;               // KvCache slot (worker thread), -1 until first used
    int64_t length = 0;          // tokens of its context, cached or not
    std::vector<int32_t> unfed;  // generated but not yet in the cache (the last token)
    bool busy = false;           // a request is pending or running
    bool release_requested = false;
  };

  GenerationWorker(Transformer model, KvCache cache, const GenerationWorkerOptions& options,
                   int slots, int capacity);
  void Loop();
  // One step's forward pass over `batch` (each row's chunk) and the sampling of its next tokens.
  void ExtendAndSample(std::vector<Running*>& batch, std::vector<std::vector<int32_t>>& chunks);
  // The forward passes of the requests admitted this step (`chunks`: what each appends). One
  // pass pads every chunk to its longest, so the chunks are taken in order of length, a pass
  // closing when one more would make its padded tokens exceed 1.25 times its real ones.
  void Prefill(std::vector<std::unique_ptr<Running>>& admitted,
               std::vector<std::vector<int32_t>>& chunks);
  bool StopReached(const Running& running) const;  // a stop token or string ended it
  bool Finished(const Running& running) const;     // that, or max_new_tokens

  Transformer model_;
  KvCache cache_;  // worker thread only
  GenerationWorkerOptions options_;
  const int slots_;
  const int capacity_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;             // the worker waits for requests, releases, weights
  std::condition_variable slots_cv_;            // Open waits for slots
  mutable std::condition_variable weights_cv_;  // WaitForVersion waits for a load to end
  bool stopping_ = false;
  int reserved_ = 0;  // slots held by open sequences
  int64_t next_sequence_ = 1;
  std::map<int64_t, SequenceState> sequences_;
  std::deque<std::unique_ptr<Pending>> pending_;
  std::vector<int> slots_to_free_;
  std::shared_ptr<const TensorSet> new_weights_;
  int64_t new_version_ = 0;
  int64_t version_ = 0;
  int64_t tried_version_ = 0;  // the version of the last weights whose load ended
  absl::Status weights_error_;
  std::thread thread_;
};

}  // namespace rally
