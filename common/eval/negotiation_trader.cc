#include "common/eval/negotiation_trader.h"

#include <limits>
#include <vector>

namespace rally {

int NegotiationTrader::TradeGain(const NegotiationState& state, int player, int proposer,
                                 const NegotiationOffer& offer) {
  const auto& v = state.values(player);
  int proposer_gain = v[offer.get] * offer.get_units - v[offer.give] * offer.give_units;
  return player == proposer ? proposer_gain : -proposer_gain;
}

int NegotiationTrader::Act(const State& state, std::mt19937_64& rng) const {
  const auto& s = static_cast<const NegotiationState&>(state);
  int me = s.CurrentPlayer();
  int max_units = s.options().max_units;
  std::vector<int> legal = s.LegalActions();

  // Best offers: fair at base prices first, any as the fallback.
  int best_fair = std::numeric_limits<int>::min();
  int best_any = std::numeric_limits<int>::min();
  std::vector<int> fair_offers;
  std::vector<int> any_offers;
  bool can_accept = false;
  for (int action : legal) {
    if (action == NegotiationState::kAccept) can_accept = true;
    if (action < NegotiationState::kFirstOffer) continue;
    NegotiationOffer o = DecodeOffer(action - NegotiationState::kFirstOffer, max_units);
    int gain = TradeGain(s, me, me, o);
    bool fair = kBaseValues[o.give] * o.give_units >= kBaseValues[o.get] * o.get_units;
    if (fair && gain >= best_fair) {
      if (gain > best_fair) fair_offers.clear();
      best_fair = gain;
      fair_offers.push_back(action);
    }
    if (gain >= best_any) {
      if (gain > best_any) any_offers.clear();
      best_any = gain;
      any_offers.push_back(action);
    }
  }
  bool fair_gains = !fair_offers.empty() && best_fair > 0;
  const std::vector<int>& offers = fair_gains ? fair_offers : any_offers;
  int offer = offers[std::uniform_int_distribution<size_t>(0, offers.size() - 1)(rng)];

  if (s.pending_offer() >= 0) {
    NegotiationOffer pending =
        DecodeOffer(s.pending_offer() - NegotiationState::kFirstOffer, max_units);
    if (can_accept && TradeGain(s, me, 1 - me, pending) > 0) return NegotiationState::kAccept;
    return fair_gains ? offer : NegotiationState::kDeny;
  }
  return offer;
}

}  // namespace rally
