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

# MPI (docs/mpi.md), with RECUR_MPI=ON only: test_dist runs the tool's MPI
# layer (src/cli/dist.c) under mpirun with 2 ranks; test_mpi_cli trains with
# `mpirun -np 2 recur train` end to end (parity with one process, resume,
# a killed or hung rank). Label: mpi.
if(RECUR_MPI AND TARGET recur)
  find_package(MPI REQUIRED COMPONENTS C)
  add_executable(test_dist ${CMAKE_CURRENT_SOURCE_DIR}/mpi/dist_check.c
                 ${PROJECT_SOURCE_DIR}/src/cli/dist.c ${PROJECT_SOURCE_DIR}/src/cli/common.c)
  target_compile_definitions(test_dist PRIVATE RECUR_MPI)
  target_include_directories(test_dist PRIVATE ${PROJECT_SOURCE_DIR}/src/cli
                             ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_dist PRIVATE recur_static MPI::MPI_C)
  add_test(NAME test_dist COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2
           --allow-run-as-root --oversubscribe $<TARGET_FILE:test_dist>)
  add_dependencies(test_mpi_cli recur)
  add_test(NAME test_mpi_cli COMMAND test_mpi_cli $<TARGET_FILE:recur> ${MPIEXEC_EXECUTABLE})
  set_tests_properties(test_dist test_mpi_cli PROPERTIES LABELS mpi TIMEOUT 300)
elseif(TARGET recur)
  # without MPI: only checks that mpirun cannot start N independent copies
  add_dependencies(test_mpi_cli recur)
  add_test(NAME test_mpi_cli COMMAND test_mpi_cli $<TARGET_FILE:recur>)
else()
  add_test(NAME test_mpi_cli COMMAND test_mpi_cli)
  set_tests_properties(test_mpi_cli PROPERTIES DISABLED TRUE)
endif()

# test_speech_cli runs `recur speech` (train, resume, transcribe, eval) end to
# end on the FSDD clips committed in data/fsdd; it needs the CLI target.
if(TARGET recur)
  add_dependencies(test_speech_cli recur)
  add_test(NAME test_speech_cli COMMAND test_speech_cli $<TARGET_FILE:recur>)
  set_tests_properties(test_speech_cli PROPERTIES TIMEOUT 300)
else()
  add_test(NAME test_speech_cli COMMAND test_speech_cli)
  set_tests_properties(test_speech_cli PROPERTIES DISABLED TRUE)
endif()

# test_classify_cli runs `recur classify` (train, resume, predict, eval,
# .ts sequences, pretraining) end to end on small synthetic data; it needs
# the CLI target.
if(TARGET recur)
  add_dependencies(test_classify_cli recur)
  add_test(NAME test_classify_cli COMMAND test_classify_cli $<TARGET_FILE:recur>)
  set_tests_properties(test_classify_cli PROPERTIES TIMEOUT 300)
else()
  add_test(NAME test_classify_cli COMMAND test_classify_cli)
  set_tests_properties(test_classify_cli PROPERTIES DISABLED TRUE)
endif()

# test_forecast_cli runs `recur forecast` (eval, train, resume, predict,
# --follow, wide files, malformed input) end to end on small synthetic
# series; it needs the CLI target.
if(TARGET recur)
  add_dependencies(test_forecast_cli recur)
  add_test(NAME test_forecast_cli COMMAND test_forecast_cli $<TARGET_FILE:recur>)
  set_tests_properties(test_forecast_cli PROPERTIES TIMEOUT 300)
else()
  add_test(NAME test_forecast_cli COMMAND test_forecast_cli)
  set_tests_properties(test_forecast_cli PROPERTIES DISABLED TRUE)
endif()

# test_translate_cli runs `recur translate` (train, resume, translate stdin
# with --attention, eval, bad input) end to end on a small synthetic pair
# file; it needs the CLI target.
if(TARGET recur)
  add_dependencies(test_translate_cli recur)
  add_test(NAME test_translate_cli COMMAND test_translate_cli $<TARGET_FILE:recur>)
  set_tests_properties(test_translate_cli PROPERTIES TIMEOUT 300)
else()
  add_test(NAME test_translate_cli COMMAND test_translate_cli)
  set_tests_properties(test_translate_cli PROPERTIES DISABLED TRUE)
endif()
