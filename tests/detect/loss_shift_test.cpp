// loss_shift: the loss judged against its own noise (detect/loss_shift.hpp),
// against an independent float64 model of its rules; the spike-skipping
// response; and the rules of metaseq and llm-foundry, written here as small
// reference functions, on the same sequences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "detect_support.hpp"
#include "simic/core/response.hpp"
#include "simic/detect/loss_shift.hpp"
#include "simic/monitor.hpp"

using namespace simic;
using namespace simic::test;

namespace {

signals with_loss(double loss) {
  signals s;
  s.loss = loss;
  return s;
}

// An independent float64 model of the rules in detect/loss_shift.hpp's
// comment: every exponentially weighted figure is a weighted sum over the
// values absorbed so far (not a recursive EMA), its weights written out.
struct reference_loss {
  explicit reference_loss(const loss_shift_options& opts) : o(opts) {}
  loss_shift_options o;
  std::vector<double> absorbed;  // the loss, as absorbed (clipped once judging)
  std::vector<double> squares;   // r^2
  std::vector<double> residuals; // r, when the noise absorbed it
  bool judging = false;
  // the figures of the last value
  double level = 0.0, spread = 0.0, noise = 0.0, recent = 0.0, running = 0.0;
  bool spike = false, extreme = false, rising = false;

  static double mean(const std::vector<double>& v, double m) { return v.empty() ? 0.0 : weighted(v, m); }
  static double variance(const std::vector<double>& v, double m) {
    std::vector<double> sq(v.size());
    std::transform(v.begin(), v.end(), sq.begin(), [](double x) { return x * x; });
    const double mu = mean(v, m);
    return std::max(0.0, mean(sq, m) - mu * mu);
  }
  // (sum w)^2 / sum w^2 of n weights m^k.
  static double effective(std::size_t n, double m) {
    double w = 0.0, w2 = 0.0;
    for (std::size_t k = 0; k < n; ++k) {
      const double wk = std::pow(m, static_cast<double>(k));
      w += wk;
      w2 += wk * wk;
    }
    return w * w / w2;
  }
  std::size_t max_warmup() const {
    return std::max<std::size_t>(o.min_warmup, static_cast<std::size_t>(std::ceil(1.0 / (1.0 - o.slow_momentum))));
  }

  void step(double x) {
    spike = extreme = rising = false;
    if (!std::isfinite(x)) return;
    if (absorbed.empty()) {
      absorbed.push_back(x);
      return;
    }
    level = mean(absorbed, o.fast_momentum);
    running = mean(absorbed, o.slow_momentum);
    const double floor = std::max(o.floor * std::abs(running), o.floor_abs);
    spread = std::sqrt(mean(squares, o.slow_momentum) + floor * floor);
    noise = std::sqrt(variance(residuals, o.slow_momentum) + floor * floor);
    const double r = x - level;
    if (!judging) {
      if (!std::isfinite(r * r * r * r)) return;
      absorbed.push_back(level + r);
      squares.push_back(r * r);
      residuals.push_back(r);
      if (squares.size() >= o.min_warmup) {
        const double e2 = mean(squares, o.slow_momentum);
        const double error = 0.5 * std::sqrt(variance(squares, o.slow_momentum) /
                                             effective(squares.size(), o.slow_momentum)) /
                             (e2 + floor * floor);
        judging = error < o.settle || squares.size() >= max_warmup();
      }
      return;
    }
    extreme = r > o.extreme * spread;
    spike = r > o.spike * spread && !extreme;
    const double rc = std::clamp(r, -o.clip * spread, o.clip * spread);
    absorbed.push_back(level + rc);
    squares.push_back(rc * rc);
    recent = mean(absorbed, o.fast_momentum);
    running = mean(absorbed, o.slow_momentum);
    const double gap = recent - running;
    if (!(gap > 0.5 * o.rise * noise)) residuals.push_back(rc);
    rising = absorbed.size() >= max_warmup() && gap > o.rise * noise;
  }
};

// A training loss: from `start` falling towards `floor` with time constant
// `tau`, times lognormal minibatch noise of relative spread `cv`.
std::vector<double> falling_loss(std::uint64_t seed, std::size_t n, double cv, double start = 2.3,
                                 double floor = 0.2, double tau = 300.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, cv);
  std::vector<double> v;
  for (std::size_t t = 0; t < n; ++t)
    v.push_back((floor + (start - floor) * std::exp(-static_cast<double>(t) / tau)) * std::exp(noise(rng)));
  return v;
}

// A PPO total loss like the example trainer's (policy loss + 0.5 value loss -
// 0.01 entropy, 8 minibatches per update): each update has its own level (the
// rollout's returns), lognormal around 0.28 and one time in five near 0; the
// minibatches scatter around it; the policy and entropy terms add a few
// thousandths, so the total crosses 0 (measured on five 200-update runs of
// the trainer: 33 to 72 negative checks in 1600, levels per update spread
// over a factor e^1.1 to e^1.5).
std::vector<double> ppo_like_loss(std::uint64_t seed, std::size_t updates) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::vector<double> v;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (std::size_t u = 0; u < updates; ++u) {
    double level = 0.28 * std::exp(0.45 * n01(rng));
    if (u01(rng) < 0.2) level *= 0.05;
    for (int mb = 0; mb < 8; ++mb) v.push_back(level * std::exp(0.4 * n01(rng)) + 0.006 * n01(rng) - 0.007);
  }
  return v;
}

