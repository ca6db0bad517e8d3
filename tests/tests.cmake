# Tests that need more than "run the executable": test_parity is built from
# tests/parity/*.c and runs on the committed fixture folder.
file(GLOB RECUR_PARITY_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/parity/*.c)
add_executable(test_parity ${RECUR_PARITY_SOURCES})
target_link_libraries(test_parity PRIVATE recur_static)
target_include_directories(test_parity PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/parity)
add_test(NAME test_parity COMMAND test_parity ${RECUR_FIXTURES})

# test_cli runs the built `recur` tool end to end (train, resume, sample, eval,
# corrupt checkpoints, kills during saves); it needs the CLI target.
if(TARGET recur)
  add_dependencies(test_cli recur)
  add_test(NAME test_cli COMMAND test_cli $<TARGET_FILE:recur>)
  set_tests_properties(test_cli PROPERTIES TIMEOUT 600)
else()
  add_test(NAME test_cli COMMAND test_cli)
  set_tests_properties(test_cli PROPERTIES DISABLED TRUE)
endif()
