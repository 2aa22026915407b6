// Detects the CPU once and keeps the kernel table for the chosen ISA.
#include "simkernel/dispatch.hpp"

#include <algorithm>
#include <atomic>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define SIMKERNEL_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define SIMKERNEL_ARM64 1
#endif

namespace simkernel {
namespace {

struct Features {
  bool avx2 = false;     // with FMA, F16C, POPCNT and OS support for YMM state
  bool avx512 = false;   // F, BW, VL, DQ, VNNI, VPOPCNTDQ and OS support for ZMM state
  bool neon = false;
  bool neon_dotprod = false;  // NEON with the Armv8.2 sdot / udot instructions
  std::vector<std::string> names;  // every feature seen, for capabilities()
};

#if SIMKERNEL_X86
std::uint64_t read_xcr0() {
  std::uint32_t eax, edx;
  // xgetbv by opcode, so that this baseline file needs no -mxsave.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (std::uint64_t{edx} << 32) | eax;
}

Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool fma = c & (1u << 12), popcnt = c & (1u << 23);
  bool osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  unsigned b7 = 0, c7 = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    b7 = b;
    c7 = c;
  }
  // The CPU may support AVX while the OS does not save YMM/ZMM registers:
  // XCR0 says what the OS enabled.
  std::uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  bool ymm = (xcr0 & 0x6) == 0x6;
  bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;
  auto add = [&](bool present, const char* name) {
    if (present) f.names.emplace_back(name);
  };
  add(popcnt, "popcnt");
  add(avx && ymm, "avx");
  add(fma && ymm, "fma");
  add(f16c && ymm, "f16c");
  add((b7 & (1u << 5)) && ymm, "avx2");
  bool avx512f = (b7 & (1u << 16)) && zmm, avx512dq = (b7 & (1u << 17)) && zmm;
  bool avx512bw = (b7 & (1u << 30)) && zmm, avx512vl = (b7 & (1u << 31)) && zmm;
  add(avx512f, "avx512f");
  add(avx512dq, "avx512dq");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  bool vnni = (c7 & (1u << 11)) && zmm, vpopcntdq = (c7 & (1u << 14)) && zmm;
  add(vnni, "avx512_vnni");
  add(vpopcntdq, "avx512_vpopcntdq");
  f.avx2 = avx && fma && f16c && popcnt && ymm && (b7 & (1u << 5));
  // The Ice Lake / Zen 4 level: older AVX-512 CPUs (Skylake-X) use AVX2.
  f.avx512 = f.avx2 && avx512f && avx512dq && avx512bw && avx512vl && vnni && vpopcntdq;
  return f;
}
#elif SIMKERNEL_ARM64
Features detect() {
  Features f;
  unsigned long hwcap = getauxval(AT_HWCAP);
  f.neon = hwcap & (1ul << 1);          // HWCAP_ASIMD
  if (f.neon) f.names.emplace_back("neon");
  if (hwcap & (1ul << 10)) f.names.emplace_back("asimdhp");  // HWCAP_ASIMDHP
  f.neon_dotprod = f.neon && (hwcap & (1ul << 20));          // HWCAP_ASIMDDP
  if (f.neon_dotprod) f.names.emplace_back("asimddp");
  return f;
}
#else
Features detect() { return {}; }
#endif

const Features& features() {
  static const Features f = detect();
  return f;
}

const Kernels& table(Isa isa) {
  static const Kernels scalar_table = scalar::kernels();
#if SIMKERNEL_HAVE_AVX2
  static const Kernels avx2_table = avx2::kernels();
  if (isa == Isa::avx2) return avx2_table;
#endif
#if SIMKERNEL_HAVE_AVX512
  static const Kernels avx512_table = avx512::kernels();
  if (isa == Isa::avx512) return avx512_table;
#endif
#if SIMKERNEL_HAVE_NEON
  static const Kernels neon_table =
      features().neon_dotprod ? neon_dotprod::kernels() : neon::kernels();
  if (isa == Isa::neon) return neon_table;
#endif
  (void)isa;
  return scalar_table;
}

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return features().avx2;
    case Isa::avx512: return features().avx512;
    case Isa::neon: return features().neon;
  }
  return false;
}

// Starts at the best verified ISA; select_isa may change it later.
std::atomic<Isa>& active() {
  static std::atomic<Isa> isa{verified_isas().back()};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "unknown";
}

bool parse_isa(const std::string& name, Isa* isa) {
  for (Isa candidate : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon}) {
    if (name == isa_name(candidate)) {
      *isa = candidate;
      return true;
    }
  }
  return false;
}

std::vector<std::string> cpu_features() { return features().names; }

std::vector<Isa> compiled_isas() {
  std::vector<Isa> isas{Isa::scalar};
#if SIMKERNEL_HAVE_AVX2
  isas.push_back(Isa::avx2);
#endif
#if SIMKERNEL_HAVE_AVX512
  isas.push_back(Isa::avx512);
#endif
#if SIMKERNEL_HAVE_NEON
  isas.push_back(Isa::neon);
#endif
  return isas;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : compiled_isas()) {
    if (cpu_has(isa)) isas.push_back(isa);
  }
  return isas;
}

std::vector<Isa> verified_isas() {
  // AVX-512 is left out until its kernels have passed on AVX-512 hardware in
  // CI (DESIGN section 3); it runs only when SIMKERNEL_ISA asks for it.
  std::vector<Isa> isas;
  for (Isa isa : supported_isas()) {
    if (isa != Isa::avx512) isas.push_back(isa);
  }
  return isas;
}

Isa active_isa() { return active().load(); }

const Kernels& active_kernels() { return table(active_isa()); }

bool select_isa(Isa isa) {
  auto supported = supported_isas();
  if (std::find(supported.begin(), supported.end(), isa) == supported.end()) {
    return false;
  }
  active().store(isa);
  return true;
}

}  // namespace simkernel
