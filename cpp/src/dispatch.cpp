// Detects the CPU once and keeps the kernel table of the chosen ISA. This file
// is compiled at the baseline and calls no kernel: choosing, and building the
// complete tables, only copies function pointers out of constant data.
#include "simkernel/dispatch.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <sstream>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_AMD64))
#include <intrin.h>
#define SIMKERNEL_X86 1
#elif defined(__x86_64__)
#include <cpuid.h>
#define SIMKERNEL_X86 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#define SIMKERNEL_ARM64 1
#if defined(__linux__)
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif
#endif

namespace simkernel {
namespace {

#if SIMKERNEL_X86
// cpuid leaf `leaf`, subleaf `sub` into eax, ebx, ecx, edx; false if the CPU
// has no such leaf.
bool cpuid(unsigned leaf, unsigned sub, unsigned regs[4]) {
#if defined(_MSC_VER)
  int v[4];
  __cpuid(v, static_cast<int>(leaf & 0x80000000u));
  if (static_cast<unsigned>(v[0]) < leaf) return false;
  __cpuidex(v, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) regs[i] = static_cast<unsigned>(v[i]);
  return true;
#else
  return __get_cpuid_count(leaf, sub, &regs[0], &regs[1], &regs[2], &regs[3]) != 0;
#endif
}

std::uint64_t read_xcr0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  std::uint32_t eax, edx;
  // xgetbv by opcode, so that this baseline file needs no -mxsave.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (std::uint64_t{edx} << 32) | eax;
#endif
}

std::vector<std::string> detect() {
  std::vector<std::string> names;
  unsigned r1[4] = {}, r7[4] = {};
  if (!cpuid(1, 0, r1)) return names;
  cpuid(7, 0, r7);
  auto bit = [](unsigned reg, int b) { return ((reg >> b) & 1u) != 0; };
  // The CPU may support AVX while the OS does not save YMM / ZMM registers:
  // XCR0 says what the OS enabled, and a feature is reported only with it.
  std::uint64_t xcr0 = bit(r1[2], 27) ? read_xcr0() : 0;
  bool ymm = (xcr0 & 0x6) == 0x6;
  bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;
  auto add = [&](bool present, const char* name) {
    if (present) names.emplace_back(name);
  };
  add(bit(r1[2], 23), "popcnt");
  add(bit(r1[2], 28) && ymm, "avx");
  add(bit(r1[2], 12) && ymm, "fma");
  add(bit(r1[2], 29) && ymm, "f16c");
  add(bit(r7[1], 5) && ymm, "avx2");
  add(bit(r7[1], 16) && zmm, "avx512f");
  add(bit(r7[1], 17) && zmm, "avx512dq");
  add(bit(r7[1], 30) && zmm, "avx512bw");
  add(bit(r7[1], 31) && zmm, "avx512vl");
  add(bit(r7[2], 11) && zmm, "avx512_vnni");
  add(bit(r7[2], 14) && zmm, "avx512_vpopcntdq");
  return names;
}
#elif SIMKERNEL_ARM64
std::vector<std::string> detect() {
  // Advanced SIMD is part of every AArch64 CPU that runs a general-purpose OS.
  std::vector<std::string> names{"neon"};
#if defined(__linux__)
  unsigned long hwcap = getauxval(AT_HWCAP);
  if (hwcap & (1ul << 10)) names.emplace_back("asimdhp");  // HWCAP_ASIMDHP
  if (hwcap & (1ul << 20)) names.emplace_back("asimddp");  // HWCAP_ASIMDDP
#elif defined(__APPLE__)
  auto has = [](const char* key) {
    int value = 0;
    std::size_t size = sizeof value;
    return sysctlbyname(key, &value, &size, nullptr, 0) == 0 && value != 0;
  };
  if (has("hw.optional.arm.FEAT_FP16")) names.emplace_back("asimdhp");
  if (has("hw.optional.arm.FEAT_DotProd")) names.emplace_back("asimddp");
#endif
  return names;
}
#else
std::vector<std::string> detect() { return {}; }
#endif

const std::vector<std::string>& features() {
  static const std::vector<std::string> names = detect();
  return names;
}

std::size_t index_of(const IsaInfo& isa) {
  return static_cast<std::size_t>(&isa - isas().data());
}

// Member by member: every tile kernel and the stream probe.
constexpr TileKernel Kernels::*kTileKernels[] = {
    &Kernels::dot_f32,   &Kernels::dot_f16, &Kernels::dot_bf16,       &Kernels::dot_i8f,
    &Kernels::dot_bitsf, &Kernels::dot_i8,  &Kernels::sqeuclidean_i8, &Kernels::hamming};

// Every row's complete table, each gap taken from the (already complete)
// table of its fallback, which comes earlier in the registry.
std::vector<Kernels> complete_tables() {
  std::vector<Kernels> tables;
  for (const IsaInfo& isa : isas()) {
    Kernels table = *isa.kernels;
    const IsaInfo* fallback = isa.fallback ? find_isa(isa.fallback) : nullptr;
    if (fallback != nullptr && index_of(*fallback) < tables.size()) {
      const Kernels& from = tables[index_of(*fallback)];
      for (TileKernel Kernels::*k : kTileKernels) {
        if (table.*k == nullptr) table.*k = from.*k;
      }
      if (table.stream_sum == nullptr) table.stream_sum = from.stream_sum;
      if (table.fma_chains == nullptr) table.fma_chains = from.fma_chains;
      if (table.int8_chains == nullptr) table.int8_chains = from.int8_chains;
      if (table.batch_f32 == nullptr) {
        // with the packing it reads and the widening that feeds it
        table.batch_f32 = from.batch_f32;
        table.micro_batch_f32 = from.micro_batch_f32;
        table.batch_group = from.batch_group;
        table.micro_batch_group = from.micro_batch_group;
        table.batch_panel = from.batch_panel;
        table.pack_panels = from.pack_panels;
        table.widen_f16 = from.widen_f16;
        table.widen_bf16 = from.widen_bf16;
        table.widen_i8 = from.widen_i8;
        table.widen_bits = from.widen_bits;
      }
      if (table.batch_dot_i8 == nullptr) {
        table.batch_dot_i8 = from.batch_dot_i8;
        table.micro_batch_dot_i8 = from.micro_batch_dot_i8;
        table.batch_i8_group = from.batch_i8_group;
        table.micro_batch_i8_group = from.micro_batch_i8_group;
        table.batch_i8_bias = from.batch_i8_bias;
      }
    }
    tables.push_back(table);
  }
  return tables;
}

std::size_t best_verified() {
  std::size_t best = 0;  // scalar: always there, always supported
  for (const IsaInfo& isa : isas()) {
    if (isa.verified && cpu_supports(isa)) best = index_of(isa);
  }
  return best;
}

std::atomic<std::size_t>& active() {
  static std::atomic<std::size_t> index{best_verified()};
  return index;
}

}  // namespace

const IsaInfo* find_isa(const std::string& name) {
  for (const IsaInfo& isa : isas()) {
    if (name == isa.name) return &isa;
  }
  return nullptr;
}

std::vector<std::string> cpu_features() { return features(); }

bool cpu_supports(const IsaInfo& isa) {
  std::istringstream words(isa.features);
  std::string word;
  while (words >> word) {
    if (std::find(features().begin(), features().end(), word) == features().end()) return false;
  }
  return true;
}

const Kernels& kernels_of(const IsaInfo& isa) {
  static const std::vector<Kernels> tables = complete_tables();
  return tables[index_of(isa)];
}

const IsaInfo& active_isa() { return isas()[active().load()]; }

const Kernels& active_kernels() { return kernels_of(active_isa()); }

bool select_isa(const IsaInfo& isa) {
  if (!cpu_supports(isa)) return false;
  active().store(index_of(isa));
  return true;
}

}  // namespace simkernel
