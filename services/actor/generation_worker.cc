#include "services/actor/generation_worker.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/util/log.h"

namespace rally {

struct GenerationWorker::Pending {
  GenerationRequest request;
  std::promise<absl::StatusOr<GenerationResult>> promise;
};

struct GenerationWorker::Running {
  GenerationRequest request;
  std::promise<absl::StatusOr<GenerationResult>> promise;
  int slot = -1;
  bool failed = false;  // its forward pass failed; the promise holds the error
  std::mt19937_64 rng;
  GenerationResult result;
};

absl::StatusOr<std::unique_ptr<GenerationWorker>> GenerationWorker::Create(
    Transformer model, const GenerationWorkerOptions& options) {
  const TransformerConfig& config = model.config();
  if (options.max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("generation worker: max_batch ", options.max_batch, " must be positive"));
  }
  const int capacity =
      options.sequence_capacity > 0 ? options.sequence_capacity : config.max_seq_len;
  if (capacity > config.max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("generation worker: sequence capacity ", capacity,
                     " tokens exceeds the model's max_seq_len ", config.max_seq_len));
  }
  const int64_t bound =
      options.kv_cache_tokens > 0 ? options.kv_cache_tokens : int64_t{64} * capacity;
  const int64_t slots = bound / capacity;
  if (slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("generation worker: kv_cache_tokens ", bound,
                                                   " holds no sequence of ", capacity, " tokens"));
  }
  absl::StatusOr<KvCache> cache =
      KvCache::Create(config, static_cast<int>(slots), capacity, model.device());
  if (!cache.ok()) return cache.status();
  return std::unique_ptr<GenerationWorker>(new GenerationWorker(
      std::move(model), *std::move(cache), options, static_cast<int>(slots), capacity));
}

GenerationWorker::GenerationWorker(Transformer model, KvCache cache,
                                   const GenerationWorkerOptions& options, int slots, int capacity)
    : model_(std::move(model)),
      cache_(std::move(cache)),
      options_(options),
      slots_(slots),
      capacity_(capacity),
      version_(options.initial_version) {
  thread_ = std::thread([this] { Loop(); });
}

GenerationWorker::~GenerationWorker() { Stop(); }

void GenerationWorker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  slots_cv_.notify_all();
  weights_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::vector<int64_t>> GenerationWorker::Open(int count, absl::Duration timeout) {
  if (count < 1) {
    return absl::InvalidArgumentError(absl::StrCat("Open: count ", count, " must be positive"));
  }
  if (count > slots_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Open: ", count, " sequences can never fit: the KV cache holds ", slots_,
                     " sequences of ", capacity_, " tokens (actors.kv_cache_tokens)"));
  }
  std::unique_lock<std::mutex> lock(mu_);
  const bool fits = slots_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                                       [&] { return stopping_ || slots_ - reserved_ >= count; });
  if (stopping_) return absl::CancelledError("Open: the generation worker is stopped");
  if (!fits) {
    return absl::DeadlineExceededError(absl::StrCat(
        "Open: no ", count, " free KV-cache slots within ", absl::FormatDuration(timeout), " (",
        slots_ - reserved_, " of ", slots_, " free)"));
  }
  reserved_ += count;
  std::vector<int64_t> ids;
  for (int i = 0; i < count; ++i) {
    ids.push_back(next_sequence_);
    sequences_.emplace(next_sequence_++, SequenceState{});
  }
  return ids;
}

void GenerationWorker::Release(int64_t sequence) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sequences_.find(sequence);
    if (it == sequences_.end()) return;
    if (it->second.busy) {
      it->second.release_requested = true;
      return;
    }
    if (it->second.slot >= 0) slots_to_free_.push_back(it->second.slot);
    sequences_.erase(it);
    --reserved_;
  }
  slots_cv_.notify_all();
  work_cv_.notify_all();
}

int GenerationWorker::free_slots() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slots_ - reserved_;
}

