// The Dockerfile, checked without a Docker engine: it is parsed, and every property the image promises is checked
// against the repository, so it stays buildable by construction (files it copies exist and are not ignored,
// scripts it runs exist, production dependencies need no install script). Its default config (the sed over the
// shipped one) is generated and validated, and its HEALTHCHECK command is run against a proxy started on it.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { parseConfig, formatIssue } from '../../src/config/index.js'
import { ROOT, startProxy } from '../helpers/proxy.js'
import { tempDir } from '../fixtures/supervisor/master.js'
import { chooseUws, describeChoice } from '../../src/server/uws-choice.js'

interface Instr {
  stage: number
  op: string
  args: string
}

/** Instructions with their stage index; continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Instr[] {
  const out: Instr[] = []
  let stage = -1
  let cur = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (cur === '' && (line === '' || line.startsWith('#'))) continue
    if (line.startsWith('#')) continue
    cur += (cur === '' ? '' : ' ') + line.replace(/\\$/, '').trim()
    if (line.endsWith('\\')) continue
    const m = /^(\S+)\s*(.*)$/.exec(cur)!
    const op = m[1].toUpperCase()
    if (op === 'FROM') stage++
    out.push({ stage, op, args: m[2] })
    cur = ''
  }
  return out
}

const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
const ins = parseDockerfile(dockerfile)
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
const last = Math.max(...ins.map((i) => i.stage))
const inStage = (s: number, op: string) => ins.filter((i) => i.stage === s && i.op === op)
const final = (op: string) => inStage(last, op)

/** ARGs declared before the first FROM, with their defaults: what `${NAME}` means in a FROM line. */
const globalArgs = new Map(ins.filter((i) => i.stage === -1 && i.op === 'ARG').map((i) => i.args.split('=') as [string, string]))
const expand = (s: string, args: Map<string, string> = globalArgs) => s.replace(/\$\{(\w+)\}/g, (_, n: string) => args.get(n) ?? `\${${n}}`)

/** Debian release of an official node image tag → its glibc (what uWS 20.57's binaries need 2.38 of). */
const GLIBC: Record<string, string> = { bookworm: '2.36', trixie: '2.41' }
const ABI: Record<string, string> = { 20: '115', 22: '127', 24: '137' }

t.test('multi-stage on Node 24 / Debian 13 (uWS 20.57): build with dev dependencies, run with production ones only', async (t) => {
  const froms = ins.filter((i) => i.op === 'FROM')
  t.ok(froms.length >= 2, 'at least a build and a runtime stage')
  t.equal(globalArgs.get('NODE_IMAGE'), 'node:24-trixie-slim')
  for (const f of froms) t.match(expand(f.args), /^node:24-trixie-slim\b/, 'both stages on the same base (native modules built and run alike)')
  t.match(froms[0].args, /AS build$/i)
  const buildRuns = inStage(0, 'RUN').map((r) => r.args)
  t.ok(buildRuns.some((r) => /npm ci\b/.test(r) && !/--omit=dev/.test(r)), 'build: npm ci with dev dependencies')
  const script = buildRuns.map((r) => /npm run (\S+)/.exec(r)?.[1]).find((s) => s !== undefined)
  t.ok(script !== undefined && pkg.scripts[script] !== undefined, `build: npm run ${script} exists in package.json`)
  t.match(pkg.scripts[script!], /tsc -p tsconfig\.build\.json/)
  const outDir = (JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string } }).compilerOptions.outDir
  t.equal(outDir, 'dist')
  const depsStage = froms.findIndex((f) => /AS deps$/i.test(f.args))
  t.ok(depsStage > 0, 'a deps stage')
  const depsRuns = inStage(depsStage, 'RUN').map((r) => r.args)
  t.ok(depsRuns.some((r) => /npm ci\b.*--omit=dev/.test(r)), 'deps: production dependencies only')
  t.ok(depsRuns.some((r) => /npm rebuild better-sqlite3 --build-from-source/.test(r) && /require\('better-sqlite3'\)/.test(r)), 'deps: better-sqlite3 built from source and loaded')
  t.ok(depsRuns.some((r) => /apt-get install .*\bg\+\+/.test(r)), 'deps: the compiler it needs')
  const copies = final('COPY').map((c) => c.args)
  t.ok(copies.some((c) => /^--from=deps \/app\/node_modules \.\/node_modules$/.test(c)), 'runtime gets the production node_modules from the deps stage')
  t.notOk(final('RUN').some((r) => /apt-get install/.test(r.args)), 'no compiler in the runtime image')
  t.ok(copies.some((c) => /^--from=build \/app\/dist \.\/dist$/.test(c)), 'runtime gets the compiled dist/ from the build stage')
  t.equal(inStage(0, 'WORKDIR')[0]?.args, '/app')
})

