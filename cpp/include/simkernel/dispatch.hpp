// The ISA registry, CPU feature detection and the kernel table in use.
#pragma once

#include <string>
#include <vector>

#include "simkernel/kernels.hpp"

namespace simkernel {

// One row per ISA built into this binary (cpp/src/isa_registry.cpp). Every
// other fact about an ISA (its name in SIMKERNEL_ISA and sk.use_isa, whether
// this CPU can run it, whether it is chosen automatically, what the kernel
// tests cover) is read from here.
struct IsaInfo {
  const char* name;
  // CPU feature names (as cpu_features() reports them), space-separated,
  // that the ISA's file was compiled to use; all must be present.
  const char* features;
  // The file's table; a null kernel in it is taken from `fallback`.
  const Kernels* kernels;
  // Chosen without being asked for: its kernels have passed the kernel and
  // property tests on hardware that has it.
  bool verified;
  // The ISA that fills the gaps of a partial table (nullptr for scalar, whose
  // table is complete). It must come earlier in the registry.
  const char* fallback;
};

// The rows, in order of preference: best last.
const std::vector<IsaInfo>& isas();
// The row named `name`, or nullptr.
const IsaInfo* find_isa(const std::string& name);

// What the running CPU and OS support, as feature names ("avx2", "fma", ...).
std::vector<std::string> cpu_features();
// Whether this CPU has every feature the ISA needs.
bool cpu_supports(const IsaInfo& isa);

// The ISA's complete table: its own kernels, gaps filled from its fallbacks.
// Building it runs no kernel code, so it is safe for an ISA the CPU lacks.
const Kernels& kernels_of(const IsaInfo& isa);

// The ISA in use (at first the best verified one this CPU supports) and its
// complete table.
const IsaInfo& active_isa();
const Kernels& active_kernels();
// Switches the table for calls that start from now on; false (and nothing
// changes) if the CPU lacks the ISA.
bool select_isa(const IsaInfo& isa);

}  // namespace simkernel