std::future<absl::StatusOr<GenerationResult>> GenerationWorker::Submit(GenerationRequest request) {
  auto pending = std::make_unique<Pending>();
  std::future<absl::StatusOr<GenerationResult>> future = pending->promise.get_future();
  auto fail = [&](absl::Status status) {
    pending->promise.set_value(std::move(status));
    return std::move(future);
  };
  const std::string at = absl::StrCat("generation request on sequence ", request.sequence);
  if (request.append.empty()) {
    return fail(absl::InvalidArgumentError(at + ": no tokens to append"));
  }
  const int vocab = model_.config().vocab;
  for (size_t i = 0; i < request.append.size(); ++i) {
    if (request.append[i] < 0 || request.append[i] >= vocab) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          at, ": append[", i, "] = ", request.append[i], " is outside the vocabulary of ", vocab)));
    }
  }
  if (request.max_new_tokens < 1) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(at, ": max_new_tokens ", request.max_new_tokens, " must be positive")));
  }
  if (absl::Status s = ValidateSamplingOptions(request.sampling); !s.ok()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(at, ": ", s.message())));
  }
  if (!request.stop_string.empty() && options_.tokenizer == nullptr) {
    return fail(absl::InvalidArgumentError(at + ": a stop string needs the worker's tokenizer"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return fail(absl::CancelledError(at + ": the generation worker is stopped"));
    auto it = sequences_.find(request.sequence);
    if (it == sequences_.end()) {
      return fail(absl::InvalidArgumentError(at + ": no such open sequence"));
    }
    SequenceState& seq = it->second;
    if (seq.busy) return fail(absl::InvalidArgumentError(at + ": a request is already pending"));
    const int64_t total =
        seq.length + static_cast<int64_t>(request.append.size()) + request.max_new_tokens;
    if (total > capacity_) {
      return fail(absl::ResourceExhaustedError(
          absl::StrCat(at, ": its context of ", seq.length, " tokens, ", request.append.size(),
                       " appended and up to ", request.max_new_tokens, " generated (", total,
                       ") would pass the sequence capacity of ", capacity_, " tokens")));
    }
    seq.busy = true;
    pending->request = std::move(request);
    pending_.push_back(std::move(pending));
  }
  work_cv_.notify_all();
  return future;
}

void GenerationWorker::PublishWeights(std::shared_ptr<const TensorSet> weights, int64_t version) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    new_weights_ = std::move(weights);
    new_version_ = version;
  }
  work_cv_.notify_all();
}

int64_t GenerationWorker::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

absl::Status GenerationWorker::last_weights_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return weights_error_;
}

bool GenerationWorker::WaitForVersion(int64_t version, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  weights_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
    return version_ == version || tried_version_ == version || stopping_;
  });
  return version_ == version;
}

bool GenerationWorker::StopReached(const Running& running) const {
  const GenerationRequest& request = running.request;
  const std::vector<int32_t>& tokens = running.result.tokens;
  if (tokens.empty()) return false;
  if (std::find(request.stop_tokens.begin(), request.stop_tokens.end(), tokens.back()) !=
      request.stop_tokens.end()) {
    return true;
  }
  return !request.stop_string.empty() &&
         options_.tokenizer->Decode(tokens).find(request.stop_string) != std::string::npos;
}

bool GenerationWorker::Finished(const Running& running) const {
  return StopReached(running) ||
         static_cast<int>(running.result.tokens.size()) >= running.request.max_new_tokens;
}

void GenerationWorker::ExtendAndSample(std::vector<Running*>& batch,
                                       std::vector<std::vector<int32_t>>& chunks) {
  if (batch.empty()) return;
  std::vector<SequenceChunk> spans;
  for (size_t i = 0; i < batch.size(); ++i) spans.push_back({batch[i]->slot, chunks[i]});
  absl::StatusOr<torch::Tensor> logits;
  try {
    logits = model_.Extend(cache_, spans, Transformer::Logits::kLast);
  } catch (const c10::Error& e) {
    logits = absl::InternalError(absl::StrCat("generation worker: forward pass: ", e.what()));
  }
  if (!logits.ok()) {
    for (Running* r : batch) {
      r->failed = true;
      r->promise.set_value(logits.status());
    }
    return;
  }
  torch::Tensor rows = logits->to(torch::kCPU, torch::kFloat).contiguous();
  const int vocab = static_cast<int>(rows.size(1));
  const float* data = rows.data_ptr<float>();
  for (size_t i = 0; i < batch.size(); ++i) {
    Running& r = *batch[i];
    SampledToken t =
        SampleToken(std::span<const float>(data + i * vocab, vocab), r.request.sampling, r.rng);
    r.result.tokens.push_back(t.token);
    r.result.log_probs.push_back(t.log_prob);
    r.result.versions.push_back(version_);
  }
}