// The example trainer's total loss, per check, from the golden events run
// (tests/examples/golden: --seed 3 --updates 60 --inject lr-spike@30; the
// learning-rate spike at update 30 leaves the loss as it was).
const std::vector<double> golden_ppo_loss{
    0.170094788, 0.149082303, 0.138793826, 0.149917439, 0.156311661, 0.11171627,
    0.116197124, 0.130091488, 0.186823413, 0.180586904, 0.159548149, 0.16750963,
    0.141241491, 0.143891051, 0.117394425, 0.129912376, 0.235219941, 0.217194557,
    0.171730846, 0.229138792, 0.193344697, 0.205380931, 0.192578673, 0.194566339,
    0.311500251, 0.290161788, 0.288764417, 0.285222858, 0.266697049, 0.275118232,
    0.273177594, 0.236106142, 0.314055592, 0.16239202, 0.201112419, 0.230321288,
    0.18754518, 0.20244059, 0.148633718, 0.216960222, 0.298924297, 0.401054204,
    0.365139484, 0.306477904, 0.334961444, 0.291867912, 0.339839756, 0.239317477,
    0.283219576, 0.34531039, 0.28375569, 0.30730173, 0.297223806, 0.274068117,
    0.264746606, 0.284939945, 0.230442584, 0.338339418, 0.250050247, 0.283435553,
    0.260472685, 0.238869593, 0.197785437, 0.267241865, 0.240735322, 0.346360654,
    0.294681191, 0.25741297, 0.250573069, 0.29151386, 0.26554513, 0.266411722,
    0.321658731, 0.323253393, 0.309536487, 0.260247797, 0.265730739, 0.251727104,
    0.260705113, 0.243861556, 0.404163688, 0.322361946, 0.258359581, 0.437699616,
    0.372384965, 0.294231951, 0.308976799, 0.32722342, 0.343283623, 0.234234095,
    0.280490667, 0.20303157, 0.172217727, 0.301597178, 0.217690527, 0.27209726,
    0.353540927, 0.421583176, 0.389208198, 0.290265769, 0.327320665, 0.314025134,
    0.330444217, 0.281573802, 0.408242643, 0.362542003, 0.488518357, 0.253710747,
    0.364635885, 0.337422162, 0.393774539, 0.272597492, 0.410681188, 0.18234691,
    0.339509934, 0.230054468, 0.313557357, 0.229629368, 0.165559798, 0.379431695,
    0.303996146, 0.28048721, 0.293541819, 0.257312417, 0.16300194, 0.341466844,
    0.237110987, 0.226385489, 0.211997211, 0.334061444, 0.156915635, 0.354172349,
    0.238619193, 0.2411654, 0.193474218, 0.284074932, 0.175685093, 0.104689166,
    0.0614794977, 0.0721924305, 0.0552996919, 0.0840312168, 0.0899989977, 0.0785361901,
    0.953432381, 0.821018457, 0.745558798, 0.839724422, 0.879255116, 0.601979613,
    0.586548567, 0.831846893, 0.286663711, 0.23264572, 0.180677712, 0.319703013,
    0.282777458, 0.21255976, 0.110150769, 0.383622587, 0.248894095, 0.444022,
    0.275192261, 0.378313273, 0.188604876, 0.409415841, 0.229691699, 0.338931054,
    0.142328829, 0.0726364776, 0.108862303, 0.0490285903, 0.114153422, 0.0322960988,
    0.0425711684, 0.110044457, 0.103697546, 0.209295452, 0.107814051, 0.133816242,
    0.0292295665, 0.174473792, 0.152461842, 0.0838436931, 0.136130303, 0.247597083,
    0.235801309, 0.0841636881, 0.124299683, 0.177337155, 0.160257846, 0.122724928,
    0.246991068, 0.149089128, 0.250440478, 0.135256767, 0.228496119, 0.0959180519,
    0.227733836, 0.0832579136, 0.180673718, 0.180467814, 0.149476618, 0.157274544,
    0.104620293, 0.141927928, 0.185324326, 0.0603481717, 0.0694525763, 0.216956735,
    0.199744865, 0.0614601672, 0.0691699609, 0.17290996, 0.0542750917, 0.18016918,
    0.249985412, 0.181466743, 0.231981397, 0.15816091, 0.248022258, 0.120266631,
    0.169105589, 0.170017034, 0.371563613, 0.108713731, 0.318410426, 0.124082386,
    0.0969405845, 0.330918342, 0.120401464, 0.299086422, 0.291091263, 0.225590646,
    0.169725031, 0.458482385, 0.367932111, 0.498181939, 0.274018019, 0.176340386,
    0.4117015, 0.104934603, 0.155224204, 0.305488765, 0.349837363, 0.0582885966,
    0.292360544, 0.0851345882, 0.0365268178, 0.271880805, 0.151577055, 0.149266109,
    0.261647463, 0.0347392559, 0.0277035013, 0.267631382, 0.0408630781, 0.0291906931,
    0.0317946896, 0.00033883471, 0.0194756035, 0.0313336253, 0.0298044309, 0.0142510496,
    0.071079053, 0.0489297099, 0.0647953451, 0.0503986254, 0.0508716144, 0.0446111597,
    0.0247287098, 0.0534094498, 0.65863055, 0.0290956385, 0.368775249, 0.307448834,
    0.404871672, 0.223350078, 0.0574956983, 0.524615765, 0.696345985, 0.850621581,
    0.757890224, 0.647953808, 0.825936377, 0.489755213, 0.775683999, 0.522620142,
    0.612052143, 0.377064079, 0.601049423, 0.248218611, 0.396687299, 0.325476706,
    0.355559319, 0.321831405, 0.146603405, 0.214111656, 0.148844525, 0.156359047,
    0.153604373, 0.157760844, 0.165587708, 0.121302873, 0.159798205, 0.164749444,
    0.177237555, 0.0917803943, 0.11628443, 0.0828830227, 0.0972634852, 0.0762381405,
    0.0917934552, 0.064849332, 0.0634068474, 0.0530438945, 0.0320582539, 0.0840433687,
    0.0448633246, 0.0717995986, 0.0403723232, 0.046056211, 0.0377629399, 0.0346161276,
    0.0249859747, 0.0239896867, 0.0245542917, 0.0291322023, 0.0252610855, 0.317629725,
    0.109264143, 0.228842035, 0.215328231, 0.113471486, 0.190840393, 0.127767727,
    0.0639867634, 0.0498342142, 0.0656906143, 0.028539598, 0.0208732188, 0.0707160532,
    0.0415012576, 0.0479090102, 0.158621684, 0.260139406, 0.0804340541, 0.318708986,
    0.154961184, 0.217944145, 0.123048775, 0.236887634, 0.503763318, 0.0207203142,
    0.499263048, 0.0119994823, 0.271458656, 0.198296234, 0.188501298, 0.249016285,
    0.265602767, 0.32431978, 0.345410049, 0.241356492, 0.360696822, 0.215777338,
    0.21934545, 0.334105283, 0.580308974, 0.486302376, 0.523076236, 0.470366061,
    0.540121496, 0.439876437, 0.420673609, 0.539582729, 0.0472757518, 0.0398339704,
    0.030970823, 0.0365990698, 0.0182434544, 0.0201292839, 0.021031091, 0.0337409079,
    0.0715630352, 0.223222822, 0.107937202, 0.156645447, -0.0026095449, 0.257242054,
    0.133536726, 0.131954893, 0.0452732556, 0.893173695, 0.317951947, 0.598434567,
    0.492321342, 0.401535928, 0.158055007, 0.732984006, 0.542680383, 0.369571894,
    0.416859627, 0.472596228, 0.461251199, 0.398654372, 0.606812537, 0.235015303,
    0.0750967488, 0.0851289034, 0.0732273012, 0.0607143193, 0.111699454, 0.0139139025,
    0.058227133, 0.0601649471, 0.349933416, 0.0330043994, 0.133965015, 0.219240904,
    0.313816845, 0.00225541648, 0.00539018586, 0.314995289, 0.216761693, 0.665449977,
    0.578274012, 0.300202489, 0.592065871, 0.277914762, 0.219419673, 0.644249737,
    0.227197766, 0.61617738, 0.218800813, 0.606648147, 0.417137533, 0.397733539,
    0.270308316, 0.521627963, 0.0220274888, 0.26119563, 0.186029121, 0.0868130773,
    0.0117861964, 0.262264609, 0.262454867, -0.00987240858, 0.0210866258, 0.27249223,
    0.218899831, 0.0717869848, 0.281007022, 0.00789113156, 0.00562218577, 0.284884244,
    0.432170957, 0.307462245, 0.54902041, 0.191540837, 0.724243164, 0.0287361406,
    0.430843264, 0.305758178, 0.341629893, 0.339512855, 0.298576474, 0.379183918,
    0.160864517, 0.511150062, 0.225185677, 0.43681553, 0.27644217, 0.0136384349,
    0.0542191155, 0.235561371, 0.277397513, 0.00322256424, 0.0020494042, 0.273462594,
};

