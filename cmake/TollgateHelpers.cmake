# Helpers shared by every Tollgate target: warning flags, sanitizers, and small wrappers so each
# CMakeLists.txt states only sources and dependencies.

set(TOLLGATE_WARNING_FLAGS -Wall -Wextra -Werror -Wno-unused-parameter)

function(tollgate_apply_common target)
  target_compile_options(${target} PRIVATE ${TOLLGATE_WARNING_FLAGS})
  target_compile_definitions(${target} PRIVATE BOOST_ASIO_NO_DEPRECATED)
  if(TOLLGATE_SANITIZER STREQUAL "address")
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  elseif(TOLLGATE_SANITIZER STREQUAL "thread")
    target_compile_options(${target} PRIVATE -fsanitize=thread -Wno-tsan)
    target_link_options(${target} PRIVATE -fsanitize=thread)
  elseif(TOLLGATE_SANITIZER STREQUAL "undefined")
    target_compile_options(${target} PRIVATE -fsanitize=undefined)
    target_link_options(${target} PRIVATE -fsanitize=undefined)
  endif()
endfunction()

# tollgate_cc_library(NAME name SRCS ... DEPS ...)
function(tollgate_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  target_include_directories(${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS})
  tollgate_apply_common(${ARG_NAME})
endfunction()

# tollgate_cc_binary(NAME name SRCS ... DEPS ...)
function(tollgate_cc_binary)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  tollgate_apply_common(${ARG_NAME})
endfunction()

# tollgate_cc_test(NAME name SRCS ... DEPS ... [LABELS ...])
# Unit tests get the label "unit"; integration tests pass LABELS integration.
function(tollgate_cc_test)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT TOLLGATE_BUILD_TESTS)
    return()
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  tollgate_apply_common(${ARG_NAME})
  # Tests find their data (golden files, corpora) under the source tree.
  target_compile_definitions(${ARG_NAME} PRIVATE TOLLGATE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT 600)
endfunction()

# tollgate_proto_library(NAME name ROOT dir PROTOS a.proto ... [DEPS ...])
# Generates C++ (messages and gRPC services) for PROTOS, given relative to ROOT (the import
# root), into this directory's build tree, and builds them into one static library.
function(tollgate_proto_library)
  cmake_parse_arguments(ARG "" "NAME;ROOT" "PROTOS;DEPS" ${ARGN})
  set(gen_dir ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${gen_dir})
  find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
  find_program(PROTOC_EXE protoc REQUIRED)
  set(srcs)
  foreach(rel ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(out ${gen_dir}/${base})
    add_custom_command(
      OUTPUT ${out}.pb.cc ${out}.pb.h ${out}.grpc.pb.cc ${out}.grpc.pb.h
      COMMAND ${PROTOC_EXE} --proto_path=${ARG_ROOT} --cpp_out=${gen_dir} --grpc_out=${gen_dir}
              --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN} ${ARG_ROOT}/${rel}
      DEPENDS ${ARG_ROOT}/${rel}
      COMMENT "protoc ${rel}")
    list(APPEND srcs ${out}.pb.cc ${out}.grpc.pb.cc)
  endforeach()
  add_library(${ARG_NAME} STATIC ${srcs})
  target_include_directories(${ARG_NAME} PUBLIC ${gen_dir})
  target_link_libraries(${ARG_NAME} PUBLIC gRPC::grpc++ protobuf::libprotobuf ${ARG_DEPS})
endfunction()
