{
  "targets": [
    {
      "target_name": "procmonitor",
      "sources": [
        "native/addon.cc",
        "native/monitor.cc",
        "native/parser.cc",
        "native/procfs.cc",
        "native/wire.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2", "-fvisibility=hidden"],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++14", "-std=gnu++1y"]
    }
  ]
}