// The rules of two large-model trainers, as their code reads (the test's
// reference functions, not simic's).
//
// metaseq (facebookresearch/metaseq, trainer.py): --max-loss-to-skip-batch
// skips a batch whose loss exceeds an absolute bound; --ewm-ratio-to-skip-batch
// skips one whose loss over an exponentially weighted mean of the loss
// (span 9: alpha = 0.2, seeded with the first loss, not updated on a skipped
// batch) exceeds a ratio.
struct metaseq_rules {
  double max_loss;
  double ewm_ratio;
  std::optional<double> ewm{};
  bool above_max(double loss) const { return loss > max_loss; }
  bool ratio_spike(double loss) {
    if (!ewm) ewm = loss;
    const double ratio = loss / *ewm;
    if (ratio > ewm_ratio) return true;
    *ewm = 0.8 * *ewm + 0.2 * loss;
    return false;
  }
};

// llm-foundry (mosaicml/llm-foundry, callbacks/kill_loss_spike_callback.py,
// KillLossSpike): a rolling window of the last 100 losses; once it is full,
// a loss >= 2 x the window's mean is an outlier; more than 4 outliers in a
// row (patience 4) is a loss spike. Every loss enters the window.
struct llm_foundry_rule {
  std::size_t window = 100;
  double multiplier = 2.0;
  int patience = 4;
  std::deque<double> losses{};
  int outliers = 0;
  bool step(double loss) {
    bool spike = false;
    if (losses.size() == window) {
      const double mean = std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(window);
      if (loss >= mean * multiplier) {
        spike = ++outliers > patience;
      } else {
        outliers = 0;
      }
    }
    losses.push_back(loss);
    if (losses.size() > window) losses.pop_front();
    return spike;
  }
};

