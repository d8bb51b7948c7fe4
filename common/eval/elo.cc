#include "common/eval/elo.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

int Find(std::vector<int>& parent, int i) {
  while (parent[i] != i) i = parent[i] = parent[parent[i]];
  return i;
}

}  // namespace

double EloExpectedScore(double rating, double opponent_rating) {
  return 1.0 / (1.0 + std::pow(10.0, (opponent_rating - rating) / 400.0));
}

absl::StatusOr<std::map<std::string, double>> FitElo(std::span<const MatchResult> results,
                                                     const EloOptions& options) {
  std::map<std::string, int> index;
  for (const MatchResult& r : results) {
    if (r.player_a == r.player_b) {
      return absl::InvalidArgumentError(absl::StrCat("'", r.player_a, "' cannot play itself"));
    }
    if (r.wins_a < 0 || r.draws < 0 || r.wins_b < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("negative game count between '", r.player_a, "' and '", r.player_b, "'"));
    }
    index.try_emplace(r.player_a, 0);
    index.try_emplace(r.player_b, 0);
  }
  std::vector<std::string> names;
  for (auto& [name, i] : index) {
    i = static_cast<int>(names.size());
    names.push_back(name);
  }
  const int n = static_cast<int>(names.size());
  const double prior = options.prior_draws;
  std::vector<double> points(n, prior / 2), games(n, prior);
  std::vector<std::vector<double>> between(n, std::vector<double>(n, 0.0));
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  for (const MatchResult& r : results) {
    int a = index[r.player_a];
    int b = index[r.player_b];
    double total = r.wins_a + r.draws + r.wins_b;
    points[a] += r.wins_a + r.draws / 2;
    points[b] += r.wins_b + r.draws / 2;
    games[a] += total;
    games[b] += total;
    between[a][b] += total;
    between[b][a] += total;
    if (total > 0) parent[Find(parent, a)] = Find(parent, b);
  }
  if (prior <= 0) {
    for (int i = 0; i < n; ++i) {
      if (points[i] <= 0 || points[i] >= games[i]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", names[i],
            "' won every game or none: its rating is not finite; use prior_draws > 0"));
      }
      if (Find(parent, i) != Find(parent, 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", names[i], "' and '", names[0],
            "' are in groups that never met: ratings are not comparable; use prior_draws > 0"));
      }
    }
  }

  std::vector<double> gamma(n, 1.0), next(n);
  for (int iteration = 0; iteration < options.max_iterations; ++iteration) {
    for (int i = 0; i < n; ++i) {
      double denominator = prior / (gamma[i] + 1.0);  // the virtual opponent, gamma 1
      for (int j = 0; j < n; ++j) {
        if (between[i][j] > 0) denominator += between[i][j] / (gamma[i] + gamma[j]);
      }
      next[i] = denominator > 0 ? points[i] / denominator : 1.0;
    }
    if (prior <= 0) {
      double log_mean = 0;
      for (double g : next) log_mean += std::log(g) / n;
      for (double& g : next) g /= std::exp(log_mean);
    }
    double moved = 0;
    for (int i = 0; i < n; ++i) {
      moved = std::max(moved, std::abs(400.0 * std::log10(next[i] / gamma[i])));
    }
    gamma.swap(next);
    if (moved < options.tolerance) break;
  }

  double shift = 0;
  if (!options.anchor.empty()) {
    auto it = index.find(options.anchor);
    if (it == index.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("anchor '", options.anchor, "' played no game"));
    }
    shift = options.anchor_rating - 400.0 * std::log10(gamma[it->second]);
  }
  std::map<std::string, double> ratings;
  for (int i = 0; i < n; ++i) ratings[names[i]] = 400.0 * std::log10(gamma[i]) + shift;
  return ratings;
}

}  // namespace rally
