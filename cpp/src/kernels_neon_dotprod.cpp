// The NEON kernels again, compiled with +dotprod (Armv8.2 sdot / udot) into
// their own namespace; dispatch uses them only where HWCAP reports ASIMDDP.
#define SIMKERNEL_NEON_NAMESPACE neon_dotprod
#include "kernels_neon.cpp"