t.test('the default base and the documented Node 20 alternative each get a uWS build that loads there', async (t) => {
  const alt = /--build-arg NODE_IMAGE=(\S+)/.exec(dockerfile)?.[1]
  t.equal(alt, 'node:20-bookworm-slim', 'the Node 20 on Debian 12 alternative is documented in the Dockerfile')
  for (const image of [globalArgs.get('NODE_IMAGE')!, alt!]) {
    const m = /^node:(\d+)-(\w+)-slim$/.exec(image)!
    const c = chooseUws({}, { node: `${m[1]}.0.0`, abi: ABI[m[1]], platform: 'linux', arch: 'x64', glibc: GLIBC[m[2]] })
    t.equal(c.problem, null, `${image}: ${describeChoice(c)}`)
    t.equal(c.build?.uws, m[1] === '20' ? '20.30.0' : '20.57.0', image)
  }
  // and the combination README warns about: Node 24 on Debian 12 has no build that loads
  t.match(chooseUws({}, { node: '24.0.0', abi: '137', platform: 'linux', arch: 'x64', glibc: GLIBC.bookworm }).problem, /needs glibc >= 2\.38/)
})

t.test('--ignore-scripts is safe: the one required production dependency with an install script is rebuilt explicitly', async (t) => {
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; hasInstallScript?: boolean; optional?: boolean }> }
  const scripted = Object.entries(lock.packages).filter(([name, p]) => name !== '' && p.hasInstallScript === true && p.dev !== true)
  // optional ones are accelerators of `ws`, which uWebSockets.js uses only in the pure-JS fallback leaky refuses
  // to run on (bufferutil, utf-8-validate); without their install script they are simply not used
  // better-sqlite3 (runtime keys) is a native addon the deps stage builds from source (previous test)
  t.same(scripted.filter(([, p]) => p.optional !== true).map(([n]) => n), ['node_modules/better-sqlite3'])
  for (const [name, p] of scripted) {
    if (p.optional === true) t.ok(['node_modules/bufferutil', 'node_modules/utf-8-validate'].includes(name), `${name}: optional, fallback only`)
  }
})

t.test('everything copied from the context exists and is not excluded by .dockerignore', async (t) => {
  const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  const sources = ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1))
  t.ok(sources.length >= 4)
  for (const src of sources) {
    t.ok(existsSync(path.join(ROOT, src)), `${src} exists`)
    t.notOk(ignore.some((p) => p === src || src.startsWith(`${p}/`)), `${src} is not in .dockerignore`)
  }
  for (const heavy of ['node_modules', 'dist', '.git']) t.ok(ignore.includes(heavy), `${heavy} stays out of the context`)
})

