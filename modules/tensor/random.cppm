// Seeded random numbers and the initialisers built on them. The generator and the
// distributions are written out here (not std::*_distribution, whose output differs between
// standard libraries), so a seed means the same numbers everywhere.
module;
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
export module odyssey.tensor:random;
import :shape;
import :tensor;

export namespace odyssey {

/// xoshiro256** seeded through splitmix64. Its state is four words, saved in checkpoints.
class Rng {
 public:
  using State = std::array<std::uint64_t, 4>;

  explicit Rng(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) noexcept {
    for (auto& s : state_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      s = z ^ (z >> 31);
    }
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, 1), 53 random bits.
  double uniform01() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform01(); }

  /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias below 2^-64 * n).
  std::uint64_t below(std::uint64_t n) noexcept {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

  /// Standard normal (Box-Muller; one draw per call, so the state stays four words).
  double normal() noexcept {
    const double u1 = 1.0 - uniform01();  // (0, 1]
    const double u2 = uniform01();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  [[nodiscard]] const State& state() const noexcept { return state_; }
  void set_state(const State& s) noexcept { state_ = s; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  State state_{};
};

template <class T>
void fill_uniform(std::span<T> out, double lo, double hi, Rng& rng) {
  for (auto& v : out) v = static_cast<T>(rng.uniform(lo, hi));
}

template <class T>
void fill_normal(std::span<T> out, double mean, double stddev, Rng& rng) {
  for (auto& v : out) v = static_cast<T>(mean + stddev * rng.normal());
}

/// PyTorch's default for conv and linear weights: Kaiming-uniform with a = sqrt(5), which
/// is uniform in +-1/sqrt(fan_in) (gain sqrt(2/(1+a^2)) = sqrt(1/3), bound sqrt(3)*gain/sqrt(fan_in)).
/// fan_in is every extent but the first (C*R*S for a conv, in-features for a linear).
template <class T, ShapeType S>
  requires(S::rank >= 2)
void kaiming_uniform(Tensor<T, S>& w, Rng& rng) {
  constexpr double fan_in = static_cast<double>(S::size / S::extents[0]);
  const double bound = 1.0 / std::sqrt(fan_in);
  fill_uniform(std::span<T>(w.data(), S::size), -bound, bound, rng);
}

/// PyTorch's default for a bias: uniform in +-1/sqrt(fan_in) of the layer's weight.
template <class T, std::size_t K>
void bias_uniform(Tensor<T, Shape<K>>& b, std::size_t fan_in, Rng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  fill_uniform(std::span<T>(b.data(), K), -bound, bound, rng);
}

}  // namespace odyssey
