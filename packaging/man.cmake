# Makes a man page from PAGE_IN: @HELP@ becomes what `BINARY --help`
# prints (the command tables themselves, so the page never lists a command
# that does not exist), @VERSION@ the version; gzip'ed into OUT.
execute_process(COMMAND ${BINARY} --help OUTPUT_VARIABLE help ERROR_VARIABLE help_err
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BINARY} --help failed: ${help_err}")
endif()
string(APPEND help "${help_err}")
string(STRIP "${help}" help)
# roff: backslashes escaped, a leading dot or apostrophe made text, '-' a minus
string(REPLACE "\\" "\\e" help "${help}")
string(REPLACE "-" "\\-" help "${help}")
string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
file(READ ${PAGE_IN} page)
string(REPLACE "@HELP@" "${help}" page "${page}")
string(REPLACE "@VERSION@" "${VERSION}" page "${page}")
file(WRITE ${OUT_PAGE} "${page}")
execute_process(COMMAND gzip -9n -f ${OUT_PAGE} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip ${OUT_PAGE} failed")
endif()
