// Load uWebSockets.js and refuse to run on its pure-JS fallback: on a Node without a matching native binary the
// package only prints a warning and serves with a different implementation that behaves differently.
import { createRequire } from 'node:module'
import { LeakyError } from '../errors.js'
import type * as UWS from 'uWebSockets.js'

const require = createRequire(import.meta.url)

export type UwsModule = typeof UWS

export function loadUws(): UwsModule {
  const entry = require.resolve('uWebSockets.js')
  const mod = require('uWebSockets.js') as UwsModule
  const native = Object.keys(require.cache).some((k) => k.endsWith('.node') && k.includes('uws_') && k.startsWith(entry.slice(0, entry.lastIndexOf('/src/'))))
  if (!native) {
    throw new LeakyError(
      'LEAKY_UWS_FALLBACK',
      `uWebSockets.js has no native binary for this Node.js (${process.version}, ABI ${process.versions.modules}) and fell back to its ` +
        'pure-JS implementation; leaky-tokens refuses to run on it. Use Node.js 20 (native binaries exist for ABI 93/108/115 only).',
    )
  }
  return mod
}