struct onsets {
  std::vector<std::size_t> spike, extreme, divergence;
  bool empty() const { return spike.empty() && extreme.empty() && divergence.empty(); }
};
onsets run(loss_shift& d, const std::vector<double>& v) {
  onsets o;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const anomaly_report r = observe(d, with_loss(v[i]));
    if (r.has(anomaly_kind::loss_spike)) o.spike.push_back(i);
    if (r.has(anomaly_kind::loss_extreme)) o.extreme.push_back(i);
    if (r.has(anomaly_kind::loss_divergence)) o.divergence.push_back(i);
  }
  return o;
}
onsets run(const std::vector<double>& v) {
  loss_shift d;
  return run(d, v);
}

}  // namespace

TEST_CASE("loss_shift's defaults and its place in the monitor") {
  const loss_shift d;
  CHECK(d.options().fast_momentum == 0.95);
  CHECK(d.options().slow_momentum == 0.99);
  CHECK(d.options().spike == 12.0);
  CHECK(d.options().extreme == 100.0);
  CHECK(d.options().rise == 2.5);
  CHECK(d.options().clip == 4.0);
  CHECK(d.options().floor == 0.01);
  CHECK(d.options().floor_abs == 1e-8);
  CHECK(d.options().settle == 0.1);
  CHECK(d.options().min_warmup == 16);
  CHECK(d.options().max_warmup() == 100);
  CHECK(d.options().how == reporting{});
  CHECK(loss_shift::name == "loss_shift");
  CHECK(loss_shift::reads == signal_set{signal_set::loss});
  static_assert(SignalReadingDetector<loss_shift> && StatefulDetector<loss_shift>);
  static_assert(std::is_same_v<loss_shift::category, cat::ops_normal>);
  CHECK(default_severity(anomaly_kind::loss_spike) == severity::warning);
  CHECK(default_severity(anomaly_kind::loss_divergence) == severity::warning);
  CHECK(default_severity(anomaly_kind::loss_extreme) == severity::critical);
  CHECK(to_string(anomaly_kind::loss_spike) == "loss_spike");
  CHECK(to_string(anomaly_kind::loss_divergence) == "loss_divergence");
  CHECK(to_string(anomaly_kind::loss_extreme) == "loss_extreme");
  CHECK(parse_anomaly_kind("loss_extreme") == anomaly_kind::loss_extreme);
}

TEST_CASE("loss_shift follows an independent float64 model: a falling loss, a x3 spike, a x1e6 spike, a ramp") {
  std::vector<double> v = falling_loss(7, 700, 0.05);
  v[300] *= 3.0;
  v[400] *= 1e6;
  for (std::size_t i = 500; i < v.size(); ++i) v[i] *= std::exp(0.03 * static_cast<double>(i - 500));
  loss_shift d;
  reference_loss ref{d.options()};
  bool spike = false, extreme = false, rising = false;  // the model's conditions, latched as the detector's
  std::size_t quiet_spike = 0, quiet_extreme = 0, quiet_rising = 0;
  std::vector<std::size_t> spikes, extremes, rises;
  for (std::size_t i = 0; i < v.size(); ++i) {
    INFO("value " << i << " = " << v[i]);
    ref.step(v[i]);
    const anomaly_report r = observe(d, with_loss(v[i]));
    CHECK(d.warming_up() == !ref.judging);
    auto latch = [&](bool holds, bool& active, std::size_t& quiet) {
      if (holds) {
        const bool onset = !active;
        active = true;
        quiet = 0;
        return onset;
      }
      if (active && ++quiet >= 3) active = false;
      return false;
    };
    const bool spike_onset = latch(ref.spike, spike, quiet_spike);
    const bool extreme_onset = latch(ref.extreme, extreme, quiet_extreme);
    const bool rising_onset = latch(ref.rising, rising, quiet_rising);
    CHECK(r.has(anomaly_kind::loss_spike) == spike_onset);
    CHECK(r.has(anomaly_kind::loss_extreme) == extreme_onset);
    CHECK(r.has(anomaly_kind::loss_divergence) == rising_onset);
    for (const anomaly& a : r) {
      if (a.kind == anomaly_kind::loss_spike || a.kind == anomaly_kind::loss_extreme) {
        const double bound = a.kind == anomaly_kind::loss_spike ? 12.0 : 100.0;
        CHECK(a.value == v[i]);
        CHECK(a.threshold == doctest::Approx(ref.level + bound * ref.spread).epsilon(1e-9));
        CHECK(*a.baseline == doctest::Approx(ref.level).epsilon(1e-9));
        (a.kind == anomaly_kind::loss_spike ? spikes : extremes).push_back(i);
      }
      if (a.kind == anomaly_kind::loss_divergence) {
        CHECK(a.value == doctest::Approx(ref.recent).epsilon(1e-9));
        CHECK(a.threshold == doctest::Approx(ref.running + 2.5 * ref.noise).epsilon(1e-9));
        CHECK(*a.baseline == doctest::Approx(ref.running).epsilon(1e-9));
        rises.push_back(i);
      }
    }
    if (ref.judging && i > 0)
      CHECK(d.level() == doctest::Approx(reference_loss::mean(ref.absorbed, 0.95)).epsilon(1e-9));
  }
  CHECK(spikes == std::vector<std::size_t>{300});
  CHECK(extremes == std::vector<std::size_t>{400});
  REQUIRE(rises.size() == 1);
  CHECK(rises[0] > 500);
  CHECK(rises[0] < 560);
}

