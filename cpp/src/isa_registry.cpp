// The ISA registry: one row per ISA compiled into this binary. Adding an ISA
// is one kernel file, one simkernel_isa() line in CMakeLists.txt (its flags)
// and one row here (docs/architecture.md walks through it).
#include "simkernel/dispatch.hpp"

namespace simkernel {

const std::vector<IsaInfo>& isas() {
  // name, required CPU features, table, verified, fallback
  static const std::vector<IsaInfo> rows = {
      {"scalar", "", &scalar::kernels, true, nullptr},
#if SIMKERNEL_HAVE_AVX2
      {"avx2", "avx avx2 fma f16c popcnt", &avx2::kernels, true, "scalar"},
#endif
#if SIMKERNEL_HAVE_AVX512
      // The Ice Lake / Zen 4 level; older AVX-512 CPUs (Skylake-X) use AVX2.
      {"avx512",
       "avx avx2 fma f16c popcnt avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_vpopcntdq",
       &avx512::kernels, true, "avx2"},
#endif
#if SIMKERNEL_HAVE_NEON
      {"neon", "neon", &neon::kernels, true, "scalar"},
#endif
#if SIMKERNEL_HAVE_NEON_DOTPROD
      {"neon_dotprod", "neon asimddp", &neon_dotprod::kernels, true, "neon"},
#endif
  };
  return rows;
}

}  // namespace simkernel
