// README runs as written. Every ```yaml block is a file under config/examples/ (named in its first line), byte for
// byte; every `leaky` command it shows names a real subcommand and real flags; shell blocks call `npx leaky` (never a
// bare `leaky`, which is not on PATH in a checkout), and `npm run`, `node`, `npx tap` and `bash` name scripts and files
// that exist; every repository path it names exists; the sample outputs are the program's; the Quick start is two
// separate steps whose test command is the one .ci/run runs; and the curl commands of the Quick start and of the
// first real config get the answers README says, from a proxy started on the config they are shown with.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { request } from 'undici'
import { CLI, ROOT, startProxy, writeConfig, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> }

interface Block {
  lang: string
  text: string
  /** 1-based line of the opening fence */
  line: number
  /** the `##` section it is in */
  section: string
}

function blocks(md: string): Block[] {
  const out: Block[] = []
  const lines = md.split('\n')
  let section = ''
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('## ')) section = lines[i].slice(3)
    const open = /^```(\S*)$/.exec(lines[i])
    if (open === null) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i])
    out.push({ lang: open[1], text: body.join('\n'), line: start + 1, section })
  }
  return out
}

const all = blocks(README)
const sh = all.filter((b) => b.lang === 'sh')

t.test('every yaml block is a file under config/examples/, byte for byte, and every example is shown', async (t) => {
  const yaml = all.filter((b) => b.lang === 'yaml')
  t.ok(yaml.length > 0)
  const shown: string[] = []
  for (const b of yaml) {
    const m = /^# (config\/examples\/[\w.-]+)(?: |$)/.exec(b.text)
    if (!t.ok(m, `README.md:${b.line}: a yaml block's first line names its file ("# config/examples/NAME …")`) || m === null) continue
    const file = path.join(ROOT, m[1])
    if (!t.ok(existsSync(file), `README.md:${b.line}: ${m[1]} exists`)) continue
    t.equal(`${b.text}\n`, readFileSync(file, 'utf8'), `README.md:${b.line} is ${m[1]} verbatim`)
    shown.push(path.basename(m[1]))
  }
  t.same(shown.slice().sort(), readdirSync(path.join(ROOT, 'config/examples')).sort(), 'each example once')
})

// --- commands ---------------------------------------------------------------------------------------------------

const helpCache = new Map<string, string>()
function help(words: string[]): { ok: boolean; text: string } {
  const key = words.join(' ')
  if (!helpCache.has(key)) {
    const r = spawnSync(process.execPath, [CLI, ...words, '--help'], { cwd: ROOT, encoding: 'utf8' })
    helpCache.set(key, r.status === 0 ? r.stdout : '')
  }
  const text = helpCache.get(key)!
  return { ok: text !== '', text }
}

function subcommands(helpText: string): string[] {
  const i = helpText.indexOf('\nCommands:\n')
  if (i < 0) return []
  return helpText.slice(i + 11).split('\n').map((l) => /^ {2}([a-z][\w-]*)/.exec(l)?.[1]).filter((w): w is string => w !== undefined)
}

/** The words of a leaky command line as README writes it: markdown escapes and optional brackets removed. */
function words(cmd: string): string[] {
  return cmd.replace(/\\\|/g, '|').replace(/[[\]]/g, ' ').split(/\s+/).filter((w) => w !== '')
}

/** Every `leaky …` invocation in README: code block lines (comments cut) and inline code spans. */
function invocations(): Array<{ where: string; cmd: string[] }> {
  const out: Array<{ where: string; cmd: string[] }> = []
  const lines = README.split('\n')
  const inBlock = new Set<number>()
  for (const b of all) for (let i = 0; i <= b.text.split('\n').length + 1; i++) inBlock.add(b.line - 1 + i)
  lines.forEach((line, i) => {
    const where = `README.md:${i + 1}`
    if (inBlock.has(i)) {
      // in a sample (a block without a language) only the `$ command` lines are commands, the rest is output
      const block = all.find((b) => i >= b.line - 1 && i <= b.line + b.text.split('\n').length)!
      if (block.lang === '' && !line.startsWith('$ ')) return
      const code = line.replace(/^\$ /, '').replace(/\s#.*$/, '')
      // a command: at the start of the line, after a pipe or list operator, or after npx (not `kubectl -n leaky …`)
      for (const m of code.matchAll(/(?:^\s*|[|&;(]\s*|\bnpx )leaky ([^|&;)]*)/g)) out.push({ where, cmd: words(m[1]) })
      return
    }
    for (const span of line.matchAll(/`([^`]+)`/g)) {
      const m = /^(?:npx )?leaky (.*)$/.exec(span[1])
      if (m !== null) out.push({ where, cmd: words(m[1]) })
    }
  })
  return out
}

t.test('every leaky command README shows is a real subcommand with real flags', async (t) => {
  const found = invocations()
  t.ok(found.length > 20, `${found.length} leaky commands found`)
  for (const { where, cmd } of found) {
    const path: string[] = []
    for (const w of cmd) {
      if (w.startsWith('-') || !subcommands(help(path).text).includes(w)) break
      path.push(w)
    }
    if (cmd[0] !== '--help' && cmd[0] !== '--version') t.ok(path.length > 0, `${where}: \`leaky ${cmd.join(' ')}\` names a subcommand`)
    const h = help(path)
    for (const w of cmd) {
      const flag = /^(--?[A-Za-z][\w-]*)/.exec(w)?.[1]
      if (flag === undefined) continue
      const known = flag === '--help' || new RegExp(`(^|[\\s,])${flag}([\\s,=]|$)`, 'm').test(h.text)
      t.ok(known, `${where}: \`leaky ${path.join(' ')}\` has ${flag}`)
    }
  }
})

