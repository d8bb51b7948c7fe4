// A heuristic trader for Simple Negotiation: the fixed opponent that evaluation plays against.
//
// Its rule, at its own private values v and the public base values b:
// - The gain of a trade to the trader is v(what it gets) - v(what it gives).
// - Its best offer: among the offers it can afford, the one of the largest gain to it among those
//   that do not lose the other side value at base prices (b of what the other gets >= b of what
//   the other gives), ties broken uniformly at random. When none of those gains it anything, the
//   affordable offer of the largest gain outright (which a sensible other side refuses).
// - Facing a pending offer: accept when it can and the trade gains it value (> 0); otherwise
//   counter with its best offer when that gains it value, else deny.
// - With no offer pending: make its best offer.
#pragma once

#include <random>
#include <string>

#include "common/eval/agent.h"
#include "common/games/negotiation.h"

namespace rally {

class NegotiationTrader final : public Agent {
 public:
  std::string name() const override { return "trader"; }
  // `state` must be a NegotiationState.
  int Act(const State& state, std::mt19937_64& rng) const override;

  // The gain to `player` of `offer` being accepted, made by `proposer`, at `player`'s values.
  static int TradeGain(const NegotiationState& state, int player, int proposer,
                       const NegotiationOffer& offer);
};

}  // namespace rally
