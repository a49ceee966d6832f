# Run by `cmake --install` (see CMakeLists.txt): the units with /usr/bin and /usr/lib/domain-park
# replaced by the install prefix's, staged in the build tree, then installed from there.
file(GLOB_RECURSE units RELATIVE "${DP_UNIT_SOURCE_DIR}" "${DP_UNIT_SOURCE_DIR}/*.service"
     "${DP_UNIT_SOURCE_DIR}/*.target" "${DP_UNIT_SOURCE_DIR}/*.conf")
file(REMOVE_RECURSE "${DP_UNIT_STAGE_DIR}")
foreach(unit IN LISTS units)
  file(READ "${DP_UNIT_SOURCE_DIR}/${unit}" text)
  string(REPLACE "/usr/bin/" "${CMAKE_INSTALL_PREFIX}/bin/" text "${text}")
  string(REPLACE "/usr/lib/domain-park/" "${CMAKE_INSTALL_PREFIX}/lib/domain-park/" text "${text}")
  file(WRITE "${DP_UNIT_STAGE_DIR}/${unit}" "${text}")
endforeach()
file(INSTALL "${DP_UNIT_STAGE_DIR}/" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
