// The tools the suite needs besides Node (test/setup.sh lists them and installs them): each missing one fails here,
// by name, with the command that installs it — instead of a spawn ENOENT inside some Redis or browser test.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { ROOT } from './helpers/proxy.js'

const r = spawnSync('bash', [path.join(ROOT, 'test/setup.sh'), '--check'], { cwd: ROOT, encoding: 'utf8' })
const lines = r.stdout.split('\n').filter((l) => l !== '')

t.test('test/setup.sh --check lists every tool', async (t) => {
  t.equal(r.stderr, '', 'no complaint on stderr')
  t.ok(lines.length > 0, 'one line per tool')
  const bad = lines.filter((l) => !/^(ok \S+ \/\S+|missing \S+ \(apt package \S+\))$/.test(l))
  t.same(bad, [], 'every line is "ok TOOL PATH" or "missing TOOL (apt package PACKAGE)"')
})

for (const line of lines) {
  const m = /^(ok|missing) (\S+) (?:(\/\S+)|\(apt package (\S+)\))$/.exec(line)
  if (m === null) continue
  const [, state, tool, where, pkg] = m
  t.test(tool, async (t) => {
    if (state === 'ok') t.pass(`${tool}: ${where}`)
    else t.fail(`${tool} is not installed: as root, \`npm run test:all\` installs it (apt-get install ${pkg}); ` +
      'or install it yourself and run `npm test` again')
  })
}
