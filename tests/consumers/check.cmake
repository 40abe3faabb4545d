# Builds and runs consumers/main.cpp the way WAY names:
#   plain            c++ -I<checkout>/include
#   add_subdirectory add_subdirectory(<checkout>)
#   fetchcontent     FetchContent from the local checkout (its committed HEAD when it is a git
#                    repository, so a file missing from git fails here), with FIND_PACKAGE_ARGS
#   find_package     find_package(teardown 0.1 CONFIG) after `cmake --install` to STAGE
#   pkgconfig        c++ $(pkg-config --cflags --libs teardown) against STAGE
cmake_minimum_required(VERSION 3.21)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT status EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "consumer '${WAY}' failed (${status}): ${command}\n${output}")
  endif()
endfunction()

set(build ${WORK_DIR}/${WAY})
file(REMOVE_RECURSE ${build})
file(MAKE_DIRECTORY ${build})

if(WAY STREQUAL "plain")
  run(${CXX} -std=c++20 -I${SOURCE_DIR}/include ${CONSUMERS_DIR}/main.cpp -pthread -o ${build}/app)
elseif(WAY STREQUAL "pkgconfig")
  find_program(PKG_CONFIG pkg-config REQUIRED)
  set(ENV{PKG_CONFIG_PATH} ${STAGE}/share/pkgconfig)
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs teardown
                  RESULT_VARIABLE status OUTPUT_VARIABLE flags ERROR_VARIABLE flags
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "pkg-config cannot find teardown.pc in ${STAGE}/share/pkgconfig: ${flags}")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(${CXX} -std=c++20 ${flags} ${CONSUMERS_DIR}/main.cpp -o ${build}/app)
else()
  set(configure_args)
  if(WAY STREQUAL "find_package")
    list(APPEND configure_args -DCMAKE_PREFIX_PATH=${STAGE})
  elseif(WAY STREQUAL "fetchcontent" AND EXISTS ${SOURCE_DIR}/.git)
    execute_process(COMMAND git -C ${SOURCE_DIR} rev-parse HEAD OUTPUT_VARIABLE head
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE status)
    if(status EQUAL 0)
      list(APPEND configure_args -DTEARDOWN_GIT_TAG=${head})
    endif()
  endif()
  run(${CMAKE_COMMAND} -S ${CONSUMERS_DIR}/${WAY} -B ${build} -G ${GENERATOR}
      -DCMAKE_CXX_COMPILER=${CXX} -DTEARDOWN_SOURCE_DIR=${SOURCE_DIR} ${configure_args})
  run(${CMAKE_COMMAND} --build ${build})
endif()

run(${build}/app)
