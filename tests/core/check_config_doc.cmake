# docs/config.md must be what `meshgated --config-doc` prints for every
# plugin in the build: regenerate it with tools/gen-config-doc.sh.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/doc.conf "plugin_dir = \"${PLUGIN_DIR}\";\n")
execute_process(COMMAND ${MESHGATED} --config ${CMAKE_CURRENT_BINARY_DIR}/doc.conf --config-doc
  OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "meshgated --config-doc failed")
endif()
file(READ ${DOC} committed)
if(NOT generated STREQUAL committed)
  message(FATAL_ERROR "docs/config.md is out of step with the declared settings; run tools/gen-config-doc.sh")
endif()
