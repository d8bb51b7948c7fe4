#include "services/actor/replay_writer.h"

#include <google/protobuf/wire_format.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/net/insert_wire.h"
#include "common/net/proto_wire.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/zstd.h"

namespace rally {

ReplayWriter::ReplayWriter(std::string address, std::vector<std::string> tables,
                           std::string actor_id, int max_in_flight, prometheus::Registry* metrics)
    : address_(std::move(address)),
      tables_(std::move(tables)),
      actor_id_(std::move(actor_id)),
      incarnation_(DrawIncarnation()),
      max_in_flight_(static_cast<size_t>(max_in_flight)) {
  if (metrics != nullptr) {
    acked_counter_ = &AddCounter(*metrics, "rally_actor_trajectories_acked_total",
                                 "Trajectories the replay acknowledged.");
    rejected_counter_ = &AddCounter(*metrics, "rally_actor_trajectories_rejected_total",
                                    "Trajectories the replay refused.");
    in_flight_ = &AddGauge(*metrics, "rally_actor_trajectories_in_flight",
                           "Trajectories queued or sent but not yet acknowledged.");
  }
  thread_ = std::thread([this] { Loop(); });
}

std::vector<uint64_t> ReplayWriter::acked_sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_sequences_;
}

bool ReplayWriter::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return unacked_.empty(); });
}

ReplayWriter::~ReplayWriter() { Stop(); }

namespace {

// An item's key: the trajectory fields `actor_id`, `incarnation` and `sequence`, as a message of
// their own. It is appended to the trajectory's bytes: parsing concatenated messages merges them,
// and the last value of a singular field wins, so the trajectory itself need not be copied to set
// them.
v1::Trajectory Key(const ItemKey& item) {
  v1::Trajectory key;
  key.set_actor_id(item.actor_id);
  key.set_incarnation(item.incarnation);
  key.set_sequence(item.sequence);
  return key;
}

// `trajectory` serialised with `item` as its key, in one slice.
grpc::Slice Serialize(const v1::Trajectory& trajectory, const ItemKey& item) {
  const v1::Trajectory key = Key(item);
  const size_t body = trajectory.ByteSizeLong();
  const size_t tail = key.ByteSizeLong();
  grpc::Slice out(body + tail);
  auto* p = const_cast<uint8_t*>(out.begin());
  key.SerializeWithCachedSizesToArray(trajectory.SerializeWithCachedSizesToArray(p));
  return out;
}

// Builds an item's bytes as slices: encoded bytes gather in `head` until an array is referenced.
class Pieces {
 public:
  explicit Pieces(std::shared_ptr<const v1::Trajectory> owner) : owner_(std::move(owner)) {}

  std::string& head() { return head_; }
  // Appends `message` serialised (its size cached by ByteSizeLong).
  void AppendMessage(const google::protobuf::Message& message, size_t size) {
    const size_t at = head_.size();
    head_.resize(at + size);
    message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(head_.data() + at));
  }
  // Appends field `field` of `message` as protobuf serialises it.
  void AppendField(const google::protobuf::Message& message,
                   const google::protobuf::FieldDescriptor* field) {
    using google::protobuf::internal::WireFormat;
    // (FieldByteSize counts an absent singular field's default value.)
    if (!field->is_repeated() && !message.GetReflection()->HasField(message, field)) return;
    const size_t size = WireFormat::FieldByteSize(field, message);
    if (size == 0) return;
    const size_t at = head_.size();
    head_.resize(at + size);
    auto* target = reinterpret_cast<uint8_t*>(head_.data() + at);
    google::protobuf::io::EpsCopyOutputStream stream(
        target, static_cast<int>(size),
        google::protobuf::io::CodedOutputStream::IsDefaultSerializationDeterministic());
    WireFormat::InternalSerializeField(field, message, target, &stream);
  }
  // Appends `bytes` bytes at `data` (inside the owner) by reference.
  void Reference(const void* data, size_t bytes) {
    Flush();
    auto* hold = new std::shared_ptr<const v1::Trajectory>(owner_);
    slices_.emplace_back(
        const_cast<void*>(data), bytes,
        [](void* p) { delete static_cast<std::shared_ptr<const v1::Trajectory>*>(p); }, hold);
    referenced_ += bytes;
  }
  size_t size() const { return encoded_ + head_.size() + referenced_; }
  std::vector<grpc::Slice> Finish() {
    Flush();
    return std::move(slices_);
  }

