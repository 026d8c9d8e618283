# The native send path: SRTP protection of a batch of RTP packets and one sendmmsg for all of them.
# Built by `npm ci` (the postinstall script) with node-gyp against the system's Node headers; Node-API only, so one
# build serves every Node.js version from 20 on. OpenSSL comes from Node itself (its headers under include/node,
# its symbols from the running node binary), so nothing else is linked.
{
  "targets": [
    {
      "target_name": "amphi_native",
      "sources": ["src/addon.cc", "src/srtp-sealer.cc", "src/datagram-batch.cc", "src/sealer-registry.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["src/datagram-batch.cc"], "type": "none" }]
      ]
    }
  ]
}
