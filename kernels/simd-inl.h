// Per-target helpers shared by the element-wise, normalisation and pooling kernels: loads
// and stores of a partial vector that never touch memory past the valid lanes.
#if defined(ODYSSEY_KERNELS_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ODYSSEY_KERNELS_SIMD_INL_H_
#undef ODYSSEY_KERNELS_SIMD_INL_H_
#else
#define ODYSSEY_KERNELS_SIMD_INL_H_
#endif

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// The first `count` lanes from p, zero above; reads nothing past p + count (Highway's
/// MaskedLoad reads the whole vector on EMU128).
template <class D, class T = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> load_n(D d, const T* HWY_RESTRICT p, std::size_t count) {
  if (count >= hn::Lanes(d)) return hn::LoadU(d, p);
  HWY_ALIGN T buf[hn::MaxLanes(D())] = {};
  for (std::size_t j = 0; j < count; ++j) buf[j] = p[j];
  return hn::Load(d, buf);
}

/// Writes the first `count` lanes of v to p.
template <class D, class T = hn::TFromD<D>>
HWY_INLINE void store_n(D d, hn::Vec<D> v, T* HWY_RESTRICT p, std::size_t count) {
  if (count >= hn::Lanes(d)) return hn::StoreU(v, d, p);
  HWY_ALIGN T buf[hn::MaxLanes(D())];
  hn::Store(v, d, buf);
  for (std::size_t j = 0; j < count; ++j) p[j] = buf[j];
}

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // ODYSSEY_KERNELS_SIMD_INL_H_
