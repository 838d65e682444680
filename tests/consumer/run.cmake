# Installs the build tree into a prefix, then configures, builds and runs tests/consumer
# against it with the same compiler, generator and scanner (Debug: the consumer compiles
# every odyssey module interface again, and -O0 does that fastest). Run by CTest.
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                RESULT_VARIABLE r OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT r EQUAL 0)
  message(FATAL_ERROR "cmake --install failed:\n${err}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}" -G Ninja
                        "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}"
                        "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_CXX_COMPILER_CLANG_SCAN_DEPS=${SCAN_DEPS}"
                        "-DCMAKE_PREFIX_PATH=${PREFIX}" -DCMAKE_BUILD_TYPE=Debug
                RESULT_VARIABLE r OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT r EQUAL 0)
  message(FATAL_ERROR "configuring the consumer failed:\n${out}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}"
                RESULT_VARIABLE r OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT r EQUAL 0)
  message(FATAL_ERROR "building the consumer failed:\n${out}")
endif()
execute_process(COMMAND "${WORK_DIR}/consumer" RESULT_VARIABLE r OUTPUT_VARIABLE out ERROR_VARIABLE out)
message(STATUS "${out}")
if(NOT r EQUAL 0)
  message(FATAL_ERROR "the consumer exited with ${r}")
endif()
