# Tests that need more than "run the executable": test_parity is built from
# tests/parity/*.c and runs on the committed fixture folder.
file(GLOB RECUR_PARITY_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/parity/*.c)
add_executable(test_parity ${RECUR_PARITY_SOURCES})
target_link_libraries(test_parity PRIVATE recur_static)
target_include_directories(test_parity PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/parity)
add_test(NAME test_parity COMMAND test_parity ${RECUR_FIXTURES})
