// config/examples/frontdoor.yaml works as README ("One endpoint for every provider") says: the proxy started on the
// file itself (listeners on free ports, provider URLs pointed at a local stub through the file's ${env:…:-default}s,
// its keys in the environment). Loading and the named missing variables are checked with every example in
// examples.test.ts; this behaviour case is a file of its own so that file stays within its time budget.
import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import path from 'node:path'
import { request } from 'undici'
import { ROOT, startProxy, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { scratchDir } from '../helpers/scratch.js'
import type { StubRequestEvent } from '../../src/stub/server.js'

const NEEDS = { OPENAI_API_KEY: 'sk-upstream-primary', ANTHROPIC_API_KEY: 'sk-ant-upstream', GEMINI_API_KEY: 'gemini-upstream', DASHSCOPE_API_KEY: 'sk-dashscope-upstream' }

async function startExample(t: Test, file: string, env: Record<string, string>): Promise<Proxy> {
  const run = scratchDir('run-')
  const p = await startProxy(path.join(ROOT, 'config/examples', file), {
    env: { ...NEEDS, LEAKY_LISTEN: '127.0.0.1:0', LEAKY_ADMIN_LISTEN: '127.0.0.1:0', LEAKY_RUNTIME_DIR: run, RUNTIME_DIRECTORY: run, ...env },
  })
  t.teardown(() => p.stop())
  return p
}

t.test('frontdoor.yaml: one OpenAI endpoint, each model to its provider with its own key; smart falls back to Gemini', async (t) => {
  const { stub, origin } = await startStub({ seed: 3 })
  t.teardown(() => stub.close())
  const seen: StubRequestEvent[] = []
  stub.on('request', (e: StubRequestEvent) => seen.push(e))
  const closed = net.createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const dead = `http://127.0.0.1:${(closed.address() as net.AddressInfo).port}`
  closed.close() // nothing listens there any more: Anthropic refuses connections
  const p = await startExample(t, 'frontdoor.yaml', { LEAKY_OPENAI_URL: origin, LEAKY_GEMINI_URL: origin, LEAKY_QWEN_URL: `${origin}/compatible-mode`, LEAKY_ANTHROPIC_URL: dead })
  const ask = async (model: string) => {
    const r = await request(p.url('/v1/chat/completions'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }) })
    return { status: r.statusCode, body: (await r.body.json()) as any }
  }
  for (const [model, path, key, value] of [
    ['gpt-4o-mini', '/v1/chat/completions', 'authorization', 'Bearer sk-upstream-primary'],
    ['gemini-2.5-flash', '/v1beta/models/gemini-2.5-flash:generateContent', 'x-goog-api-key', 'gemini-upstream'],
    ['qwen-plus', '/compatible-mode/v1/chat/completions', 'authorization', 'Bearer sk-dashscope-upstream'],
    ['smart', '/v1beta/models/gemini-2.5-pro:generateContent', 'x-goog-api-key', 'gemini-upstream'],
  ]) {
    const r = await ask(model)
    t.equal(r.status, 200, model)
    t.equal(r.body.object, 'chat.completion', `${model}: OpenAI-shaped`)
    const last = seen[seen.length - 1]
    t.equal(last.url.split('?')[0], path, `${model}: its provider's API`)
    t.equal(last.headers[key], value, `${model}: that provider's key`)
  }
  const models = await request(p.url('/v1/models'))
  t.same(((await models.body.json()) as any).data.map((m: any) => m.id), ['gpt-*', 'o3*', 'claude-*', 'gemini-*', 'qwen-*', 'fast', 'smart'])
  const line = await p.waitLog((l) => l.msg === 'access' && Array.isArray(l.models) && (l.models as string[]).length === 2)
  t.same(line.models, ['anthropic/claude-sonnet-4-5', 'gemini/gemini-2.5-pro'])
  const missing = await ask('llama-3')
  t.equal(missing.status, 404)
  t.equal(missing.body.error.code, 'model_not_found')
})
