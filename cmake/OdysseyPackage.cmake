# `cmake --install` tree with an exported package: find_package(odyssey) then
# target_link_libraries(app PRIVATE odyssey::odyssey) and `import odyssey;`.
include(CMakePackageConfigHelpers)
set(ODYSSEY_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/odyssey)
install(EXPORT odysseyTargets NAMESPACE odyssey:: DESTINATION ${ODYSSEY_CMAKE_DIR}
        CXX_MODULES_DIRECTORY cxx-modules)
configure_package_config_file(cmake/odysseyConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/odysseyConfig.cmake INSTALL_DESTINATION ${ODYSSEY_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/odysseyConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/odysseyConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/odysseyConfigVersion.cmake
        DESTINATION ${ODYSSEY_CMAKE_DIR})