TEST_CASE("loss_shift: the detail states the anomaly's figures") {
  loss_shift d;
  for (int i = 0; i < 30; ++i) observe(d, with_loss(2.0 + 0.01 * (i % 3)));
  REQUIRE_FALSE(d.warming_up());
  const double level = d.level(), spread = d.spread();
  const anomaly_report r = observe(d, with_loss(3.2e6));
  REQUIRE(r.size() == 1);
  const anomaly& a = r[0];
  CHECK(a.kind == anomaly_kind::loss_extreme);
  CHECK(a.severity == severity::critical);
  CHECK(a.value == 3.2e6);
  CHECK(a.threshold == level + 100.0 * spread);
  CHECK(*a.baseline == level);
  CHECK(a.detail == detail::format("loss %.6g > %.6g (recent level %.6g + %.6g x spread %.6g: %.3g spreads)", a.value,
                                   a.threshold, level, 100.0, spread, (3.2e6 - level) / spread));
  CHECK(a.detail.rfind("loss 3.2e+06 > ", 0) == 0);
}

TEST_CASE("loss_shift's warm-up ends when the spread estimate is stable, not after a fixed count") {
  loss_shift_options o;
  {  // a constant loss: the spread estimate (the floor) is stable at once: min_warmup residuals
    loss_shift d(o);
    for (int i = 0; i < 17; ++i) {
      CHECK(d.warming_up());
      CHECK(observe(d, with_loss(1.0)).empty());
    }
    CHECK_FALSE(d.warming_up());
    CHECK(d.spread() == doctest::Approx(0.01).epsilon(1e-12));  // the floor: 1 % of the running level
  }
  std::vector<int> gaussian;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {  // Gaussian noise: about 50 effective values (1 / sqrt(2 n) < 0.1)
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> n(1.0, 0.05);
    loss_shift d(o);
    reference_loss ref{o};
    int values = 0;
    while (d.warming_up()) {
      const double x = n(rng);
      ref.step(x);
      CHECK(observe(d, with_loss(x)).empty());
      ++values;
      CHECK(d.warming_up() == !ref.judging);
    }
    gaussian.push_back(values);
  }
  std::sort(gaussian.begin(), gaussian.end());
  CHECK(gaussian.front() >= 17);  // min_warmup residuals after the first value
  CHECK(gaussian.back() <= 101);
  CHECK(gaussian.front() < gaussian.back());  // it depends on the data, not on a count
  MESSAGE("Gaussian noise: warm-up of " << gaussian.front() << " to " << gaussian.back() << " values, median "
                                        << gaussian[gaussian.size() / 2]);
  {  // heavy tails (a value 5x the level every 20th) keep the estimate unstable: the cap, 100 residuals
    loss_shift d(o);
    int values = 0;
    while (d.warming_up()) {
      observe(d, with_loss(values % 20 == 2 ? 5.0 : 1.0));
      ++values;
    }
    CHECK(values == 101);  // the first value, then 100 residuals
  }
  {  // no alarm from the first steps of training, over seeds and noise levels
    for (std::uint64_t seed = 1; seed <= 5; ++seed)
      for (double cv : {0.02, 0.1, 0.3}) {
        const std::vector<double> v = falling_loss(seed, 60, cv, 10.0, 0.5, 20.0);  // a steep start
        CHECK(run(v).empty());
      }
  }
}

TEST_CASE("loss_shift: below, at and above the spike and extreme bounds; just below and above the rise bound") {
  auto settled = [] {
    loss_shift d;
    for (int i = 0; i < 17; ++i) observe(d, with_loss(1.0));
    REQUIRE_FALSE(d.warming_up());
    return d;
  };
  // The exact boundary: the largest loss whose residual is not above bound x spread stays quiet; the next double fires.
  auto boundary = [&](double bound) {
    const loss_shift d = settled();
    const double level = d.level(), spread = d.spread();
    double x = level + bound * spread;
    while (x - level > bound * spread) x = below(x);
    while (!(above(x) - level > bound * spread)) x = above(x);
    return x;  // r(x) <= bound x spread < r(above(x))
  };
  for (const double bound : {12.0, 100.0}) {
    const double at = boundary(bound);
    const anomaly_kind kind = bound == 12.0 ? anomaly_kind::loss_spike : anomaly_kind::loss_extreme;
    loss_shift quiet = settled(), at_bound = settled(), fires = settled(), far_below = settled();
    CHECK_FALSE(observe(far_below, with_loss(1.0 + (at - 1.0) * 0.9)).has(kind));
    CHECK_FALSE(observe(at_bound, with_loss(at)).has(kind));
    const double level = fires.level(), spread = fires.spread();
    const anomaly_report r = observe(fires, with_loss(above(at)));
    REQUIRE(r.size() == 1);
    CHECK(r[0].kind == kind);
    CHECK(r[0].threshold == level + bound * spread);
    CHECK(r[0].value == above(at));
    (void)quiet;
  }
  // Above the extreme bound: loss_extreme alone, not also loss_spike.
  loss_shift d = settled();
  CHECK(observe(d, with_loss(1e6)).count(anomaly_kind::loss_spike) == 0);
  // The rise bound, on a ramp, against the model: every step before the
  // onset has the recent level at or below running + 2.5 x noise, the onset
  // above it, by the model's own figures.
  std::vector<double> v = falling_loss(11, 400, 0.05, 1.0, 1.0, 1.0);
  for (std::size_t i = 200; i < v.size(); ++i) v[i] *= std::exp(0.02 * static_cast<double>(i - 200));
  loss_shift ramp;
  reference_loss ref{ramp.options()};
  std::optional<std::size_t> onset;
  for (std::size_t i = 0; i < v.size() && !onset; ++i) {
    ref.step(v[i]);
    const anomaly_report r = observe(ramp, with_loss(v[i]));
    const double gap = ref.recent - ref.running, bound = 2.5 * ref.noise;
    if (r.has(anomaly_kind::loss_divergence)) {
      onset = i;
      CHECK(gap > bound);
      CHECK(gap < bound * 1.1);  // found as it crossed, not long after
    } else if (ref.judging && ref.absorbed.size() >= 100) {
      CHECK(gap <= bound);
    }
  }
  REQUIRE(onset);
  CHECK(*onset > 200);
}

