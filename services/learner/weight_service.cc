#include "services/learner/weight_service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/net/proto_wire.h"
#include "google/protobuf/unknown_field_set.h"

namespace rally {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a field's wire type says, for an error.
const char* WireTypeName(google::protobuf::UnknownField::Type type) {
  switch (type) {
    case google::protobuf::UnknownField::TYPE_VARINT:
      return "a varint";
    case google::protobuf::UnknownField::TYPE_FIXED32:
      return "4 fixed bytes";
    case google::protobuf::UnknownField::TYPE_FIXED64:
      return "8 fixed bytes";
    case google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED:
      return "length-delimited bytes";
    default:
      return "a group";
  }
}

// Reads a request of type `Message`. INVALID_ARGUMENT names the field where the bytes stop
// reading as one, or a field of `Message` sent with a wire type other than its own (which
// protobuf would keep aside as unknown, leaving the field unset). Fields `Message` does not have
// are ignored, as protobuf does.
template <typename Message>
absl::Status ParseRequest(const grpc::ByteBuffer& request, Message* message) {
  const google::protobuf::Descriptor* type = Message::descriptor();
  grpc::ByteBuffer copy(request);  // shares the slices
  grpc::ProtoBufferReader reader(&copy);
  if (!message->ParseFromZeroCopyStream(&reader)) {
    std::vector<grpc::Slice> slices;
    (void)copy.Dump(&slices);
    std::string where = DescribeMalformed(type, JoinSlices(slices));
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a ", type->name(), ": ", type->name(),
                     where.empty() ? ": protobuf cannot parse it" : where));
  }
  const google::protobuf::UnknownFieldSet& unknown =
      message->GetReflection()->GetUnknownFields(*message);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = type->FindFieldByNumber(unknown.field(i).number());
    if (f == nullptr) continue;
    return absl::InvalidArgumentError(absl::StrCat(type->name(), ".", f->name(), ": sent as ",
                                                   WireTypeName(unknown.field(i).type()),
                                                   ", but the field is of type ", f->type_name()));
  }
  return absl::OkStatus();
}

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// The key of WeightChunk.data (field 5, length-delimited) and the varint length that follow the
// other fields of a serialised chunk.
std::string DataFieldPrefix(size_t length) {
  std::string prefix(1, static_cast<char>((5 << 3) | 2));
  do {
    uint8_t byte = length & 0x7f;
    length >>= 7;
    prefix.push_back(static_cast<char>(length ? byte | 0x80 : byte));
  } while (length);
  return prefix;
}

}  // namespace

// Streams one version and finishes, or finishes at once with an error.
class WeightServiceImpl::GetReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GetReactor(WeightServiceImpl* service, std::shared_ptr<const Published> published)
      : service_(service), published_(std::move(published)) {
    WriteNext();
  }
  explicit GetReactor(const grpc::Status& error) : service_(nullptr) { Finish(error); }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away mid-stream"));
      return;
    }
    service_->bytes_sent_.Increment(static_cast<double>(published_->chunks[next_ - 1].Length()));
    WriteNext();
  }
  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    if (next_ < published_->chunks.size()) {
      StartWrite(&published_->chunks[next_++]);
    } else {
      Finish(grpc::Status::OK);
    }
  }

  WeightServiceImpl* const service_;
  const std::shared_ptr<const Published> published_;
  size_t next_ = 0;
};

// One subscription. Its state is guarded by the service's mutex; what to do next (write a chunk,
// finish, or wait for a publish) is decided under that mutex and done outside it, by whichever
// thread decided it: gRPC's after a write, the publisher's after a publish.
class WeightServiceImpl::SubscribeReactor final
    : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  struct Step {
    const grpc::ByteBuffer* write = nullptr;
    std::optional<grpc::Status> finish;
    bool empty() const { return write == nullptr && !finish; }
  };

  SubscribeReactor(WeightServiceImpl* service, int64_t have_version, uint64_t generation)
      : service_(service), have_version_(have_version), generation_(generation) {}

  Step Decide() ABSL_EXCLUSIVE_LOCKS_REQUIRED(service_->mu_) {
    Step step;
    if (writing_ || finished_) return step;
    if (broken_) {
      step.finish = grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away");
    } else if (service_->closed_) {
      step.finish = grpc::Status::OK;
    } else if (service_->generation_ != generation_) {
      step.finish = grpc::Status(grpc::StatusCode::ABORTED, "the learner started a new job");
    }
    if (step.finish) {
      finished_ = true;
      return step;
    }
    const auto& latest = service_->latest_;
    if (!sending_ && latest && latest->version > have_version_) {
      sending_ = latest;
      next_chunk_ = 0;
    }
    if (!sending_) return step;
    step.write = &sending_->chunks[next_chunk_++];
    writing_ = true;
    return step;
  }

  // Carries out a step that Decide() returned; `this` may be gone when it returns.
  void Act(const Step& step) {
    if (step.write != nullptr) {
      StartWrite(step.write);
    } else if (step.finish) {
      Finish(*step.finish);
    }
  }

  void OnWriteDone(bool ok) override {
    Step step;
    {
      absl::MutexLock lock(&service_->mu_);
      writing_ = false;
      if (ok) {
        service_->bytes_sent_.Increment(
            static_cast<double>(sending_->chunks[next_chunk_ - 1].Length()));
        if (next_chunk_ == sending_->chunks.size()) {
          have_version_ = sending_->version;
          sending_.reset();
        }
      } else {
        broken_ = true;
      }
      step = Decide();
    }
    Act(step);
  }

  void OnCancel() override {
    Step step;
    {
      absl::MutexLock lock(&service_->mu_);
      broken_ = true;
      step = Decide();
    }
    Act(step);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&service_->mu_);
      service_->subscribers_.erase(this);
    }
    service_->subscribers_gauge_.Decrement();
    delete this;
  }

 private:
  WeightServiceImpl* const service_;
  int64_t have_version_ ABSL_GUARDED_BY(service_->mu_);
  const uint64_t generation_;
  // The version being sent and its next chunk.
  std::shared_ptr<const Published> sending_ ABSL_GUARDED_BY(service_->mu_);
  size_t next_chunk_ ABSL_GUARDED_BY(service_->mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(service_->mu_) = false;   // a StartWrite is outstanding
  bool broken_ ABSL_GUARDED_BY(service_->mu_) = false;    // cancelled or a write failed
  bool finished_ ABSL_GUARDED_BY(service_->mu_) = false;  // Finish was decided
};

