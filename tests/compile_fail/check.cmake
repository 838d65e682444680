# Builds TARGET in BUILD_DIR, expecting failure, and checks that the compiler's output
# matches every regular expression in EXPECT (a ;-list). Run by CTest: cmake -P check.cmake
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}"
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(result EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but it must not:\n${out}")
endif()
foreach(re IN LISTS EXPECT)
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "${TARGET} failed to compile, but its diagnostic lacks '${re}':\n${out}")
  endif()
endforeach()
message(STATUS "${TARGET} is rejected with the expected diagnostic")
