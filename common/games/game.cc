#include "common/games/game.h"

#include <algorithm>
#include <functional>
#include <numeric>

namespace rally {

bool State::IsLegal(int action) const {
  std::vector<int> legal = LegalActions();
  return std::binary_search(legal.begin(), legal.end(), action);
}

int Game::ObservationSize() const {
  std::vector<int> shape = ObservationShape();
  return std::accumulate(shape.begin(), shape.end(), 1, std::multiplies<int>());
}

}  // namespace rally
