# Included by the add_subdirectory and fetchcontent consumers: consumed as a subproject, teardown
# must build nothing and look for nothing beyond Threads.
function(expect_nothing_built teardown_dir)
  get_property(targets DIRECTORY ${teardown_dir} PROPERTY BUILDSYSTEM_TARGETS)
  if(NOT targets STREQUAL "teardown")
    message(FATAL_ERROR "teardown as a subproject defined targets '${targets}'; expected only 'teardown'")
  endif()
  foreach(package Catch2 rapidcheck benchmark)
    if(DEFINED ${package}_DIR OR DEFINED CACHE{${package}_DIR})
      message(FATAL_ERROR "teardown as a subproject looked for ${package}")
    endif()
  endforeach()
endfunction()