WeightServiceImpl::WeightServiceImpl(prometheus::Registry& metrics, WeightServiceOptions options)
    : chunk_bytes_(std::clamp<size_t>(options.chunk_bytes, 1, kMaxChunkBytes)),
      pool_(options.pool),
      version_gauge_(AddGauge(metrics, "rally_learner_published_policy_version",
                              "Latest weight version published to actors.")),
      pool_gauge_(AddGauge(metrics, "rally_learner_weight_snapshot_pool_size",
                           "Weight versions held in the snapshot pool for opponents.")),
      subscribers_gauge_(AddGauge(metrics, "rally_learner_weight_subscribers",
                                  "Open weight subscription streams.")),
      bytes_sent_(AddCounter(metrics, "rally_learner_weight_bytes_sent_total",
                             "Weight bytes streamed to subscribers and snapshot fetches.")) {}

WeightServiceImpl::~WeightServiceImpl() { Close(); }

std::shared_ptr<const WeightServiceImpl::Published> WeightServiceImpl::Serialise(
    int64_t version, int64_t learner_step, std::string blob) const {
  auto p = std::make_shared<Published>();
  p->version = version;
  p->learner_step = learner_step;
  p->published_unix_micros = NowMicros();
  p->total_bytes = blob.size();
  // The blob lives as long as a slice of it: in p->chunks or in a stream still sending it.
  p->blob = OwningSlice(std::move(blob));
  size_t offset = 0;
  do {
    const size_t n = std::min(chunk_bytes_, p->blob.size() - offset);
    v1::WeightChunk header;
    header.set_version(version);
    header.set_learner_step(learner_step);
    header.set_offset(offset);
    header.set_total_bytes(p->total_bytes);
    header.set_published_unix_micros(p->published_unix_micros);
    grpc::Slice slices[2] = {grpc::Slice(header.SerializeAsString() + DataFieldPrefix(n)),
                             p->blob.sub(offset, offset + n)};
    p->chunks.emplace_back(slices, 2);
    offset += n;
  } while (offset < p->total_bytes);
  return p;
}

grpc::Slice WeightServiceImpl::Publish(int64_t version, int64_t learner_step, std::string blob) {
  std::shared_ptr<const Published> p = Serialise(version, learner_step, std::move(blob));
  grpc::Slice published = p->blob;
  size_t pool_size;
  {
    absl::MutexLock lock(&mu_);
    latest_ = p;
    const int64_t m = pool_.snapshot_every_versions;
    if (m > 0 && pool_.snapshot_pool_size > 0 && version > 0 && version % m == 0) {
      std::erase_if(snapshots_, [&](const auto& s) { return s->version == version; });
      snapshots_.push_back(std::move(p));
      TrimPool();
    }
    pool_size = snapshots_.size();
  }
  version_gauge_.Set(static_cast<double>(version));
  pool_gauge_.Set(static_cast<double>(pool_size));
  WakeSubscribers();
  return published;
}

void WeightServiceImpl::SetSnapshotPool(SnapshotPoolOptions pool) {
  size_t pool_size;
  {
    absl::MutexLock lock(&mu_);
    pool_ = pool;
    TrimPool();
    pool_size = snapshots_.size();
  }
  pool_gauge_.Set(static_cast<double>(pool_size));
}

