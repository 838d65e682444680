# Every dependency is a Debian package installed by scripts/bootstrap.sh; a missing one
# stops configuration with the package to install.
function(odyssey_require pkg debian)
  find_package(${pkg} ${ARGN} QUIET)
  if(NOT ${pkg}_FOUND)
    message(FATAL_ERROR "odyssey: ${pkg} not found; install the Debian package '${debian}' "
                        "(scripts/bootstrap.sh installs everything)")
  endif()
endfunction()

odyssey_require(hwy libhwy-dev CONFIG)
odyssey_require(TBB libtbb-dev CONFIG)
odyssey_require(fmt libfmt-dev CONFIG)
odyssey_require(nlohmann_json nlohmann-json3-dev CONFIG)
odyssey_require(ZLIB zlib1g-dev)
odyssey_require(PNG libpng-dev)
odyssey_require(range-v3 librange-v3-dev CONFIG)
odyssey_require(CLI11 libcli11-dev CONFIG)
set(MPI_CXX_SKIP_MPICXX ON)  # the C API only, from C++
odyssey_require(MPI libopenmpi-dev COMPONENTS CXX)
if(ODYSSEY_BUILD_TESTS)
  # FindBoost is gone from CMake 4 (CMP0167); Debian's Boost ships config files.
  odyssey_require(Boost libboost-test-dev 1.74 CONFIG COMPONENTS unit_test_framework)
endif()
if(ODYSSEY_BUILD_PERF)
  odyssey_require(benchmark libbenchmark-dev CONFIG)
endif()
find_package(Threads REQUIRED)
