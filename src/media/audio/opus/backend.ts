import type { OpusBackend } from './codec.ts';
import { loadNativeBackend } from './native-backend.ts';
import { loadWasmBackend } from './wasm-backend.ts';

export type OpusBackendChoice = 'auto' | 'native' | 'wasm';

/**
 * Native libopus when its addon was built on install (about 30% faster: BENCHMARKS.md), else
 * the WebAssembly build, which needs no compiler. `AMPHI_OPUS` forces one for tests and benches.
 */
export function loadOpusBackend(choice: OpusBackendChoice = backendChoiceFromEnv()): OpusBackend {
  if (choice === 'wasm') return loadWasmBackend();
  try {
    return loadNativeBackend();
  } catch (error) {
    if (choice === 'native') throw error;
    return loadWasmBackend();
  }
}

function backendChoiceFromEnv(): OpusBackendChoice {
  const value = process.env.AMPHI_OPUS;
  return value === 'native' || value === 'wasm' ? value : 'auto';
}