TEST_CASE("loss_shift: NaN and Inf are skipped without touching the state; an absent loss is skipped") {
  loss_shift d;
  for (const double x : falling_loss(2, 150, 0.05)) observe(d, with_loss(x));
  const auto before = d.state();
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()})
    CHECK(observe(d, with_loss(bad)).empty());
  CHECK(observe(d, signals{}).empty());
  CHECK(d.state() == before);
  // and in the warm-up, before any value
  loss_shift fresh;
  CHECK(observe(fresh, with_loss(std::numeric_limits<double>::quiet_NaN())).empty());
  CHECK(fresh.state() == loss_shift{}.state());
  // a finite loss too large for the warm-up's fourth moments is skipped, not absorbed as inf
  loss_shift young;
  observe(young, with_loss(1.0));
  observe(young, with_loss(1e200));
  CHECK(young.state().square.steps == 0);
}

TEST_CASE("loss_shift: a loss that is negative or crosses 0 (PPO) is judged on its raw value") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(-0.05, 0.02);
  std::vector<double> v;
  for (int i = 0; i < 600; ++i) v.push_back(n(rng));
  onsets quiet = run(v);
  CHECK(quiet.empty());
  v[400] = 0.5;  // 27 spreads above a level of -0.05
  const onsets o = run(v);
  CHECK(o.spike == std::vector<std::size_t>{400});
  CHECK(o.extreme.empty());
}

TEST_CASE("loss_shift: a falling training loss with minibatch noise raises nothing (5 seeds)") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed)
    for (double cv : {0.01, 0.05, 0.1, 0.2}) {
      INFO("seed " << seed << ", cv " << cv);
      CHECK(run(falling_loss(seed, 3000, cv)).empty());
      CHECK(run(falling_loss(seed, 3000, cv, 10.0, 0.01, 100.0)).empty());  // a steep fall to near 0
    }
}

TEST_CASE("loss_shift: a loss x1e6 for one step is loss_extreme (critical) at that step; a x3 spike is loss_spike") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    INFO("seed " << seed);
    for (const std::size_t at : {std::size_t{150}, std::size_t{300}, std::size_t{1500}}) {
      std::vector<double> v = falling_loss(seed, 1600, 0.05);
      v[at] *= 1e6;
      const onsets o = run(v);
      CHECK(o.extreme == std::vector<std::size_t>{at});
      CHECK(o.spike.empty());
      CHECK(o.divergence.empty());
      v = falling_loss(seed, 1600, 0.05);
      v[at] *= 3.0;
      const onsets t = run(v);
      CHECK(t.spike == std::vector<std::size_t>{at});
      CHECK(t.extreme.empty());
    }
  }
}

TEST_CASE("loss_shift: a slow divergence (the learning rate ramping up) is found within tens of steps") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed)
    for (double rate : {0.02, 0.05}) {
      INFO("seed " << seed << ", loss +" << rate * 100 << " % per step");
      std::vector<double> v = falling_loss(seed, 1000, 0.05, 1.0, 0.5, 100.0);
      for (std::size_t i = 800; i < v.size(); ++i) v[i] *= std::exp(rate * static_cast<double>(i - 800));
      const onsets o = run(v);
      REQUIRE(o.divergence.size() >= 1);
      CHECK(o.divergence[0] > 800);
      CHECK(o.divergence[0] < (rate < 0.03 ? 850u : 830u));
    }
}

TEST_CASE("loss_shift: PPO losses stay quiet (the example trainer's run, and PPO-like sequences over 5 seeds)") {
  CHECK(golden_ppo_loss.size() == 480);
  const onsets g = run(golden_ppo_loss);
  CHECK(g.empty());
  CHECK(std::count_if(golden_ppo_loss.begin(), golden_ppo_loss.end(), [](double x) { return x < 0.0; }) > 0);
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    INFO("seed " << seed);
    const std::vector<double> v = ppo_like_loss(seed, 200);
    CHECK(std::count_if(v.begin(), v.end(), [](double x) { return x < 0.0; }) > 0);
    CHECK(run(v).empty());
  }
}

TEST_CASE("loss_shift: state round-trips; bad states are refused and change nothing") {
  loss_shift d;
  const std::vector<double> v = falling_loss(4, 300, 0.05);
  for (double x : v) observe(d, with_loss(x));
  loss_shift e;
  e.load(d.state());
  CHECK(e.state() == d.state());
  for (double x : {0.3, 5.0, 1e6, 0.2, 0.25})
    CHECK(observe(d, with_loss(x)) == observe(e, with_loss(x)));
  CHECK(e.state() == d.state());
  std::vector<std::string> names;
  auto st = d.state();
  st.visit([&](const char* n, auto&) { names.emplace_back(n); });
  CHECK(std::find(names.begin(), names.end(), "square.mean_raw") != names.end());
  CHECK(std::find(names.begin(), names.end(), "divergence.active") != names.end());
  CHECK(std::find(names.begin(), names.end(), "judging") != names.end());
  const auto before = e.state();
  auto bad = d.state();
  bad.judging = 2;
  CHECK_THROWS_WITH_AS(e.load(bad), doctest::Contains("judging"), std::invalid_argument);
  CHECK(e.state() == before);
  bad = d.state();
  bad.residual.mean_raw = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(e.load(bad), doctest::Contains("mean_raw"), std::invalid_argument);
  CHECK(e.state() == before);
  bad = d.state();
  bad.slow.steps += 1;
  CHECK_THROWS_WITH_AS(e.load(bad), doctest::Contains("slow.steps"), std::invalid_argument);
  CHECK(e.state() == before);
  bad = d.state();
  bad.extreme.active = 2;
  CHECK_THROWS_WITH_AS(e.load(bad), doctest::Contains("active"), std::invalid_argument);
  CHECK(e.state() == before);
}

