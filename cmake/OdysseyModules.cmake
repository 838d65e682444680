# odyssey_add_module_library(<name> MODULES <files...> [DEPENDS <targets...>])
#
# Makes the module library odyssey_<name> (alias and export name odyssey::<name>) from
# module interface units, and installs it with its module sources so that a consumer's
# build can compile the BMIs with its own flags.
function(odyssey_add_module_library name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "MODULES;DEPENDS")
  set(target odyssey_${name})
  add_library(${target} STATIC)
  add_library(odyssey::${name} ALIAS ${target})
  target_sources(${target} PUBLIC
    FILE_SET CXX_MODULES BASE_DIRS "${CMAKE_CURRENT_SOURCE_DIR}" FILES ${arg_MODULES})
  # Without this the exported package compiles the consumer-side BMIs as C++17.
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_link_libraries(${target} PUBLIC ${arg_DEPENDS})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  install(TARGETS ${target} EXPORT odysseyTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    FILE_SET CXX_MODULES DESTINATION ${CMAKE_INSTALL_LIBDIR}/odyssey/modules/${name})
endfunction()
