{
  "targets": [
    {
      "target_name": "procmonitor",
      # Read only on Windows, where node-gyp would add its delay-load hook (a .cc) to the target.
      "win_delay_load_hook": "false",
      "conditions": [
        # The proc connector is Linux's: elsewhere (an install forced past package.json's
        # "os", or a bundled copy) the target builds nothing; the JS side loads without the
        # addon and ProcConnector.start() throws EPLATFORM.
        ["OS=='linux'", {
          "sources": [
            "native/accounts.cc",
            "native/context.cc",
            "native/exit_cost.cc",
            "native/filter.cc",
            "native/addon.cc",
            "native/addon_lines.cc",
            "native/addon_journal.cc",
            "native/journal_socket.cc",
            "native/handoff.cc",
            "native/lineage.cc",
            "native/line_filter.cc",
            "native/line_reader.cc",
            "native/loss.cc",
            "native/monitor.cc",
            "native/netlink.cc",
            "native/parser.cc",
            "native/pattern.cc",
            "native/pattern_parse.cc",
            "native/process_store.cc",
            "native/process_table.cc",
            "native/proc_dir.cc",
            "native/procfs.cc",
            "native/redact.cc",
            "native/process_context.cc",
            "native/shared_table.cc",
            "native/taskstats.cc",
            "native/wire.cc",
            "native/wire_fields.cc"
          ],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
          "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2", "-fvisibility=hidden"],
          "cflags_cc!": ["-std=gnu++17", "-std=gnu++14", "-std=gnu++1y"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
