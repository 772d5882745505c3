// Load the uWebSockets.js build chosen for this runtime (uws-choice.ts) and refuse to run on anything but its native
// binary: 20.30 without a matching binary only prints a warning and serves with a pure-JS implementation on `ws`
// that behaves differently; 20.57 throws. Both builds have the same API, typed by the `uWebSockets.js` import name.
import { createRequire } from 'node:module'
import path from 'node:path'
import { LeakyError } from '../errors.js'
import { chooseUws, refusal, workingPairs, type UwsChoice } from './uws-choice.js'
import type * as UWS from 'uWebSockets.js'

const require = createRequire(import.meta.url)

export type UwsModule = typeof UWS

/** The last line of a load error: the dynamic linker's own words (`GLIBC_2.38' not found`, a missing file). */
function cause(err: unknown): string {
  const lines = String((err as Error)?.message ?? err).split('\n').map((l) => l.trim()).filter((l) => l !== '')
  return lines[lines.length - 1] ?? 'unknown error'
}

export function loadUws(choice: UwsChoice = chooseUws()): UwsModule {
  if (choice.problem !== null || choice.dir === null) throw new LeakyError('LEAKY_UWS_UNAVAILABLE', refusal(choice))
  let mod: UwsModule
  try {
    // the folder, not the name: its package.json `main` picks the entry, whatever the build's layout
    mod = require(choice.dir) as UwsModule
  } catch (err) {
    throw new LeakyError('LEAKY_UWS_UNAVAILABLE', refusal(choice, cause(err)))
  }
  const inside = choice.dir + path.sep
  const native = Object.keys(require.cache).some((k) => k.endsWith('.node') && k.startsWith(inside))
  if (!native) {
    const rt = choice.runtime
    throw new LeakyError(
      'LEAKY_UWS_FALLBACK',
      `uWebSockets.js ${choice.version ?? ''} (${choice.build?.pkg}) loaded no native binary for Node ${rt.node} (ABI ${rt.abi}), ` +
        `${rt.platform}-${rt.arch}, glibc ${rt.glibc ?? 'none'} and fell back ` +
        `to its pure-JS implementation; leaky-tokens refuses to run on it. Working pairs: ${workingPairs()}.`,
    )
  }
  return mod
}
