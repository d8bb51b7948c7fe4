// Trajectories and request buffers for the tests of the insert path (insert_wire_test.cc,
// insert_parse_test.cc).
#pragma once

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "rally/v1/trajectory.pb.h"

namespace rally::insert_test {

// A TicTacToe trajectory of actor "a" numbered `sequence`, whose one turn holds `tokens`
// observation token ids 0, 1, ...
inline v1::Trajectory Tokens(uint64_t sequence, int tokens) {
  v1::Trajectory t;
  t.set_game("tictactoe");
  t.set_actor_id("a");
  t.set_sequence(sequence);
  v1::Turn* turn = t.add_turns();
  for (int i = 0; i < tokens; ++i) turn->add_observation_tokens(i);
  return t;
}

// `bytes` as a ByteBuffer of `pieces` slices, as gRPC hands over a message read in parts.
inline grpc::ByteBuffer Buffer(const std::string& bytes, int pieces) {
  std::vector<grpc::Slice> slices;
  const size_t step = bytes.size() / pieces + 1;
  for (size_t at = 0; at < bytes.size(); at += step) {
    slices.emplace_back(bytes.data() + at, std::min(step, bytes.size() - at));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace rally::insert_test