void GenerationWorker::Prefill(std::vector<std::unique_ptr<Running>>& admitted,
                               std::vector<std::vector<int32_t>>& chunks) {
  // Padded tokens a pass may spend per real token of its chunks.
  constexpr double kMaxPadding = 1.25;
  std::vector<size_t> order(admitted.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return chunks[a].size() < chunks[b].size(); });
  std::vector<Running*> batch;
  std::vector<std::vector<int32_t>> pass;
  size_t real = 0;
  for (size_t i : order) {
    const size_t length = chunks[i].size();  // the longest so far: the pass's padded width
    if (!batch.empty() && (batch.size() + 1) * length > kMaxPadding * (real + length)) {
      ExtendAndSample(batch, pass);
      batch.clear();
      pass.clear();
      real = 0;
    }
    batch.push_back(admitted[i].get());
    pass.push_back(std::move(chunks[i]));
    real += length;
  }
  ExtendAndSample(batch, pass);
}

void GenerationWorker::Loop() {
  std::vector<std::unique_ptr<Running>> running;
  int64_t step = 0;
  while (true) {
    std::vector<std::unique_ptr<Running>> admitted;
    std::vector<std::vector<int32_t>> prefill;
    std::shared_ptr<const TensorSet> weights;
    int64_t weights_version = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] {
        return stopping_ || !pending_.empty() || !slots_to_free_.empty() || new_weights_ ||
               !running.empty();
      });
      if (stopping_) break;
      for (int slot : slots_to_free_) cache_.Release(slot);
      slots_to_free_.clear();
      weights = std::move(new_weights_);
      new_weights_.reset();
      weights_version = new_version_;
      while (!pending_.empty() &&
             static_cast<int>(running.size() + admitted.size()) < options_.max_batch) {
        std::unique_ptr<Pending> p = std::move(pending_.front());
        pending_.pop_front();
        SequenceState& seq = sequences_.at(p->request.sequence);
        if (seq.slot < 0) seq.slot = *cache_.Allocate();  // reserved by Open: never fails
        auto r = std::make_unique<Running>();
        r->slot = seq.slot;
        r->rng.seed(p->request.seed);
        std::vector<int32_t> chunk = std::move(seq.unfed);
        seq.unfed.clear();
        chunk.insert(chunk.end(), p->request.append.begin(), p->request.append.end());
        seq.length += static_cast<int64_t>(p->request.append.size());
        r->request = std::move(p->request);
        r->promise = std::move(p->promise);
        prefill.push_back(std::move(chunk));
        admitted.push_back(std::move(r));
      }
    }
    if (weights) {
      absl::Status loaded = model_.LoadWeights(*weights);
      std::lock_guard<std::mutex> lock(mu_);
      tried_version_ = weights_version;
      weights_cv_.notify_all();
      if (loaded.ok()) {
        version_ = weights_version;
        weights_error_ = absl::OkStatus();
      } else {
        LogWarning("generation worker: weights not applied",
                   {{"version", absl::StrCat(weights_version)}, {"error", loaded.ToString()}});
        weights_error_ = loaded;
      }
    }
    // Decode the running requests (each feeds its last token), then prefill the new ones.
    std::vector<Running*> decode_batch;
    std::vector<std::vector<int32_t>> decode_chunks;
    for (auto& r : running) {
      decode_batch.push_back(r.get());
      decode_chunks.push_back({r->result.tokens.back()});
    }
    ExtendAndSample(decode_batch, decode_chunks);
    Prefill(admitted, prefill);
    for (auto& r : admitted) running.push_back(std::move(r));

    // Requests that ended leave the batch; their last token waits in `unfed` for the next one.
    std::vector<std::unique_ptr<Running>> still;
    bool freed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& r : running) {
        const bool failed = r->failed;
        if (!failed && !Finished(*r)) {
          still.push_back(std::move(r));
          continue;
        }
        auto it = sequences_.find(r->request.sequence);
        SequenceState& seq = it->second;
        seq.busy = false;
        if (!failed) {
          seq.length += static_cast<int64_t>(r->result.tokens.size());
          seq.unfed = {r->result.tokens.back()};
          r->result.stopped = StopReached(*r);
        }
        if (seq.release_requested) {
          if (seq.slot >= 0) cache_.Release(seq.slot);
          sequences_.erase(it);
          --reserved_;
          freed = true;
        }
        if (!failed) r->promise.set_value(std::move(r->result));
      }
    }
    running = std::move(still);
    if (freed) slots_cv_.notify_all();
    if (options_.after_step) options_.after_step(step);
    ++step;
  }
  // Stopped: fail what is left.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : running) {
    r->promise.set_value(absl::CancelledError("the generation worker stopped mid-request"));
  }
  for (auto& p : pending_) {
    p->promise.set_value(absl::CancelledError("the generation worker stopped"));
  }
  pending_.clear();
}

}  // namespace rally