t.test('non-root, ports, healthcheck on /live, SIGTERM, config path, entry point', async (t) => {
  const user = final('USER').at(-1)?.args
  t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `runs as ${user}`)
  const exposed = final('EXPOSE').flatMap((e) => e.args.split(/\s+/))
  t.ok(exposed.includes('8080') && exposed.includes('9090'), 'EXPOSE 8080 9090')
  t.match(final('HEALTHCHECK')[0]?.args ?? '', /\/live/)
  t.equal(final('STOPSIGNAL')[0]?.args, 'SIGTERM')
  t.match(final('ENV').map((e) => e.args).join(' '), /LEAKY_CONFIG=\/etc\/leaky\/leaky\.yaml/)
  t.same(JSON.parse(final('ENTRYPOINT')[0].args), ['node', 'dist/cli/main.js'])
  t.same(JSON.parse(final('CMD')[0].args), ['start'])
  t.ok(existsSync(path.join(ROOT, 'src/cli/main.ts')), 'dist/cli/main.js is the build of src/cli/main.ts')
})

/** The image's /etc/leaky/leaky.yaml: the sed of the Dockerfile applied to config/leaky.yaml, here. */
function imageConfig(t: { equal(a: unknown, b: unknown, message?: string): unknown }): string {
  const run = final('RUN').map((r) => r.args).find((r) => r.includes('/etc/leaky/leaky.yaml'))!
  const exprs = [...run.matchAll(/-e '([^']+)'/g)].map((m) => m[1])
  t.equal(exprs.length, 3)
  const shipped = readFileSync(path.join(ROOT, 'config/leaky.yaml'), 'utf8')
  for (const e of exprs) {
    const pattern = e.split('|')[1]
    t.equal(shipped.split('\n').filter((l) => new RegExp(pattern).test(l)).length, 1, `sed pattern ${pattern} matches one line of config/leaky.yaml`)
  }
  return execFileSync('sed', [...exprs.flatMap((e) => ['-e', e]), path.join(ROOT, 'config/leaky.yaml')], { encoding: 'utf8' })
}

t.test('the image\'s default config is valid and takes its listen addresses and log level from the environment', async (t) => {
  const yaml = imageConfig(t)
  const plain = parseConfig(yaml, 'leaky.yaml', {})
  t.ok(plain.ok, plain.ok ? '' : plain.issues.map(formatIssue).join('\n'))
  if (plain.ok) t.same([plain.config.listen, plain.config.admin.listen, plain.config.log.level], ['0.0.0.0:8080', '127.0.0.1:9090', 'info'])
  const env = { LEAKY_LISTEN: '0.0.0.0:8181', LEAKY_ADMIN_LISTEN: '0.0.0.0:9191', LEAKY_LOG_LEVEL: 'warn' }
  const over = parseConfig(yaml, 'leaky.yaml', env)
  t.ok(over.ok)
  if (over.ok) t.same([over.config.listen, over.config.admin.listen, over.config.log.level], ['0.0.0.0:8181', '0.0.0.0:9191', 'warn'])
})

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

t.test('HEALTHCHECK passes against the proxy running the image\'s config, fails when it is down', async (t) => {
  const dir = tempDir()
  const file = path.join(dir, 'leaky.yaml')
  writeFileSync(file, `pid_file: ${path.join(dir, 'leaky.pid')}\n${imageConfig(t)}`)
  const admin = `127.0.0.1:${await freePort()}`
  const env = { LEAKY_LISTEN: '127.0.0.1:0', LEAKY_ADMIN_LISTEN: admin }
  const check = JSON.parse(final('HEALTHCHECK')[0].args.replace(/^.*?CMD\s+/, '')) as string[]
  t.equal(check[0], 'node')
  const proxy = await startProxy(file, { env })
  t.equal(proxy.adminPort, Number(admin.split(':')[1]), 'admin listener from LEAKY_ADMIN_LISTEN')
  const up = spawnSync(process.execPath, check.slice(1), { env: { ...process.env, ...env }, timeout: 10_000 })
  t.equal(up.status, 0, 'healthy')
  t.equal(await proxy.stop(), 0)
  const down = spawnSync(process.execPath, check.slice(1), { env: { ...process.env, ...env }, timeout: 10_000 })
  t.equal(down.status, 1, 'unhealthy once stopped')
})
