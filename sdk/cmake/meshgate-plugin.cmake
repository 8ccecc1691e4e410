# mg_add_plugin(NAME SOURCES...): builds meshgate-NAME.so (target
# plugin_NAME) against meshgate::sdk and installs it into the plugin
# directory. The same function in meshgate's tree and, installed, after
# find_package(meshgate-sdk).
include(GNUInstallDirs)

function(mg_add_plugin name)
  add_library(plugin_${name} MODULE ${ARGN})
  set_target_properties(plugin_${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "meshgate-${name}" C_VISIBILITY_PRESET hidden)
  # in meshgate's tree every plugin lands in one folder, so the tests and
  # the demo run uninstalled
  if(MESHGATE_PLUGIN_BUILD_DIR)
    set_target_properties(plugin_${name} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${MESHGATE_PLUGIN_BUILD_DIR})
  endif()
  target_link_libraries(plugin_${name} PRIVATE meshgate::sdk)
  # a plugin never links against the core: an undefined symbol is an error now
  target_link_options(plugin_${name} PRIVATE -Wl,-z,defs)
  # MESHGATE_PLUGIN_COMPONENT: the install component (meshgate's packages)
  if(MESHGATE_PLUGIN_COMPONENT)
    set(component COMPONENT ${MESHGATE_PLUGIN_COMPONENT})
  endif()
  install(TARGETS plugin_${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/meshgate/plugins
    ${component})
endfunction()
