// CPU feature detection and the kernel table chosen from it.
#pragma once

#include <string>
#include <vector>

#include "simkernel/kernels.hpp"

namespace simkernel {

enum class Isa { scalar, avx2, avx512, neon };

const char* isa_name(Isa isa);
bool parse_isa(const std::string& name, Isa* isa);

// What the running CPU and OS support, as feature names ("avx2", "fma", ...).
std::vector<std::string> cpu_features();
// ISAs built into this binary, in order of preference (best last).
std::vector<Isa> compiled_isas();
// Compiled ISAs whose kernels this CPU can run.
std::vector<Isa> supported_isas();
// Supported ISAs whose kernels have passed the kernel tests on real hardware:
// only these are chosen without being asked for.
std::vector<Isa> verified_isas();

// The ISA in use and its kernel table.
Isa active_isa();
const Kernels& active_kernels();
// Switches the table; returns false (and changes nothing) if the CPU lacks it.
bool select_isa(Isa isa);

}  // namespace simkernel
