// Which uWebSockets.js build this runtime gets, decided without loading it. No single build covers the supported
// Node versions: 20.30 (the import name `uWebSockets.js`) ships binaries for Node 16/18/20 against glibc 2.27, and
// 20.57 (@btc-vision/uwebsockets.js) ships Node 20/22/24/25 against glibc 2.38, so it never loads on Debian 12. Node
// 20 keeps 20.30 everywhere (the behaviour every existing deployment has); Node 22 and 24 get 20.57.
// LEAKY_UWS=<package> forces one (tests, operators). The master refuses to start with what is known here before it
// forks anything; the worker's real load (uws.ts) has the last word.
import { createRequire } from 'node:module'
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import path from 'node:path'

const require = createRequire(import.meta.url)

export interface UwsBuild {
  /** the package name as installed in node_modules (20.30 is installed under its alias) */
  pkg: string
  /** what the package calls itself on the registry, when that differs */
  registryName?: string
  /** uWS version of the build */
  uws: string
  /** Node ABIs (process.versions.modules) this build is chosen for, with their Node major */
  chosenFor: Readonly<Record<string, number>>
  /** the oldest glibc its Linux binaries load on */
  minGlibc: string
}

export const UWS_BUILDS: readonly UwsBuild[] = [
  { pkg: 'uWebSockets.js', registryName: '@trufflesuite/uws-js-unofficial', uws: '20.30.0', chosenFor: { 115: 20 }, minGlibc: '2.27' },
  { pkg: '@btc-vision/uwebsockets.js', uws: '20.57.0', chosenFor: { 127: 22, 137: 24 }, minGlibc: '2.38' },
]

export interface Runtime {
  /** process.version without the v */
  node: string
  abi: string
  platform: string
  arch: string
  /** glibc at run time; null on musl or off Linux */
  glibc: string | null
}

export interface UwsChoice {
  runtime: Runtime
  /** null: no build for this runtime, or LEAKY_UWS names none */
  build: UwsBuild | null
  /** chosen by LEAKY_UWS */
  forced: boolean
  /** the package folder (real path), found by name, whatever its file layout */
  dir: string | null
  /** the installed package's uWS version (x.y.z) */
  version: string | null
  /** why it cannot load, when that is known before trying; null: it should load */
  problem: string | null
}

let glibcCache: string | null | undefined

export function glibcVersion(): string | null {
  if (glibcCache !== undefined) return glibcCache
  if (process.platform !== 'linux') return (glibcCache = null)
  const report = process.report as NodeJS.ProcessReport & { excludeNetwork?: boolean }
  const was = report.excludeNetwork
  report.excludeNetwork = true // no reverse DNS of open sockets: only the header is wanted
  try {
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
    glibcCache = header?.glibcVersionRuntime ?? null
  } catch {
    glibcCache = null
  } finally {
    report.excludeNetwork = was
  }
  return glibcCache
}

export function currentRuntime(): Runtime {
  return { node: process.versions.node, abi: process.versions.modules, platform: process.platform, arch: process.arch, glibc: glibcVersion() }
}

function older(a: string, b: string): boolean {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0)
  return false
}

/** The folder of an installed package, looked up the way require() would, without resolving any file in it. */
export function packageDir(name: string): string | null {
  for (const d of require.resolve.paths(name) ?? []) {
    const dir = path.join(d, name)
    if (existsSync(path.join(dir, 'package.json'))) return realpathSync(dir)
  }
  return null
}

function findBuild(name: string): UwsBuild | undefined {
  return UWS_BUILDS.find((b) => b.pkg === name || b.registryName === name)
}

export function chooseUws(env: NodeJS.ProcessEnv = process.env, rt: Runtime = currentRuntime()): UwsChoice {
  const forcedName = env.LEAKY_UWS !== undefined && env.LEAKY_UWS !== '' ? env.LEAKY_UWS : null
  const build = forcedName !== null ? findBuild(forcedName) : UWS_BUILDS.find((b) => rt.abi in b.chosenFor)
  const choice: UwsChoice = { runtime: rt, build: build ?? null, forced: forcedName !== null, dir: null, version: null, problem: null }
  if (build === undefined) {
    choice.problem = forcedName !== null
      ? `LEAKY_UWS=${forcedName} names no known build (known: ${UWS_BUILDS.map((b) => b.pkg).join(', ')})`
      : `no uWebSockets.js build is chosen for Node ${rt.node} (ABI ${rt.abi})`
    return choice
  }
  choice.dir = packageDir(build.pkg)
  if (choice.dir === null) {
    choice.problem = `${build.pkg} is not installed (an install with --omit=optional leaves it out)`
    return choice
  }
  try {
    const v = (JSON.parse(readFileSync(path.join(choice.dir, 'package.json'), 'utf8')) as { version?: string }).version ?? ''
    choice.version = /^\d+\.\d+\.\d+/.exec(v)?.[0] ?? (v || null)
  } catch {
    // unreadable package.json: the version stays unknown; loading decides the rest
  }
  // a missing binary for this ABI is left to the load: 20.30 then falls back to pure JS (refused there, with the
  // same pairs; UWS_USE_FALLBACK=1 forces that path on purpose), 20.57 throws
  if (rt.platform === 'linux' && rt.glibc === null) {
    choice.problem = `${build.pkg} needs glibc; this system has none (musl?)`
  } else if (rt.platform === 'linux' && rt.glibc !== null && older(rt.glibc, build.minGlibc)) {
    choice.problem = `${build.pkg} needs glibc >= ${build.minGlibc}, this system has ${rt.glibc}`
  }
  return choice
}

/** The start-up log line, `leaky --version`: `uws 20.57.0, node 24.22.3, glibc 2.41`. */
export function describeChoice(c: UwsChoice): string {
  const uws = c.build === null ? 'none' : (c.version ?? c.build.uws)
  return `uws ${uws}, node ${c.runtime.node}, glibc ${c.runtime.glibc ?? 'none'}`
}

/** Node x glibc → build, for refusals and README. */
export function workingPairs(): string {
  return UWS_BUILDS.map((b) => {
    const abis = Object.keys(b.chosenFor)
    return `Node ${abis.map((a) => b.chosenFor[a]).join('/')} (ABI ${abis.join('/')}) with glibc >= ${b.minGlibc} → uWS ${b.uws} (${b.pkg})`
  }).join('; ')
}

/** Why the start is refused: what runs here, what went wrong, and what would work. */
export function refusal(c: UwsChoice, cause: string | null = c.problem): string {
  const rt = c.runtime
  const what = c.build === null ? 'uWebSockets.js' : `uWS ${c.version ?? c.build.uws} (${c.build.pkg}${c.forced ? ', forced by LEAKY_UWS' : ''})`
  return `cannot load ${what} on Node ${rt.node} (ABI ${rt.abi}), ${rt.platform}-${rt.arch}, glibc ${rt.glibc ?? 'none'}: ${cause ?? 'unknown error'}. ` +
    `Working pairs: ${workingPairs()}; glibc 2.38 is Debian 13, Ubuntu 24.04 or later. LEAKY_UWS=<package> forces a build.`
}