void WeightServiceImpl::TrimPool() {
  size_t keep = pool_.snapshot_every_versions > 0
                    ? static_cast<size_t>(std::max(pool_.snapshot_pool_size, 0))
                    : 0;
  while (snapshots_.size() > keep) snapshots_.pop_front();
}

void WeightServiceImpl::Reset() {
  {
    absl::MutexLock lock(&mu_);
    latest_.reset();
    snapshots_.clear();
    ++generation_;
  }
  pool_gauge_.Set(0);
  WakeSubscribers();
}

void WeightServiceImpl::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  WakeSubscribers();
}

void WeightServiceImpl::WakeSubscribers() {
  std::vector<std::pair<SubscribeReactor*, SubscribeReactor::Step>> steps;
  {
    absl::MutexLock lock(&mu_);
    for (SubscribeReactor* r : subscribers_) {
      SubscribeReactor::Step step = r->Decide();
      if (!step.empty()) steps.emplace_back(r, std::move(step));
    }
  }
  // A reactor with a step to take cannot finish before it takes it, so it is still alive here.
  for (auto& [r, step] : steps) r->Act(step);
}

std::string WeightServiceImpl::PoolDescription() const {
  if (pool_.snapshot_every_versions <= 0 || pool_.snapshot_pool_size <= 0) {
    return "the snapshot pool is off (learner.snapshot_every_versions and "
           "learner.snapshot_pool_size must both be positive)";
  }
  std::string versions = absl::StrJoin(
      snapshots_, ", ", [](std::string* out, const auto& s) { absl::StrAppend(out, s->version); });
  return absl::StrCat("the snapshot pool holds [", versions, "] (versions divisible by ",
                      pool_.snapshot_every_versions, ", the newest ", pool_.snapshot_pool_size,
                      ")");
}

absl::Status WeightServiceImpl::ValidateSubscribe(const grpc::ByteBuffer& request,
                                                  v1::SubscribeRequest* req) {
  if (absl::Status s = ParseRequest(request, req); !s.ok()) return s;
  if (req->have_version() < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "have_version: ", req->have_version(),
        " is out of range: -1 when holding no weights, else the version held (0 or more)"));
  }
  if (req->subscriber().size() > kMaxSubscriberBytes) {
    return absl::InvalidArgumentError(absl::StrCat("subscriber: ", req->subscriber().size(),
                                                   " bytes, longer than the limit of ",
                                                   kMaxSubscriberBytes));
  }
  return absl::OkStatus();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* WeightServiceImpl::Subscribe(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request) {
  v1::SubscribeRequest req;
  if (absl::Status s = ValidateSubscribe(*request, &req); !s.ok()) {
    return new GetReactor(ToGrpc(s));
  }
  SubscribeReactor* r;
  SubscribeReactor::Step step;
  {
    absl::MutexLock lock(&mu_);
    r = new SubscribeReactor(this, req.have_version(), generation_);
    subscribers_.insert(r);
    step = r->Decide();
  }
  subscribers_gauge_.Increment();
  r->Act(step);
  return r;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* WeightServiceImpl::Get(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request) {
  v1::GetWeightsRequest req;
  if (absl::Status s = ParseRequest(*request, &req); !s.ok()) return new GetReactor(ToGrpc(s));
  const int64_t version = req.version();
  if (version < 0) {
    return new GetReactor(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat("weight version ", version, " is negative (0 = latest)")));
  }
  absl::MutexLock lock(&mu_);
  if (latest_ && (version == 0 || version == latest_->version)) {
    return new GetReactor(this, latest_);
  }
  for (const auto& s : snapshots_) {
    if (s->version == version) return new GetReactor(this, s);
  }
  if (!latest_ && version == 0) {
    return new GetReactor(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        "no weights published yet for this job; retry after the learner's first publish"));
  }
  return new GetReactor(grpc::Status(
      grpc::StatusCode::NOT_FOUND,
      absl::StrCat("weight version ", version, " is not held: the latest is ",
                   latest_ ? absl::StrCat(latest_->version) : std::string("none"), " and ",
                   PoolDescription(), "; ListSnapshots lists the versions to fetch")));
}

grpc::ServerUnaryReactor* WeightServiceImpl::ListSnapshots(grpc::CallbackServerContext* ctx,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  v1::ListSnapshotsRequest req;
  if (absl::Status s = ParseRequest(*request, &req); !s.ok()) {
    reactor->Finish(ToGrpc(s));
    return reactor;
  }
  auto fill = [](const Published& p, v1::SnapshotInfo* info) {
    info->set_version(p.version);
    info->set_learner_step(p.learner_step);
    info->set_published_unix_micros(p.published_unix_micros);
    info->set_total_bytes(p.total_bytes);
  };
  v1::ListSnapshotsResponse resp;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& s : snapshots_) fill(*s, resp.add_snapshots());
    if (latest_) fill(*latest_, resp.mutable_latest());
  }
  grpc::Slice bytes(resp.SerializeAsString());
  *response = grpc::ByteBuffer(&bytes, 1);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace rally
