// odyssey.data's BatchLoader (part of data_test): every sample once per epoch, the partial
// last batch, seeded order, bitwise resumption, normalisation and channels-last layout,
// crop + flip against a plain reference, buffer reuse and worker errors.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>
import odyssey;

using namespace odyssey;

namespace {

/// `count` random images of C x H x W; image i has the value i at channel 0, pixel (0, 0),
/// so a batch's samples can be identified when augmentation is off.
Dataset synthetic(std::size_t count, std::size_t C, std::size_t H, std::size_t W, std::uint64_t seed = 1) {
  Dataset d;
  d.count = count;
  d.channels = C;
  d.height = H;
  d.width = W;
  Rng rng(seed);
  for (std::size_t i = 0; i < count * C * H * W; ++i) d.pixels.push_back(static_cast<std::uint8_t>(rng.below(256)));
  for (std::size_t i = 0; i < count; ++i) {
    d.pixels[i * C * H * W] = static_cast<std::uint8_t>(i);
    d.labels.push_back(static_cast<std::uint8_t>(i % 10));
  }
  d.class_names.assign(10, "class");
  d.mean = {0.4914f, 0.4822f, 0.4465f};
  d.stddev = {0.2470f, 0.2435f, 0.2616f};
  d.name = "synthetic";
  return d;
}

/// The image a normalised channel-0 value came from (the inverse of normalise on 0..255).
std::size_t identify(const Dataset& d, float v) {
  for (int b = 0; b < 256; ++b)
    if (normalise(static_cast<std::uint8_t>(b), d.mean[0], d.stddev[0]) == v) return static_cast<std::size_t>(b);
  return 999;
}

/// Every batch of one epoch, copied.
std::vector<Batch> epoch(BatchLoader& loader, std::size_t e, std::size_t first = 0) {
  loader.start_epoch(e, first);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

bool bitwise_equal(const Batch& a, const Batch& b) {
  return a.size == b.size && a.labels == b.labels && a.pixels.size() == b.pixels.size() &&
         std::memcmp(a.pixels.data(), b.pixels.data(), a.pixels.size() * sizeof(float)) == 0;
}

std::vector<std::size_t> ids(const Dataset& d, const std::vector<Batch>& batches) {
  std::vector<std::size_t> out;
  for (const Batch& b : batches)
    for (std::size_t i = 0; i < b.size; ++i) out.push_back(identify(d, b.pixels[i * d.sample_size()]));
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(loader_visits_every_sample_once_with_a_partial_last_batch) {
  const Dataset d = synthetic(37, 3, 8, 8);
  BatchLoader loader(d, {.batch_size = 8, .shuffle = true, .augment = false, .seed = 7});
  BOOST_TEST(loader.batches_per_epoch() == 5u);
  for (std::size_t e = 0; e < 3; ++e) {
    const std::vector<Batch> batches = epoch(loader, e);
    BOOST_TEST_REQUIRE(batches.size() == 5u);
    for (std::size_t b = 0; b < 5; ++b) {
      const std::size_t n = b < 4 ? 8 : 5;
      BOOST_TEST(batches[b].size == n);
      BOOST_TEST(batches[b].pixels.size() == n * 3 * 8 * 8);
      BOOST_TEST(batches[b].labels.size() == n);
    }
    std::vector<std::size_t> seen = ids(d, batches);
    std::size_t k = 0;
    for (const Batch& b : batches)
      for (std::size_t i = 0; i < b.size; ++i, ++k) BOOST_TEST(b.labels[i] == static_cast<int>(seen[k] % 10));
    std::sort(seen.begin(), seen.end());
    std::vector<std::size_t> all(37);
    for (std::size_t i = 0; i < 37; ++i) all[i] = i;
    BOOST_TEST(seen == all, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(loader_order_is_a_function_of_seed_and_epoch) {
  const Dataset d = synthetic(40, 3, 8, 8);
  BatchLoader a(d, {.batch_size = 6, .shuffle = true, .augment = true, .seed = 11});
  BatchLoader b(d, {.batch_size = 6, .shuffle = true, .augment = true, .seed = 11});
  BatchLoader c(d, {.batch_size = 6, .shuffle = true, .augment = true, .seed = 12});
  BatchLoader plain(d, {.batch_size = 6, .shuffle = false, .augment = false, .seed = 11});
  const auto a0 = epoch(a, 0), b0 = epoch(b, 0), c0 = epoch(c, 0), a1 = epoch(a, 1);
  BOOST_TEST_REQUIRE(a0.size() == b0.size());
  for (std::size_t i = 0; i < a0.size(); ++i) BOOST_TEST(bitwise_equal(a0[i], b0[i]), "batch " << i);

  // Without augmentation the samples can be identified: compare orders.
  BatchLoader a_ids(d, {.batch_size = 6, .shuffle = true, .augment = false, .seed = 11});
  BatchLoader c_ids(d, {.batch_size = 6, .shuffle = true, .augment = false, .seed = 12});
  const auto order_a0 = ids(d, epoch(a_ids, 0)), order_a1 = ids(d, epoch(a_ids, 1));
  const auto order_c0 = ids(d, epoch(c_ids, 0));
  BOOST_TEST(order_a0 != order_c0);
  BOOST_TEST(order_a0 != order_a1);
  std::vector<std::size_t> natural(40);
  for (std::size_t i = 0; i < 40; ++i) natural[i] = i;
  BOOST_TEST(ids(d, epoch(plain, 0)) == natural, boost::test_tools::per_element());
  BOOST_TEST(ids(d, epoch(plain, 5)) == natural, boost::test_tools::per_element());
  // The order equals epoch_order's, which the trainer may use to report progress.
  std::vector<std::size_t> expected;
  epoch_order(11, 1, 40, true, expected);
  BOOST_TEST(order_a1 == expected, boost::test_tools::per_element());
  // With augmentation too, another seed or another epoch gives other batches.
  BOOST_TEST(!bitwise_equal(a0[0], c0[0]));
  BOOST_TEST(!bitwise_equal(a0[0], a1[0]));
}

BOOST_AUTO_TEST_CASE(resuming_mid_epoch_gives_the_same_batches_bitwise) {
  const Dataset d = synthetic(50, 3, 8, 8);
  const LoaderOptions opt{.batch_size = 7, .shuffle = true, .augment = true, .seed = 2024};
  BatchLoader uninterrupted(d, opt);
  (void)epoch(uninterrupted, 0);
  const auto full = epoch(uninterrupted, 1);
  BOOST_TEST_REQUIRE(full.size() == 8u);

  BatchLoader resumed(d, opt);  // a new process: no state but (seed, epoch, batch)
  const auto tail = epoch(resumed, 1, 3);
  BOOST_TEST_REQUIRE(tail.size() == 5u);
  for (std::size_t i = 0; i < tail.size(); ++i) BOOST_TEST(bitwise_equal(tail[i], full[i + 3]), "batch " << i + 3);

  // Restarting an epoch part way through drops what was prepared.
  BatchLoader restarted(d, opt);
  restarted.start_epoch(1);
  Batch b;
  BOOST_TEST(restarted.next(b));
  restarted.start_epoch(1, 6);
  BOOST_TEST(restarted.next(b));
  BOOST_TEST(bitwise_equal(b, full[6]));
  BOOST_TEST(restarted.next(b));
  BOOST_TEST(!restarted.next(b));
  BOOST_TEST(!restarted.next(b));
  restarted.start_epoch(2, restarted.batches_per_epoch());  // nothing left: allowed
  BOOST_TEST(!restarted.next(b));
  BOOST_CHECK_THROW(restarted.start_epoch(2, restarted.batches_per_epoch() + 1), ValueError);
}

BOOST_AUTO_TEST_CASE(batches_are_normalised_channels_last) {
  Dataset d = synthetic(3, 3, 2, 3);
  d.pixels[1 * 18 + 1 * 6 + 1 * 3 + 2] = 128;  // image 1, channel 1, (y, x) = (1, 2)
  BatchLoader loader(d, {.batch_size = 4, .shuffle = false, .augment = false, .seed = 0});
  const auto batches = epoch(loader, 0);
  BOOST_TEST_REQUIRE(batches.size() == 1u);
  const Batch& b = batches[0];
  BOOST_TEST(b.size == 3u);
  // Channels-last: sample n's (y, x, c) is at n*H*W*C + (y*W + x)*C + c.
  const float v = b.pixels[1 * 18 + (1 * 3 + 2) * 3 + 1];
  BOOST_TEST(v == (128.0f / 255.0f - 0.4822f) / 0.2435f);
  BOOST_TEST(std::abs(v - (128.0 / 255.0 - 0.4822) / 0.2435) < 1e-6);
  bool all = true;
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 2; ++y)
        for (std::size_t x = 0; x < 3; ++x)
          all = all && b.pixels[n * 18 + (y * 3 + x) * 3 + c] ==
                           normalise(d.pixels[((n * 3 + c) * 2 + y) * 3 + x], d.mean[c], d.stddev[c]);
  BOOST_TEST(all);
  BOOST_TEST((b.labels == std::vector<std::int32_t>{0, 1, 2}));
}

BOOST_AUTO_TEST_CASE(crop_and_flip_match_a_reference) {
  const std::size_t C = 3, H = 32, W = 32, N = 21;
  const Dataset d = synthetic(N, C, H, W, 99);
  const LoaderOptions opt{.batch_size = 5, .shuffle = true, .augment = true, .seed = 5};
  BatchLoader loader(d, opt);
  std::set<int> dxs, dys;
  std::set<bool> flips;
  bool saw_padding = false;
  for (std::size_t e = 0; e < 3; ++e) {
    const auto batches = epoch(loader, e);
    std::vector<std::size_t> order;
    epoch_order(opt.seed, e, N, true, order);
    for (std::size_t bi = 0; bi < batches.size(); ++bi)
      for (std::size_t i = 0; i < batches[bi].size; ++i) {
        const std::size_t pos = bi * opt.batch_size + i, img = order[pos];
        const AugmentParams p = augment_params(opt.seed, e, pos);
        dxs.insert(p.dx);
        dys.insert(p.dy);
        flips.insert(p.flip);
        // torchvision: pad 4 zeros each side (40x40), crop 32x32 at (top, left) = (dy+4, dx+4),
        // then mirror left-right when flipped; normalise last.
        std::vector<std::uint8_t> padded(C * 40 * 40, 0);
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t y = 0; y < H; ++y)
            for (std::size_t x = 0; x < W; ++x)
              padded[(c * 40 + y + 4) * 40 + x + 4] = d.pixels[((img * C + c) * H + y) * W + x];
        bool same = true;
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t y = 0; y < H; ++y)
            for (std::size_t x = 0; x < W; ++x) {
              const std::size_t cx = p.flip ? W - 1 - x : x;
              const std::uint8_t v = padded[(c * 40 + y + p.dy + 4) * 40 + cx + p.dx + 4];
              const float got = batches[bi].pixels[i * C * H * W + (y * W + x) * C + c];
              same = same && got == normalise(v, d.mean[c], d.stddev[c]);
            }
        BOOST_TEST(same, "epoch " << e << " position " << pos << " dx " << p.dx << " dy " << p.dy);
        BOOST_TEST(batches[bi].labels[i] == static_cast<int>(d.labels[img]));
        // A pixel of the zero padding normalises as torchvision's does: (0 - mean) / std.
        if (p.dy > 0) {
          saw_padding = true;
          BOOST_TEST(batches[bi].pixels[i * C * H * W + ((H - 1) * W) * C + 2] == (0.0f - 0.4465f) / 0.2616f);
        }
      }
  }
  BOOST_TEST(saw_padding);
  BOOST_TEST(flips.size() == 2u);
  BOOST_TEST(*dxs.begin() >= -4);
  BOOST_TEST(*dxs.rbegin() <= 4);
  BOOST_TEST(*dys.begin() >= -4);
  BOOST_TEST(*dys.rbegin() <= 4);
  BOOST_TEST(dxs.size() >= 7u);  // 63 draws from 9 values
  BOOST_TEST(dys.size() >= 7u);
}

BOOST_AUTO_TEST_CASE(translation_alternating_flip_and_erasing_follow_their_rules) {
  const std::size_t C = 1, H = 28, W = 28, N = 200;
  const Dataset d = synthetic(N, C, H, W, 7);
  LoaderOptions opt{.batch_size = 50, .shuffle = true, .augment = true, .seed = 9};
  opt.augmentation = AugmentOptions{.translate = 2, .flip = FlipMode::alternate, .erase = 0.5};
  BatchLoader loader(d, opt);
  const Normaliser norm(d);
  std::vector<int> flip_of(N * 4, -1);  // image, epoch
  std::size_t erased = 0, samples = 0, shifts = 0;
  for (std::size_t e = 0; e < 4; ++e) {
    const auto batches = epoch(loader, e);
    std::vector<std::size_t> order;
    epoch_order(opt.seed, e, N, true, order);
    for (std::size_t bi = 0; bi < batches.size(); ++bi)
      for (std::size_t i = 0; i < batches[bi].size; ++i) {
        const std::size_t pos = bi * opt.batch_size + i, img = order[pos];
        const AugmentParams p = augment_params(opt.augmentation, opt.seed, e, pos, img, H, W);
        ++samples;
        BOOST_TEST((p.dx >= -2 && p.dx <= 2 && p.dy >= -2 && p.dy <= 2));
        shifts += p.dx != 0 || p.dy != 0;
        flip_of[img * 4 + e] = p.flip;
        const float* got = batches[bi].pixels.data() + i * C * H * W;
        // The reference: the shifted, flipped image from the raw bytes, then the rectangle.
        bool same = true;
        for (std::size_t y = 0; y < H; ++y)
          for (std::size_t x = 0; x < W; ++x) {
            const long sy = long(y) + p.dy, sx = long(p.flip ? W - 1 - x : x) + p.dx;
            const bool inside = sy >= 0 && sy < long(H) && sx >= 0 && sx < long(W);
            const bool in_rect = y >= p.erase_y && y < p.erase_y + p.erase_h && x >= p.erase_x && x < p.erase_x + p.erase_w;
            const float want = in_rect ? 0.0f
                                       : norm(0, inside ? d.pixels[(img * H + std::size_t(sy)) * W + std::size_t(sx)]
                                                        : std::uint8_t{0});
            same = same && got[y * W + x] == want;
          }
        BOOST_TEST(same, "epoch " << e << " position " << pos);
        if (p.erase_h) {
          ++erased;
          // torchvision's ranges: 2% to 33% of the area (up to rounding), aspect 0.3 to 3.3.
          const double area = double(p.erase_h * p.erase_w) / double(H * W);
          const double aspect = double(p.erase_h) / double(p.erase_w);
          BOOST_TEST((area >= 0.01 && area <= 0.40), area);
          BOOST_TEST((aspect >= 0.3 / 1.5 && aspect <= 3.3 * 1.5), aspect);
          BOOST_TEST((p.erase_y + p.erase_h <= H && p.erase_x + p.erase_w <= W));
        }
      }
  }
  BOOST_TEST((erased > samples * 4 / 10 && erased < samples * 6 / 10), erased << " of " << samples);
  BOOST_TEST(shifts > samples / 2);
  // Alternating flips: each image's flip changes from every epoch to the next, and the
  // first epoch's coins are not all the same.
  std::size_t alternating = 0, first_flipped = 0;
  for (std::size_t img = 0; img < N; ++img) {
    alternating += flip_of[img * 4] != flip_of[img * 4 + 1] && flip_of[img * 4 + 1] != flip_of[img * 4 + 2] &&
                   flip_of[img * 4 + 2] != flip_of[img * 4 + 3];
    first_flipped += flip_of[img * 4] == 1;
  }
  BOOST_TEST(alternating == N);
  BOOST_TEST((first_flipped > N / 4 && first_flipped < 3 * N / 4), first_flipped);
  // No translation and no flip: the image as it is, but for the erased rectangle.
  const AugmentParams none = augment_params(AugmentOptions{0, FlipMode::none, 0}, 9, 1, 3, 5, H, W);
  BOOST_TEST((none.dx == 0 && none.dy == 0 && !none.flip && none.erase_h == 0));
  // The default options draw what the three-argument form (and earlier releases) drew.
  for (std::size_t pos = 0; pos < 20; ++pos) {
    const AugmentParams a = augment_params(AugmentOptions{}, 5, 2, pos, pos * 3, 32, 32), b = augment_params(5, 2, pos);
    BOOST_TEST((a.dx == b.dx && a.dy == b.dy && a.flip == b.flip && a.erase_h == 0));
  }
}

BOOST_AUTO_TEST_CASE(flip_horizontal_mirrors_every_sample) {
  Batch b;
  b.size = 2;
  b.channels = 3;
  b.height = 2;
  b.width = 5;  // odd: the middle column stays
  for (std::size_t i = 0; i < 2 * 2 * 5 * 3; ++i) b.pixels.push_back(float(i));
  const auto before = b.pixels;
  flip_horizontal(b);
  bool mirrored = true;
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t y = 0; y < 2; ++y)
      for (std::size_t x = 0; x < 5; ++x)
        for (std::size_t c = 0; c < 3; ++c)
          mirrored = mirrored && b.pixels[((n * 2 + y) * 5 + x) * 3 + c] == before[((n * 2 + y) * 5 + 4 - x) * 3 + c];
  BOOST_TEST(mirrored);
  flip_horizontal(b);
  BOOST_TEST((b.pixels == before));
}

BOOST_AUTO_TEST_CASE(buffers_are_reused_across_batches) {
  const Dataset d = synthetic(64, 3, 8, 8);
  BatchLoader loader(d, {.batch_size = 10, .shuffle = true, .augment = true, .seed = 3});
  Batch b;
  loader.start_epoch(0);
  while (loader.next(b)) {
  }
  std::set<const float*> buffers;
  for (std::size_t e = 1; e < 4; ++e) {
    loader.start_epoch(e);
    while (loader.next(b)) buffers.insert(b.pixels.data());
  }
  BOOST_TEST(buffers.size() <= 3u);  // the caller's batch and the worker's two slots
}

BOOST_AUTO_TEST_CASE(loader_errors) {
  Dataset d = synthetic(20, 1, 4, 4);
  d.labels[9] = 12;  // beyond the 10 classes: found by the worker as it batches image 9
  BatchLoader loader(d, {.batch_size = 4, .shuffle = false, .augment = false, .seed = 0});
  Batch b;
  BOOST_CHECK_THROW(loader.next(b), ValueError);  // before start_epoch
  loader.start_epoch(0);
  BOOST_TEST(loader.next(b));
  BOOST_TEST(loader.next(b));
  try {
    loader.next(b);
    BOOST_ERROR("no exception from the worker");
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("synthetic") != std::string::npos, msg);
    BOOST_TEST(msg.find("label 12") != std::string::npos, msg);
  }
  BOOST_CHECK_THROW(BatchLoader(d, {.batch_size = 0}), ValueError);
  Dataset broken = synthetic(5, 3, 4, 4);
  broken.pixels.pop_back();
  BOOST_CHECK_THROW(BatchLoader(broken, {}), ValueError);

  // A loader destroyed mid-epoch stops its worker (which is waiting for a free slot).
  const Dataset big = synthetic(100, 3, 8, 8);
  {
    BatchLoader early(big, {.batch_size = 4});
    early.start_epoch(0);
    BOOST_TEST(early.next(b));
  }
  {
    BatchLoader never(big, {.batch_size = 4});
    never.start_epoch(0);
  }
}