 private:
  void Flush() {
    if (head_.empty()) return;
    encoded_ += head_.size();
    slices_.emplace_back(head_.data(), head_.size());  // copies the (small) encoded bytes
    head_.clear();
  }

  std::shared_ptr<const v1::Trajectory> owner_;
  std::string head_;
  std::vector<grpc::Slice> slices_;
  size_t encoded_ = 0;
  size_t referenced_ = 0;
};

// The packed fixed-width arrays of `turn` that travel by reference: those of at least
// kReferenceArrayBytes. Their memory is their wire form on a little-endian machine.
struct TurnArray {
  int field;
  const void* data;
  size_t bytes;
};
std::vector<TurnArray> LargeArrays(const v1::Turn& turn) {
  static_assert(std::endian::native == std::endian::little);
  std::vector<TurnArray> out;
  auto add = [&](int field, const auto& values) {
    const size_t bytes = values.size() * sizeof(values[0]);
    if (bytes >= kReferenceArrayBytes) out.push_back({field, values.data(), bytes});
  };
  add(v1::Turn::kObservationFieldNumber, turn.observation());
  add(v1::Turn::kObservationTokensFieldNumber, turn.observation_tokens());
  add(v1::Turn::kActionTokensFieldNumber, turn.action_tokens());
  add(v1::Turn::kBehaviourLogProbsFieldNumber, turn.behaviour_log_probs());
  return out;
}

bool HasUnknownFields(const google::protobuf::Message& m) {
  return !m.GetReflection()->GetUnknownFields(m).empty();
}

// EncodeTrajectory's work; nullopt where nothing is large enough to reference, or where the
// pieces would not parse as the trajectory (unknown fields).
std::optional<std::vector<grpc::Slice>> EncodeByReference(
    const std::shared_ptr<const v1::Trajectory>& trajectory, const std::string& key) {
  const v1::Trajectory& t = *trajectory;
  // Nothing to reference (board games, short turns): protobuf's generated code encodes faster.
  if (std::none_of(t.turns().begin(), t.turns().end(),
                   [](const v1::Turn& turn) { return !LargeArrays(turn).empty(); }) ||
      HasUnknownFields(t)) {
    return std::nullopt;
  }
  Pieces out(trajectory);
  // The trajectory's fields other than its turns and key, then each turn as a `turns`
  // occurrence, then the key: the order of fields does not matter to a parser, that of one
  // field's values does.
  const auto* descriptor = t.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const int number = descriptor->field(i)->number();
    if (number != v1::Trajectory::kTurnsFieldNumber &&
        number != v1::Trajectory::kActorIdFieldNumber &&
        number != v1::Trajectory::kIncarnationFieldNumber &&
        number != v1::Trajectory::kSequenceFieldNumber) {
      out.AppendField(t, descriptor->field(i));
    }
  }
  for (const v1::Turn& turn : t.turns()) {
    const size_t size = turn.ByteSizeLong();
    AppendFieldHeader(out.head(), v1::Trajectory::kTurnsFieldNumber, size);
    const std::vector<TurnArray> arrays = LargeArrays(turn);
    if (arrays.empty()) {
      out.AppendMessage(turn, size);
      continue;
    }
    if (HasUnknownFields(turn)) return std::nullopt;
    const size_t start = out.size();
    const auto* turn_descriptor = turn.GetDescriptor();
    for (int i = 0; i < turn_descriptor->field_count(); ++i) {
      const auto* field = turn_descriptor->field(i);
      if (std::none_of(arrays.begin(), arrays.end(),
                       [&](const TurnArray& a) { return a.field == field->number(); })) {
        out.AppendField(turn, field);
      }
    }
    for (const TurnArray& a : arrays) {
      AppendFieldHeader(out.head(), a.field, a.bytes);
      out.Reference(a.data, a.bytes);
    }
    if (out.size() - start != size) return std::nullopt;
  }
  out.head() += key;
  return out.Finish();
}

}  // namespace

