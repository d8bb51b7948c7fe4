// Elo ratings of a league (the job's snapshots and the fixed opponents) from match results.
//
// Model: player i beats j with probability 1 / (1 + 10^((R_j - R_i) / 400)); a draw counts as half
// a win for each side. Fit: maximum likelihood over all results at once (the Bradley-Terry model),
// by the minorisation-maximisation iteration of Hunter (2004) on gamma_i = 10^(R_i / 400):
//   gamma_i <- W_i / sum_j N_ij / (gamma_i + gamma_j)
// with W_i the points of i and N_ij the games of i against j; the order of the results does not
// matter (unlike the sequential Elo update). Each player is also given `prior_draws` drawn games
// against a virtual player rated 0, which keeps the ratings of unbeaten or winless players finite
// and pulls sparse ones towards 0. With prior_draws = 0 the ratings are shifted to mean 0.
// Finally, when `anchor` names a player, all ratings are shifted so that it is rated
// `anchor_rating`.
#pragma once

#include <map>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace rally {

// Games between two players, counted from player_a's side.
struct MatchResult {
  std::string player_a;
  std::string player_b;
  double wins_a = 0;
  double draws = 0;
  double wins_b = 0;
};

struct EloOptions {
  double prior_draws = 1.0;
  std::string anchor;  // empty: no shift
  double anchor_rating = 0.0;
  int max_iterations = 100000;
  double tolerance = 1e-9;  // stop when no rating moves more than this (Elo points)
};

// Ratings by player. INVALID_ARGUMENT for negative counts, a player playing itself, an unknown
// anchor, or — with prior_draws = 0 — results from which the maximum-likelihood ratings are not
// finite (a player who won every game or none, or players in two groups that never met).
absl::StatusOr<std::map<std::string, double>> FitElo(std::span<const MatchResult> results,
                                                     const EloOptions& options = {});

// The expected score of a player rated `rating` against one rated `opponent_rating`.
double EloExpectedScore(double rating, double opponent_rating);

}  // namespace rally
