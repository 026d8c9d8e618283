// Preloaded into the benchmarked server (node --import) to time each request inside it, from
// the parsed request line and headers to the last byte of the answer handed to the socket.
// Set beside the latency the client sees, it tells the server's share from the load
// generator's. Plain JavaScript because it loads before bin/amphi.js registers tsx.
// Costs a clock read and a listener per request; it only records between 'start' and 'stop'.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

let durationsMs = [];
let recording = false;

const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, ...args) {
  if (recording && event === 'request') {
    const started = performance.now();
    args[1].once('finish', () => durationsMs.push(performance.now() - started));
  }
  return emit.call(this, event, ...args);
};

process.on('message', (message) => {
  if (message === 'timing:start') {
    durationsMs = [];
    recording = true;
  } else if (message === 'timing:stop') {
    recording = false;
    process.send?.({ timingMs: durationsMs });
  }
});
// The channel must not keep the server alive once amphi decides to exit.
process.channel?.unref();