TEST_CASE("loss_shift: each bad option is refused, naming it and its valid range") {
  struct bad {
    const char* name;
    void (*set)(loss_shift_options&);
    const char* valid;
  };
  const bad cases[] = {
      {"fast_momentum", [](loss_shift_options& o) { o.fast_momentum = 1.0; }, "(0, 1)"},
      {"fast_momentum", [](loss_shift_options& o) { o.fast_momentum = 0.0; }, "(0, 1)"},
      {"slow_momentum", [](loss_shift_options& o) { o.slow_momentum = 0.9; }, "[fast_momentum, 1)"},
      {"slow_momentum", [](loss_shift_options& o) { o.slow_momentum = 1.0; }, "[fast_momentum, 1)"},
      {"spike", [](loss_shift_options& o) { o.spike = 0.0; }, "(0, inf)"},
      {"spike", [](loss_shift_options& o) { o.spike = std::numeric_limits<double>::infinity(); }, "(0, inf)"},
      {"extreme", [](loss_shift_options& o) { o.extreme = 11.0; }, "[spike, inf]"},
      {"extreme", [](loss_shift_options& o) { o.extreme = std::numeric_limits<double>::quiet_NaN(); }, "[spike, inf]"},
      {"rise", [](loss_shift_options& o) { o.rise = 0.0; }, "(0, inf]"},
      {"clip", [](loss_shift_options& o) { o.clip = -1.0; }, "(0, inf)"},
      {"floor", [](loss_shift_options& o) { o.floor = -0.01; }, "[0, inf)"},
      {"floor_abs", [](loss_shift_options& o) { o.floor_abs = 0.0; }, "(0, inf)"},
      {"settle", [](loss_shift_options& o) { o.settle = 0.0; }, "(0, inf)"},
      {"min_warmup", [](loss_shift_options& o) { o.min_warmup = 1; }, ">= 2"},
      {"reporting.clear_after", [](loss_shift_options& o) { o.how.clear_after = 0; }, ">= 1"},
  };
  for (const bad& c : cases) {
    INFO(c.name);
    loss_shift_options o;
    c.set(o);
    const std::string want = std::string("simic::loss_shift: ") + c.name + " = ";
    CHECK_THROWS_WITH_AS(loss_shift{o}, doctest::Contains(want.c_str()), std::invalid_argument);
    CHECK_THROWS_WITH_AS(loss_shift{o}, doctest::Contains((std::string("valid: ") + c.valid).c_str()),
                         std::invalid_argument);
  }
  loss_shift_options off;
  off.extreme = std::numeric_limits<double>::infinity();  // extreme off: every spike a warning
  off.rise = std::numeric_limits<double>::infinity();     // the divergence rule off
  CHECK_NOTHROW(loss_shift{off});
}

TEST_CASE("the response skips a step on a kind it names (skip_on), and only then; stops after max_consecutive") {
  std::vector<double> v = falling_loss(9, 400, 0.05);
  v[300] *= 1e6;
  v[350] *= 3.0;
  {  // the default policy (the guard): the x1e6 step, critical, is skipped; the x3 spike, a warning, proceeds
    monitor<loss_shift> m;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const check_result& r = m.check(with_loss(v[i]));
      INFO("step " << i);
      CHECK((r.resp.act == action::skip_step) == (i == 300));
      if (i == 300) CHECK(r.report.has(anomaly_kind::loss_extreme));
      if (i == 350) CHECK(r.report.has(anomaly_kind::loss_spike));
    }
    CHECK(m.responses().total_skips == 1);
  }
  {  // the policy before the guard: a loss spike is reported, the step proceeds
    monitor<loss_shift> m{config{}, skip_nonfinite_then_stop()};
    for (std::size_t i = 0; i < v.size(); ++i) {
      const check_result& r = m.check(with_loss(v[i]));
      CHECK(r.resp.act == action::proceed);
      if (i == 300) CHECK(r.report.has(anomaly_kind::loss_extreme));
    }
    CHECK(m.responses().total_skips == 0);
  }
  {  // skip_on loss_extreme: the x1e6 step is skipped, the x3 one (a warning, not named) proceeds
    monitor<loss_shift> m{config{}, skip_nonfinite_then_stop(5, severity::critical, {anomaly_kind::loss_extreme})};
    CHECK(m.response_rules().rules().skip_on == std::vector<anomaly_kind>{anomaly_kind::loss_extreme});
    for (std::size_t i = 0; i < v.size(); ++i) {
      const check_result& r = m.check(with_loss(v[i]));
      INFO("step " << i);
      CHECK((r.resp.act == action::skip_step) == (i == 300));
      if (i == 300) {
        CHECK(r.resp.reason.rfind("skipping the optimizer step: loss_extreme (loss ", 0) == 0);
        CHECK(r.resp.reason.find(r.report[0].detail) != std::string::npos);
      }
      if (i == 350) CHECK(r.report.has(anomaly_kind::loss_spike));
    }
    CHECK(m.responses().total_skips == 1);
  }
  {  // named kinds skip whatever their severity; a run of them stops
    const skip_then_stop p = skip_nonfinite_then_stop(2, severity::critical, {anomaly_kind::loss_spike, anomaly_kind::loss_extreme});
    response_state st;
    anomaly_report spike;
    spike.add(anomaly_kind::loss_spike, "loss 3 > 1.2", {3.0, 1.2, 1.0});
    response out;
    p.decide(signals{}, spike, st, out);
    CHECK(out.act == action::skip_step);
    out = {};
    p.decide(signals{}, spike, st, out);
    CHECK(out.act == action::stop);
    CHECK(out.reason.find("last cause: loss_spike (loss 3 > 1.2)") != std::string::npos);
    out = {};
    p.decide(signals{}, anomaly_report{}, st, out);
    CHECK(out.act == action::proceed);
    CHECK(st.consecutive_skips == 0);
    CHECK(st.total_skips == 2);
  }
}

