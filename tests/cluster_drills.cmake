# Layer 4 — the cluster drills (scripts/cluster-drills): a 3-member etcd cluster on
# loopback; smoke steps, the etcd leader killed under `elect --restart`, 2 of 3
# members stopped, endpoint failover. About a minute (two on a busy machine).
if(TARGET conch_tool AND TARGET conchd_tool)
  add_test(NAME cluster_drills
           COMMAND ${PROJECT_SOURCE_DIR}/scripts/cluster-drills --build ${CMAKE_RUNTIME_OUTPUT_DIRECTORY}/..)
  # Elections and lease deadlines are timed: alone, not next to other tests.
  set_tests_properties(cluster_drills PROPERTIES TIMEOUT 400 RUN_SERIAL TRUE LABELS drills)
endif()
