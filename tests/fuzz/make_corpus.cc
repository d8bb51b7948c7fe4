// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/) with rally's own
// writers, so that each target starts from valid inputs: fuzz_corpus <corpus dir>. The files it
// writes are checked in; run it again when a format changes.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/eval/policy_json.h"
#include "common/models/safetensors.h"
#include "common/util/zstd.h"
#include "nlohmann/json.hpp"
#include "rally/v1/replay.pb.h"
#include "tests/fuzz/replay_recovery.h"

namespace rally::fuzz {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Corpus {
 public:
  explicit Corpus(fs::path root) : root_(std::move(root)) {}
  // Writes seed `name` of `target`; `mode`, when given, is the byte the target reads first.
  void Add(const std::string& target, const std::string& name, std::string_view bytes,
           int mode = -1) {
    fs::create_directories(root_ / target);
    std::ofstream out(root_ / target / name, std::ios::binary);
    if (mode >= 0) out.put(static_cast<char>(mode));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

 private:
  fs::path root_;
};

v1::Trajectory Episode(uint64_t sequence, int turns) {
  v1::Trajectory t;
  t.set_game("tictactoe");
  t.set_actor_id("actor-0");
  t.set_incarnation(1);
  t.set_sequence(sequence);
  for (int i = 0; i < turns; ++i) {
    v1::Turn* turn = t.add_turns();
    turn->set_seat(i % 2);
    for (int c = 0; c < 27; ++c) turn->add_observation(c % 3 == i % 3 ? 1.0f : 0.0f);
    for (int a = i; a < 9; ++a) turn->add_legal_actions(a);
    turn->set_action(i);
    turn->add_behaviour_log_probs(-1.5f);
    turn->set_policy_version(sequence);
  }
  t.add_returns(1);
  t.add_returns(-1);
  t.add_learning_seats(0);
  return t;
}

void InsertSeeds(Corpus& corpus) {
  v1::InsertRequest one;
  one.add_tables("queue");
  *one.mutable_trajectory() = Episode(1, 5);
  corpus.Add("insert_parse_fuzz", "one-item", one.SerializeAsString(), 0);
  v1::InsertRequest batch = one;
  batch.set_priority(2.5);
  for (uint64_t s = 2; s < 4; ++s) {
    v1::InsertRequest* more = batch.add_more();
    more->add_tables("queue");
    more->add_tables("prioritized");
    more->set_priority(0.5 * s);
    *more->mutable_trajectory() = Episode(s, 3);
  }
  corpus.Add("insert_parse_fuzz", "batch-in-three-slices-kept", batch.SerializeAsString(), 4 | 2);
  v1::InsertRequest compressed;
  compressed.add_tables("queue");
  std::string raw;
  for (int i = 0; i < 8; ++i) raw += Episode(10 + i, 9).SerializeAsString();
  compressed.set_trajectory_zstd(ZstdCompress(raw));
  corpus.Add("insert_parse_fuzz", "zstd-item", compressed.SerializeAsString(), 1);
}

// A job's directory after inserts, samples, a priority update, a snapshot and more inserts.
void ReplaySeeds(Corpus& corpus) {
  ScratchDir scratch;
  const std::string& dir = scratch.Reset();
  {
    auto store = DurableStore::Open({.dir = dir, .fsync = FsyncPolicy::kNever});
    FUZZ_CHECK(store.ok());
    auto job = ReplayJob::Create(kJobId, kJobSpec, FuzzJobConfig(), std::move(*store));
    FUZZ_CHECK(job.ok());
    auto insert = [&](uint64_t sequence, const std::string& table) {
      auto t = std::make_shared<v1::Trajectory>(Episode(sequence, 3));
      auto claim = (*job)->producers().Claim(*t);
      FUZZ_CHECK(claim.ok());
      auto key = (*job)->table(table)->Insert(t, 1.0 + sequence, std::chrono::steady_clock::now());
      FUZZ_CHECK(key.ok());
      claim->MarkStored();
      return *key;
    };
    insert(1, "queue");
    const uint64_t key = insert(2, "prioritized");
    FUZZ_CHECK((*job)->table("prioritized")->UpdatePriorities({{key, 7.0}}).ok());
    FUZZ_CHECK((*job)->table("queue")->Sample(1, std::chrono::steady_clock::now()).ok());
    (*job)->table("prioritized")->SetPolicyVersion(3);
    FUZZ_CHECK((*job)->WriteSnapshot().ok());
    insert(3, "queue");
    insert(4, "prioritized");
    (*job)->Close();
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::string bytes = ReadAll(entry.path());
    if (name.rfind("wal-", 0) == 0) {
      corpus.Add("wal_segment_fuzz", name, bytes, 0);
      // The same records as a list of payloads for the target to frame.
      auto read = ReadSegment(entry.path().string());
      FUZZ_CHECK(read.ok());
      std::string list;
      for (const v1::WalRecord& r : read->records) {
        const std::string payload = r.SerializeAsString();
        FUZZ_CHECK(payload.size() < 65536);
        list.push_back(static_cast<char>(payload.size() & 0xff));
        list.push_back(static_cast<char>(payload.size() >> 8));
        list += payload;
      }
      corpus.Add("wal_segment_fuzz", name + ".records", list, 1);
    } else if (name.rfind("snapshot-", 0) == 0) {
      // Seeds are named snapshot-1.pb by the target: this must be the first snapshot.
      FUZZ_CHECK(name == "snapshot-1.pb");
      corpus.Add("snapshot_fuzz", "checked", bytes, 0);
      corpus.Add("snapshot_fuzz", "payload", bytes.substr(20), 1);
      corpus.Add("snapshot_fuzz", "legacy", bytes.substr(20), 2);
    }
  }
}

void ZstdSeeds(Corpus& corpus) {
  corpus.Add("zstd_fuzz", "episode", ZstdCompress(Episode(1, 9).SerializeAsString(), 1));
  corpus.Add("zstd_fuzz", "text",
             ZstdCompress(std::string(300, 'a') + "rally" + std::string(50, 'b')));
  std::string numbers;
  for (int i = 0; i < 2000; ++i) numbers += std::to_string(i * i % 977) + ",";
  corpus.Add("zstd_fuzz", "numbers-level-9", ZstdCompress(numbers, 9));
}

void SafetensorsSeeds(Corpus& corpus) {
  TensorSet set;
  set.metadata = {{"policy_version", "7"}, {"learner_step", "12"}};
  set.tensors.push_back({"layer.0.weight", "F32", {2, 3}, std::string(24, '\x01')});
  set.tensors.push_back({"layer.0.bias", "F32", {3}, std::string(12, '\x02')});
  corpus.Add("safetensors_fuzz", "weights", EncodeSafetensors(set));
  TensorSet mixed;
  mixed.tensors.push_back({"i", "I64", {1}, std::string(8, '\x03')});
  mixed.tensors.push_back({"h", "BF16", {2, 0, 4}, ""});
  mixed.tensors.push_back({"b", "BOOL", {}, std::string(1, '\x01')});
  corpus.Add("safetensors_fuzz", "dtypes", EncodeSafetensors(mixed));
}

void ManifestSeeds(Corpus& corpus) {
  nlohmann::json manifest = {
      {"format", "rally-learner-checkpoint/1"},
      {"job_id", "job-1"},
      {"game", "tictactoe"},
      {"game_params", {{"max_turns", "9"}}},
      {"observation_size", 27},
      {"hidden", {128, 128}},
      {"num_actions", 9},
      {"learner_step", 500},
      {"policy_version", 501},
      {"weights", "weights.safetensors"},
      {"optimizer", "optimizer.safetensors"},
      {"adam_steps", {{"layer.0.weight", 500}, {"layer.0.bias", 500}}},
      {"baselines", {{{"game", "tictactoe"}, {"role", "0"}, {"value", 0.25}}}},
      {"cpu_rng_state_hex", "00ff10ab"},
      {"checksums",
       {{"weights.safetensors", FileChecksum("bytes")},
        {"optimizer.safetensors", "crc32c:00000000"}}}};
  corpus.Add("checkpoint_manifest_fuzz", "checkpoint", manifest.dump(2) + "\n");
  nlohmann::json policy = {{"format", "rally-policy/1"},
                           {"job_id", "job-1"},
                           {"game", "kuhn_poker"},
                           {"hidden", {16}},
                           {"policy_version", 3}};
  corpus.Add("checkpoint_manifest_fuzz", "policy", policy.dump() + "\n");
}

void PolicySeeds(Corpus& corpus) {
  corpus.Add("policy_json_fuzz", "kuhn",
             R"({"game": "kuhn_poker", "policy": {"J": {"p": 0.75, "b": 0.25}, "Q": {"p": 1.0},
"K": {"b": 1}, "Jpb": {"p": 1}, "Kpb": {"b": 1.0}, "Qb": {"p": 0.6666, "b": 0.3333}}})");
  corpus.Add("policy_json_fuzz", "leduc", R"({"game": "leduc_poker", "policy": {}})");
}

void JobConfigSeeds(Corpus& corpus, const fs::path& configs) {
  for (const auto& entry : fs::directory_iterator(configs)) {
    corpus.Add("job_config_fuzz", entry.path().filename().string(), ReadAll(entry.path()));
  }
  corpus.Add("job_config_fuzz", "fuzz-job.yaml", kJobSpec);
}

}  // namespace
}  // namespace rally::fuzz

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <corpus dir> <configs dir>\n", argv[0]);
    return 2;
  }
  rally::fuzz::SilenceLog();
  rally::fuzz::Corpus corpus(argv[1]);
  rally::fuzz::InsertSeeds(corpus);
  rally::fuzz::ReplaySeeds(corpus);
  rally::fuzz::ZstdSeeds(corpus);
  rally::fuzz::SafetensorsSeeds(corpus);
  rally::fuzz::ManifestSeeds(corpus);
  rally::fuzz::PolicySeeds(corpus);
  rally::fuzz::JobConfigSeeds(corpus, argv[2]);
  return 0;
}