// What each rule sees and misses on the same sequences: metaseq's absolute
// bound (4.0, above the first losses so that it does not fire at the start)
// and its ratio to a short EW mean (2.0), llm-foundry's five outliers in a
// row over 2x a 100-loss window mean, and loss_shift.
TEST_CASE("loss_shift against metaseq's and llm-foundry's rules") {
  struct seen {
    std::vector<std::size_t> metaseq_max, metaseq_ratio, foundry, simic;
  };
  auto compare = [](const std::vector<double>& v) {
    seen s;
    metaseq_rules m{4.0, 2.0};
    llm_foundry_rule f;
    loss_shift d;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (m.above_max(v[i])) s.metaseq_max.push_back(i);
      if (m.ratio_spike(v[i])) s.metaseq_ratio.push_back(i);
      if (f.step(v[i])) s.foundry.push_back(i);
      if (!observe(d, with_loss(v[i])).empty()) s.simic.push_back(i);
    }
    return s;
  };
  {  // a falling loss with one x3 spike at step 800 (the loss there is about 0.27)
    std::vector<double> v = falling_loss(1, 1200, 0.05);
    v[800] *= 3.0;
    const seen s = compare(v);
    CHECK(s.simic == std::vector<std::size_t>{800});
    CHECK(s.metaseq_ratio == std::vector<std::size_t>{800});  // a ratio above 2: seen
    CHECK(s.metaseq_max.empty());                              // 0.8 is far under any fixed bound above 2.3
    CHECK(s.foundry.empty());                                  // one outlier, not five in a row
  }
  {  // one step x1e6: every rule but llm-foundry's sees it
    std::vector<double> v = falling_loss(2, 1200, 0.05);
    v[800] *= 1e6;
    const seen s = compare(v);
    CHECK(s.simic == std::vector<std::size_t>{800});
    CHECK(s.metaseq_ratio == std::vector<std::size_t>{800});
    CHECK(s.metaseq_max == std::vector<std::size_t>{800});
    CHECK(s.foundry.empty());
  }
  {  // a slow ramp from a plateau of 0.5: +2 % per step from step 800
    std::vector<double> v = falling_loss(3, 1200, 0.05, 1.0, 0.5, 100.0);
    for (std::size_t i = 800; i < v.size(); ++i) v[i] *= std::exp(0.02 * static_cast<double>(i - 800));
    const seen s = compare(v);
    REQUIRE_FALSE(s.simic.empty());
    REQUIRE_FALSE(s.foundry.empty());
    REQUIRE_FALSE(s.metaseq_max.empty());
    CHECK(s.metaseq_ratio.empty());  // the short EW mean follows the ramp: the ratio stays near e^(0.02 x 4)
    CHECK(s.simic[0] > 800);
    CHECK(s.simic[0] < s.foundry[0]);      // llm-foundry waits for 2x the window's mean, then 5 more
    CHECK(s.simic[0] < s.metaseq_max[0]);  // the bound 4.0: 104 steps of the ramp
    MESSAGE("ramp found after " << s.simic[0] - 800 << " steps by loss_shift, " << s.foundry[0] - 800
                                << " by llm-foundry, " << s.metaseq_max[0] - 800 << " by metaseq's bound");
  }
  {  // a PPO-like loss whose mean is negative (a policy loss with an entropy bonus)
    std::mt19937_64 rng(8);
    std::normal_distribution<double> n(-0.05, 0.02);
    std::vector<double> v;
    for (int i = 0; i < 1200; ++i) v.push_back(n(rng));
    const seen s = compare(v);
    CHECK(s.simic.empty());
    CHECK(s.metaseq_max.empty());
    CHECK_FALSE(s.foundry.empty());        // 2 x a negative mean: nearly every loss is an "outlier"
    CHECK_FALSE(s.metaseq_ratio.empty());  // a ratio of two negative numbers: 2 x is the loss halving
  }
  {  // the example trainer's PPO loss: only loss_shift and the absolute bound stay quiet
    const seen s = compare(golden_ppo_loss);
    CHECK(s.simic.empty());
    CHECK(s.metaseq_max.empty());
    CHECK_FALSE(s.metaseq_ratio.empty());  // a minibatch 2x the previous ones' level is common there
    MESSAGE("golden PPO run: metaseq's ratio rule fires " << s.metaseq_ratio.size() << " times, llm-foundry's "
                                                          << s.foundry.size());
  }
}
