// config/examples/budgets.yaml run as README shows it (test/config/examples.test.ts checks that it loads and names
// its variables; it runs here to keep that file within its time): a priced request is admitted and its budgets show
// in /metrics, the trial tier's budget is smaller than one default request's worst case and answers 429.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { ROOT, startProxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { SCRATCH_TMP } from '../helpers/scratch.js'

const run = mkdtempSync(path.join(SCRATCH_TMP, 'budgets-example-'))
const { stub, origin } = await startStub({ seed: 1 })
const p = await startProxy(path.join(ROOT, 'config/examples/budgets.yaml'), {
  env: {
    OPENAI_API_KEY: 'sk-upstream-primary', TEAM_A_KEY: 'team-a-demo-key', TRIAL_KEY: 'trial-demo-key',
    LEAKY_LISTEN: '127.0.0.1:0', LEAKY_ADMIN_LISTEN: '127.0.0.1:0', LEAKY_OPENAI_URL: origin,
    LEAKY_STATE_FILE: path.join(run, 'buckets.snap'), LEAKY_RUNTIME_DIR: run, RUNTIME_DIRECTORY: run,
  },
})
t.teardown(async () => {
  await p.stop()
  await stub.close()
})

async function chat(key: string): Promise<{ status: number; body: any }> {
  const res = await request(p.url('/v1/chat/completions'), {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  })
  return { status: res.statusCode, body: await res.body.json() }
}

t.test('budgets.yaml: a priced request is admitted and its budgets show in /metrics; the trial tier gets a 429', async (t) => {
  const ok = await chat('team-a-demo-key')
  t.equal(ok.status, 200)
  const line = await p.waitLog((l) => l.msg === 'access' && l.key_id === 'team-a')
  t.match(line.cost_usd, /^0\.\d{6}$/)
  const trial = await chat('trial-demo-key')
  t.equal(trial.status, 429)
  t.equal(trial.body.error.code, 'LEAKY_BUDGET_EXCEEDED')
  t.match(trial.body.error.message, /budget "trial" exceeded/)
  const m = await (await request(`http://127.0.0.1:${p.adminPort}/metrics`)).body.text()
  t.match(m, /leaky_budget_limit_usd\{budget="org-monthly"\} 500/)
  t.match(m, /leaky_budget_spent_usd\{budget="org-monthly",subject="team-a"\} 0\.\d*[1-9]/)
})