uint64_t DrawIncarnation() {
  std::random_device device;
  // The clock too, in case the device is a fixed-seed stand-in (it may be where no entropy
  // source is): two starts must not draw the same number.
  std::seed_seq seed{
      device(),
      device(),
      device(),
      device(),
      static_cast<unsigned>(std::chrono::system_clock::now().time_since_epoch().count()),
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())};
  std::mt19937_64 rng(seed);
  uint64_t incarnation = 0;
  while (incarnation == 0) incarnation = rng();
  return incarnation;
}

std::vector<grpc::Slice> EncodeTrajectory(std::shared_ptr<const v1::Trajectory> trajectory,
                                          const ItemKey& key) {
  if (auto pieces = EncodeByReference(trajectory, Key(key).SerializeAsString())) {
    return *std::move(pieces);
  }
  return {Serialize(*trajectory, key)};
}

std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, v1::InsertResponse>> OpenRawInsertStream(
    const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* ctx) {
  static const std::string method_name =
      absl::StrCat("/", v1::ReplayService::service_full_name(), "/Insert");
  const grpc::internal::RpcMethod method(method_name.c_str(),
                                         grpc::internal::RpcMethod::BIDI_STREAMING, channel);
  return std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, v1::InsertResponse>>(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, v1::InsertResponse>::Create(
          channel.get(), method, ctx));
}

grpc::ByteBuffer ReplayWriter::Frame(const std::string& prefix,
                                     const std::vector<std::shared_ptr<const Outgoing>>& items) {
  std::vector<const InsertBody*> bodies;
  bodies.reserve(items.size());
  for (const auto& item : items) bodies.push_back(&item->wire);
  return EncodeInsertRequest(prefix, bodies);
}

std::shared_ptr<ReplayWriter::Outgoing> ReplayWriter::Reserve() {
  auto out = std::make_shared<Outgoing>();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stop_ || unacked_.size() < max_in_flight_; });
  if (stop_) return nullptr;
  out->sequence = next_sequence_++;
  unacked_.push_back(out);
  if (in_flight_) in_flight_->Set(static_cast<double>(unacked_.size()));
  return out;
}

void ReplayWriter::MarkReady(Outgoing& out, std::vector<grpc::Slice> body) {
  size_t bytes = 0;
  for (const grpc::Slice& s : body) bytes += s.size();
  // Large items travel compressed; the replay decompresses them before validating.
  if (bytes > kWireCompressAboveBytes) {
    std::string z = compressor_.Compress(bytes, [&] { return JoinSlices(body); });
    if (!z.empty()) {
      bytes = z.size();
      body = {OwningSlice(std::move(z))};
      out.wire.compressed = true;
    }
  }
  out.wire.slices = std::move(body);
  out.wire.bytes = bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out.ready = true;
  }
  ready_cv_.notify_one();
}

bool ReplayWriter::Push(const v1::Trajectory& trajectory) {
  std::shared_ptr<Outgoing> out = Reserve();
  if (out == nullptr) return false;
  MarkReady(*out, {Serialize(trajectory, {actor_id_, incarnation_, out->sequence})});
  return true;
}

bool ReplayWriter::Push(std::shared_ptr<const v1::Trajectory> trajectory) {
  std::shared_ptr<Outgoing> out = Reserve();
  if (out == nullptr) return false;
  MarkReady(*out,
            EncodeTrajectory(std::move(trajectory), {actor_id_, incarnation_, out->sequence}));
  return true;
}

void ReplayWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (ctx_) ctx_->TryCancel();
  }
  cv_.notify_all();
  ready_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ReplayWriter::Loop() {
  auto channel = MakeChannel(address_, /*own_connection=*/true);
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      sent_ = 0;  // everything unacknowledged goes out again on the new stream
    }
    RunStream(channel);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, retry_delay_, [&] { return stop_; });
  }
}

void ReplayWriter::RunStream(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext ctx;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    ctx_ = &ctx;
  }
  // Raw requests: each is framed from encoded trajectories (Frame), so the payload is not
  // serialised a second time.
  auto stream = OpenRawInsertStream(channel, &ctx);
  // Acks arrive in order: each settles the `count` oldest sent trajectories, the last of which
  // it names.
  std::thread reader([&] {
    v1::InsertResponse ack;
    while (stream->Read(&ack)) {
      std::lock_guard<std::mutex> lock(mu_);
      const size_t count = std::max<uint32_t>(ack.count(), 1);
      // A rejected item's ack may not name it (its bytes may not have decoded).
      if (count > sent_ || (ack.code() == 0 && unacked_[count - 1]->sequence != ack.sequence())) {
        LogWarning("insert ack does not match the items sent; reconnecting",
                   {{"sequence", ack.sequence()}, {"count", static_cast<int64_t>(count)}});
        break;
      }
      // The replay could not make the item durable (a full disk): it is not stored, and goes
      // out again, with the rest, on a new stream after a pause that grows while this lasts.
      if (ack.code() == static_cast<int>(grpc::StatusCode::UNAVAILABLE)) {
        ++retried_;
        retry_delay_ = std::min(2 * retry_delay_, kMaxRetryDelay);
        LogWarning("the replay could not store a trajectory; sending it again",
                   {{"sequence", unacked_.front()->sequence},
                    {"error", ack.error()},
                    {"retry_in_ms", static_cast<int64_t>(retry_delay_.count())}});
        break;
      }
      retry_delay_ = kRetryDelay;
      for (size_t i = 0; i < count; ++i) {
        const uint64_t sequence = unacked_.front()->sequence;
        if (ack.code() == 0) {
          ++acked_;
          if (ack.duplicate()) ++duplicates_;
          acked_sequences_.push_back(sequence);
          if (acked_counter_) acked_counter_->Increment();
        } else {
          ++rejected_;
          if (rejected_counter_) rejected_counter_->Increment();
          LogWarning("trajectory rejected", {{"sequence", sequence}, {"error", ack.error()}});
        }
        unacked_.pop_front();
        --sent_;
      }
      if (in_flight_) in_flight_->Set(static_cast<double>(unacked_.size()));
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ctx_ = nullptr;
    ctx.TryCancel();
    cv_.notify_all();
    ready_cv_.notify_all();
  });
  const std::string prefix = EncodeInsertPrefix(tables_, /*priority=*/1.0);
  std::vector<std::shared_ptr<const Outgoing>> batch;
  while (true) {
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_cv_.wait(lock, [&] {
        return stop_ || ctx_ == nullptr || (sent_ < unacked_.size() && unacked_[sent_]->ready);
      });
      if (stop_ || ctx_ == nullptr) break;
      // Everything ready goes out in one message, up to kMaxBatchBytes (at least one item).
      size_t bytes = 0;
      while (sent_ < unacked_.size() && unacked_[sent_]->ready &&
             (batch.empty() || bytes + unacked_[sent_]->wire.bytes <= kMaxBatchBytes)) {
        bytes += unacked_[sent_]->wire.bytes;
        batch.push_back(unacked_[sent_++]);
      }
    }
    // Only this thread reads a ready item's body; the request references it.
    if (!stream->Write(Frame(prefix, batch))) break;
  }
  stream->WritesDone();
  ctx.TryCancel();
  reader.join();
  grpc::Status s = stream->Finish();
  std::lock_guard<std::mutex> lock(mu_);
  ctx_ = nullptr;
  if (!stop_ && !s.ok()) {
    LogWarning("insert stream broke; resending unacknowledged",
               {{"error", s.error_message()}, {"unacked", unacked_.size()}});
  }
}

}  // namespace rally
