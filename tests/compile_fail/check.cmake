# Builds TARGET in BUILD_DIR, expecting failure, and checks that the compiler's output
# matches every regular expression in EXPECT (separated by "@@"). Run by CTest:
#   cmake -DBUILD_DIR=... -DTARGET=... -DEXPECT=re1@@re2 -P check.cmake
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}"
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(result EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but it must not:\n${out}")
endif()
string(REPLACE "@@" ";" expect "${EXPECT}")
foreach(re IN LISTS expect)
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "${TARGET} failed to compile, but its diagnostic lacks '${re}':\n${out}")
  endif()
endforeach()
message(STATUS "${TARGET} is rejected with the expected diagnostic")