t.test('shell blocks run from a checkout: npx leaky, existing scripts and files', async (t) => {
  for (const b of sh) {
    b.text.split('\n').forEach((raw, i) => {
      const where = `README.md:${b.line + 1 + i}`
      const line = raw.replace(/\s#.*$/, '').trim()
      if (line === '' || line.startsWith('#')) return
      t.notOk(/(^|[|&;(]\s*)leaky /.test(line), `${where}: \`npx leaky\`, not a bare \`leaky\` (not on PATH in a checkout): ${line}`)
      for (const m of line.matchAll(/\bnpm run ([\w:-]+)/g)) t.ok(pkg.scripts[m[1]], `${where}: npm script ${m[1]} exists`)
      for (const m of line.matchAll(/\bnpm (start|test)\b/g)) t.ok(pkg.scripts[m[1]], `${where}: npm script ${m[1]} exists`)
      for (const m of line.matchAll(/(?:^|\s)(?:node|bash|npx tap) ((?:\.\/)?(?:src|test|bench|dist|config|systemd|\.ci)\/\S+)/g)) {
        t.ok(existsSync(path.join(ROOT, m[1])), `${where}: ${m[1]} exists`)
      }
    })
  }
})

t.test('every repository path README names exists', async (t) => {
  const paths = new Set<string>()
  for (const m of README.matchAll(/(?:^|[\s`(\[])((?:src|test|config|systemd|bench|dist|\.ci)\/[\w./-]*[\w-])/gm)) paths.add(m[1])
  t.ok(paths.size > 30, `${paths.size} paths`)
  for (const p of paths) t.ok(existsSync(path.join(ROOT, p)), `${p} exists`)
})

t.test('`npx leaky` works in a checkout after npm ci: the bin is the built CLI, built by prepare', async (t) => {
  t.equal(pkg.bin.leaky, 'dist/cli/main.js')
  t.match(pkg.scripts.prepare, /tsc -p tsconfig\.build\.json/, 'npm ci builds dist/')
  t.match(readFileSync(path.join(ROOT, 'src/cli/main.ts'), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the CLI starts with a node shebang')
  const v = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' })
  const [version, ...build] = v.stdout.trim().split(' ')
  t.equal(version, JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version)
  t.match(build.join(' '), /^\(uws \d+\.\d+\.\d+, node \d+\.\d+\.\d+, glibc \S+\)$/, 'and the uWS build chosen for this Node')
})

// --- the Quick start --------------------------------------------------------------------------------------------

const quick = sh.filter((b) => b.section === 'Quick start')

t.test('Quick start: start in one block, the test command in another, the one .ci/run runs', async (t) => {
  const code = (b: Block) => b.text.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '')
  const start = quick.findIndex((b) => code(b).includes('npx leaky start'))
  const test = quick.findIndex((b) => code(b).some((l) => l.startsWith('npm run test')))
  t.ok(start >= 0 && test > start, 'starting the proxy comes first, the tests after it')
  if (start < 0 || test <= start) return
  t.same(code(quick[start]), ['npm ci', 'npx leaky start'], 'step 1: install and start, nothing after the command that holds the shell')
  const cmd = code(quick[test])
  t.same(cmd, ['npm run test:all'], 'step 2: one command')
  const between = README.split('\n').slice(quick[start].line, quick[test].line).join('\n')
  t.match(between, /another shell/, 'step 2 says it runs in another shell')
  t.match(readFileSync(path.join(ROOT, '.ci/run'), 'utf8'), `\n${cmd[0]} -- --reporter=tap `, '.ci/run runs README\'s test command')
  t.match(pkg.scripts['test:all'], /^bash test\/setup\.sh && npm test --$/, 'test:all = install what is missing, then npm test')
})

/** The curl commands of a block as requests: method, path, headers, body. */
function curls(b: Block): Array<{ url: string; method: string; headers: Record<string, string>; body?: string }> {
  const out: Array<{ url: string; method: string; headers: Record<string, string>; body?: string }> = []
  for (const cmd of b.text.replace(/\\\n/g, ' ').split('\n')) {
    const argv = shellWords(cmd.replace(/\s#.*$/, ''))
    if (argv[0] !== 'curl') continue
    const r: (typeof out)[number] = { url: '', method: 'GET', headers: {} }
    for (let i = 1; i < argv.length; i++) {
      if (argv[i] === '-H') {
        const h = argv[++i]
        const c = h.indexOf(':')
        r.headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim()
      } else if (argv[i] === '-d') {
        r.body = argv[++i]
        r.method = 'POST'
      } else if (argv[i] === '-N' || argv[i] === '-i') {
        // stream / show headers: how curl prints, not what it sends
      } else if (argv[i].startsWith('-')) {
        throw new Error(`README.md:${b.line}: curl option ${argv[i]} is not understood by this test`)
      } else r.url = argv[i]
    }
    out.push(r)
  }
  return out
}

/** Split a shell line into words: single and double quotes, no expansions (README's curl lines need none). */
function shellWords(line: string): string[] {
  const out: string[] = []
  let cur: string | null = null
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === "'" || c === '"') {
      const j = line.indexOf(c, i + 1)
      cur = (cur ?? '') + line.slice(i + 1, j)
      i = j
    } else if (/\s/.test(c)) {
      if (cur !== null) out.push(cur)
      cur = null
    } else cur = (cur ?? '') + c
  }
  if (cur !== null) out.push(cur)
  return out
}

async function replay(p: Proxy, req: ReturnType<typeof curls>[number]): Promise<{ status: number; type: string; body: string }> {
  const m = /^localhost:(8080|9090)(\/.*)$/.exec(req.url)
  if (m === null) throw new Error(`curl ${req.url}: README's curls go to localhost:8080 (proxy) or localhost:9090 (admin)`)
  const port = m[1] === '8080' ? p.port : p.adminPort
  const res = await request(`http://127.0.0.1:${port}${m[2]}`, { method: req.method, headers: req.headers, body: req.body })
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), body: await res.body.text() }
}

function runtimeEnv(t: Test): Record<string, string> {
  const run = mkdtempSync(path.join(tmpdir(), 'leaky-readme-'))
  t.teardown(() => rmSync(run, { recursive: true, force: true }))
  return { LEAKY_RUNTIME_DIR: run, RUNTIME_DIRECTORY: run }
}

t.test('Quick start: every curl gets its answer from the shipped config; the status sample is what status prints', async (t) => {
  const shipped = readFileSync(path.join(ROOT, 'config/leaky.yaml'), 'utf8')
  t.match(shipped, /^listen: 0\.0\.0\.0:8080$/m)
  t.match(shipped, /^ {2}listen: 127\.0\.0\.1:9090/m)
  const file = writeConfig(shipped.replace(/^listen: 0\.0\.0\.0:8080$/m, 'listen: 127.0.0.1:0').replace(/^( {2}listen:) 127\.0\.0\.1:9090/m, '$1 127.0.0.1:0'))
  t.teardown(() => rmSync(path.dirname(file), { recursive: true, force: true }))
  const p = await startProxy(file, { env: runtimeEnv(t) })
  t.teardown(() => p.stop())

  const reqs = quick.flatMap(curls)
  t.equal(reqs.length, 5, 'the five curls of the Quick start')
  for (const req of reqs) {
    const r = await replay(p, req)
    t.equal(r.status, 200, `curl ${req.url}: 200`)
    if (req.body?.includes('"stream":true') || req.url.includes('alt=sse')) t.match(r.type, 'text/event-stream', 'a stream')
    else t.match(r.type, 'application/json')
  }

  // the status sample: same lines, numbers, durations and the config path aside
  const sample = all.find((b) => b.text.startsWith('$ npx leaky status\n'))
  if (!t.ok(sample, 'README has a `leaky status` sample') || sample === undefined) return
  const ready = await p.waitLog((l) => l.msg === 'ready' && l.role === 'master')
  const real = spawnSync(process.execPath, [CLI, 'status', '--pid', String(ready.pid)], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...runtimeEnv(t) } })
  t.equal(real.status, 0, real.stderr)
  const shape = (s: string) => s.split('\n').filter((l) => l !== '' && !l.startsWith('warning: ')).map((l) =>
    l.replace(/config \S+/, 'config FILE').replace(/\d+(ms|s|m|h|d)\b/g, 'T').replace(/\d+/g, 'N').replace(/\s+/g, ' '))
  t.same(shape(real.stdout), shape(sample.text.split('\n').slice(1).join('\n')), 'README\'s status sample has the lines status prints')
})

t.test('the first real config: its commands and curls work as README says', async (t) => {
  const first = sh.filter((b) => b.section === 'Your first real config')
  const setup = first.find((b) => b.text.includes('npx leaky start -c config/examples/openai.yaml'))
  if (!t.ok(setup, 'a block starts the proxy on config/examples/openai.yaml') || setup === undefined) return
  // the environment README's block sets (the OpenAI key is read from the terminal: any value does here)
  const env: Record<string, string> = { OPENAI_API_KEY: 'sk-read-from-the-terminal' }
  const exp = /^export (.+)$/m.exec(setup.text)
  t.ok(exp, 'it exports the client keys')
  for (const a of shellWords(exp?.[1] ?? '')) env[a.slice(0, a.indexOf('='))] = a.slice(a.indexOf('=') + 1)
  t.match(setup.text, /^read -rsp '[^']+' OPENAI_API_KEY && export OPENAI_API_KEY$/m, 'it reads the OpenAI key without echoing it')

  const v = spawnSync(process.execPath, [CLI, 'validate', '-c', 'config/examples/openai.yaml'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } })
  t.equal(v.status, 0, `validate: ${v.stderr}`)

  const { stub, origin } = await startStub({ seed: 1 })
  t.teardown(() => stub.close())
  const p = await startProxy(path.join(ROOT, 'config/examples/openai.yaml'), {
    env: { ...env, ...runtimeEnv(t), LEAKY_LISTEN: '127.0.0.1:0', LEAKY_ADMIN_LISTEN: '127.0.0.1:0', LEAKY_OPENAI_URL: origin },
  })
  t.teardown(() => p.stop())
  const reqs = first.flatMap(curls)
  // README: the first goes to OpenAI as team-a-bot, the second has no key (401), the third is the anonymous stub
  t.same(reqs.map((r) => r.url), ['localhost:8080/v1/chat/completions', 'localhost:8080/v1/models', 'localhost:8080/stub/v1/chat/completions'])
  const got = []
  for (const req of reqs) got.push((await replay(p, req)).status)
  t.same(got, [200, 401, 200])
  await p.waitLog((l) => l.msg === 'access' && l.route === '/stub/')
  await p.waitLog(() => p.access().length >= 3)
  // two workers log independently: a line can land after the next request's (served by the other worker)
  const key = (x: unknown[]) => JSON.stringify(x)
  t.same(p.access().map((l) => [l.route, l.key_id ?? null, l.upstream ?? null, l.status]).sort((a, b) => key(a).localeCompare(key(b))), [
    ['/v1/', 'team-a-bot', 'openai', 200], ['/v1/', null, 'openai', 401], ['/stub/', null, 'stub', 200],
  ].sort((a, b) => key(a).localeCompare(key(b))))
})

// --- sample outputs ---------------------------------------------------------------------------------------------

t.test('sample outputs of validate and key hash are what the program prints', async (t) => {
  const samples = all.filter((b) => b.lang === '' && /^\$ (printf %s \S+ \| )?npx leaky (validate|key hash)/.test(b.text))
  t.ok(samples.length >= 3, `${samples.length} samples`)
  // as in a fresh shell: none of the examples' variables set
  const env = { ...process.env }
  for (const k of ['OPENAI_API_KEY', 'OPENAI_BACKUP_API_KEY', 'TEAM_A_KEY', 'TEAM_B_KEY', 'LEAKY_TEST_MISSING_KEY']) delete env[k]
  for (const b of samples) {
    const [first, ...want] = b.text.split('\n')
    const cmd = first.slice(2).replace(/\s+#.*$/, '').replace('npx leaky', `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)}`)
    const r = spawnSync('sh', ['-c', `${cmd} 2>&1`], { cwd: ROOT, encoding: 'utf8', env })
    t.equal(r.stdout, `${want.join('\n')}\n`, `README.md:${b.line}: ${first}`)
  }
})

t.test('a newcomer reads: Quick start, the first real config, CLI and operations; the code pointer before them', async (t) => {
  const sections = README.split('\n').filter((l) => l.startsWith('## ')).map((l) => l.slice(3))
  t.same(sections.slice(0, 3), ['Quick start', 'Your first real config', 'CLI and operations'])
  const intro = README.slice(0, README.indexOf('\n## '))
  for (const f of ['src/server/stages/limit.ts', 'src/server/stages/forward.ts', 'src/server/stages/stream.ts', 'src/server/stages/account.ts']) {
    t.match(intro, f, `the introduction points at ${f}`)
  }
})
