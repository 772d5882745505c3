// The /status page in a real headless browser: Debian's chromium driven by playwright-core (no browser download).
// Traffic goes through a real proxy while the page is open; the test waits until every chart has drawn data, checks
// the page broke no CSP rule and loaded nothing from elsewhere, and saves a screenshot as a test artifact
// (LEAKY_ARTIFACTS, default .tap/artifacts/status-page.png).
import t from 'tap'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { request, Agent } from 'undici'
import { startProxy, baseConfig, ROOT } from '../helpers/proxy.js'
import { startRedis } from '../helpers/redis.js'

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser']
  .find((p): p is string => p !== undefined && p !== '' && existsSync(p))

let chromium: { launch(o: Record<string, unknown>): Promise<any> } | null = null
try {
  chromium = (createRequire(import.meta.url)('playwright-core') as { chromium: typeof chromium }).chromium
} catch {
  chromium = null
}

if (chromium === null) t.skip('playwright-core is not installed (npm i -D playwright-core)')
else if (CHROMIUM === undefined) t.skip('chromium is not installed (apt-get install chromium); .ci/run installs it')
else {
  const ADMIN = 'page-token-42'
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const proxy = await startProxy(
    baseConfig(`admin: { listen: 127.0.0.1:0, token: "${ADMIN}" }
keys:
  - { id: dashboard-demo, key: "demo-key", metrics_label: true }
redis: { url: "${redis.url}", timeout: 1s }
limits:
  demo-rps: { per: key, requests: 20/s, burst: 5 }
  fleet-rps: { per: global, requests: 1000/s, burst: 1000, scope: cluster }
upstreams:
  stub-openai: { provider: openai, targets: [embedded] }
  stub-gemini: { provider: gemini, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub-openai, auth: key, limits: [demo-rps] }
  - { path: /gemini/, upstream: stub-gemini, strip_prefix: true, limits: [fleet-rps] }
`).replace('admin: { listen: 127.0.0.1:0 }\n', ''),
  )
  // both workers' Redis connections first, and a timeout no loaded machine reaches: a worker still connecting, or a
  // call slower than the default 50 ms, is decided by on_error, which the page would (rightly) show; the assertion
  // below is about a healthy Redis
  await Promise.all([0, 1].map((w) => proxy.waitLog((l) => l.msg === 'redis up' && l.worker === w)))
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
  const agent = new Agent({ connections: 4 })
  t.teardown(async () => {
    await browser.close()
    await agent.close()
    await proxy.stop()
  })

  const openai = (stream: boolean) => request(proxy.url('/v1/chat/completions'), {
    method: 'POST', dispatcher: agent,
    headers: { authorization: 'Bearer demo-key', 'content-type': 'application/json' },
    body: JSON.stringify({ model: stream ? 'gpt-4o' : 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'draw me a chart' }], max_tokens: 40 }),
  }).then((r) => r.body.text())
  const gemini = () => request(proxy.url('/gemini/v1beta/models/gemini-2.0-flash:generateContent'), {
    method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'and a table' }] }] }),
  }).then((r) => r.body.text())

  t.test('the status page draws live data from status.json', async (t) => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
    const problems: string[] = []
    page.on('console', (m: { type(): string; text(): string }) => {
      if (m.type() === 'error') problems.push(m.text())
    })
    page.on('pageerror', (e: Error) => problems.push(e.message))
    const foreign: string[] = []
    page.on('request', (r: { url(): string }) => {
      if (!r.url().startsWith(`http://127.0.0.1:${proxy.adminPort}/`)) foreign.push(r.url())
    })
    // sign in the way a person does: the token once in the address, then the cookie
    const res = await page.goto(`http://127.0.0.1:${proxy.adminPort}/status?token=${ADMIN}`)
    t.equal(res.status(), 200)
    t.equal(new URL(page.url()).search, '', 'the token left the address bar')

    // traffic over a few sampling seconds, including 429s from the per-key limit when the limiter is wired
    // paced (a round every 20 ms, well under a core) so the test does not load the machine it shares
    const stop = Date.now() + 3500
    while (Date.now() < stop) {
      await Promise.all([openai(false), openai(true), openai(false), gemini(), sleep(20)])
    }
    await page.waitForFunction(() => {
      const s = (window as any).leakyStatus
      if (!s || !s.last) return false
      const c = s.charts
      const has = (k: string, i: number) => c[k] && c[k].plot.data[i].some((v: number | null) => v !== null && v > 0)
      return has('requests', 1) && has('latency', 1) && has('latency', 2) && has('tokens', 1) &&
        s.last.upstreams.some((u: any) => u.health === 'ok')
    }, null, { timeout: 10_000 })

    const info = await page.evaluate(() => {
      const s = (window as any).leakyStatus
      const canvases = [...document.querySelectorAll('canvas')].map((c) => ({ w: c.width, h: c.height }))
      return {
        updates: s.updates,
        errors: s.errors,
        tokenLines: s.last.tokens.lines.map((l: any) => `${l.provider} · ${l.model}`),
        upstreamRows: document.querySelectorAll('#t-upstreams tr').length,
        modelRows: document.querySelectorAll('#t-models tr').length,
        canvases,
        legend: [...document.querySelectorAll('.u-legend .u-series th')].map((e) => e.textContent),
        redis: (document.getElementById('fact-redis') as HTMLElement).hidden ? null : document.getElementById('f-redis')!.textContent,
      }
    })
    t.ok(info.updates >= 2, `page refreshed ${info.updates} times`)
    t.equal(info.errors, 0, 'every status.json poll succeeded')
    t.equal(info.canvases.length, 3, 'three charts')
    t.ok(info.canvases.every((c: { w: number; h: number }) => c.w > 200 && c.h > 100), 'charts have a size')
    t.ok(info.tokenLines.includes('openai · gpt-4o-mini'), `tokens/min lines: ${info.tokenLines.join(', ')}`)
    t.ok(info.tokenLines.includes('gemini · gemini-2.0-flash'))
    t.match(String(info.redis), /^up · [1-9][\d,]* decisions · 0 by on_error · 0 failed calls$/, `the Redis fact: ${info.redis}`)
    t.equal(info.upstreamRows, 2)
    t.ok(info.modelRows >= 3)
    t.same(problems, [], 'no console error (a CSP violation would be one)')
    t.same(foreign, [], 'nothing requested from anywhere but the admin listener')

    const dir = process.env.LEAKY_ARTIFACTS ?? path.join(ROOT, '.tap', 'artifacts')
    mkdirSync(dir, { recursive: true })
    const file = path.join(dir, 'status-page.png')
    await page.screenshot({ path: file, fullPage: true })
    t.ok(statSync(file).size > 20_000, `screenshot saved: ${path.relative(ROOT, file)}`)
  })

  t.test('one busy second between quiet ones is drawn on the latency chart (a dot: no neighbour to draw a line to)', async (t) => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
    t.teardown(() => page.close())
    await page.goto(`http://127.0.0.1:${proxy.adminPort}/status?token=${ADMIN}`)
    const p50 = () => page.evaluate(() => {
      const c = (window as any).leakyStatus.charts.latency
      return c ? (c.plot.data[1] as Array<number | null>) : null
    })
    // a quiet second first (the previous test's traffic has stopped), so the burst's second has no busy neighbour
    await page.waitForFunction(() => {
      const c = (window as any).leakyStatus.charts.latency
      return c && c.plot.data[1].length > 0 && c.plot.data[1].at(-1) === null
    }, null, { timeout: 10_000 })
    const quiet = (await p50())!.length
    await Promise.all([openai(false), openai(false), openai(false)])
    // the burst's second, then a quiet one after it
    await page.waitForFunction((from: number) => {
      const d = (window as any).leakyStatus.charts.latency.plot.data[1] as Array<number | null>
      for (let i = Math.max(1, from - 1); i < d.length - 1; i++) if (d[i] !== null && d[i - 1] === null && d[i + 1] === null) return true
      return false
    }, quiet, { timeout: 10_000 })
    // the canvas, where that value sits: the p50 colour (#58a6ff) within a few pixels
    const hit = await page.evaluate(() => {
      const plot = (window as any).leakyStatus.charts.latency.plot
      const d = plot.data[1] as Array<number | null>
      let i = d.length - 2
      while (!(d[i] !== null && d[i - 1] === null && d[i + 1] === null)) i--
      const x = Math.round(plot.valToPos(plot.data[0][i], 'x', true))
      const y = Math.round(plot.valToPos(d[i], 'y', true))
      const p99 = (plot.data[2] as Array<number | null>)[i]
      const y99 = p99 === null ? null : Math.round(plot.valToPos(p99, 'y', true))
      const ctx = (plot.ctx as CanvasRenderingContext2D)
      const px = ctx.getImageData(x - 4, y - 4, 9, 9).data
      let blue = 0
      let orange = 0
      for (let k = 0; k < px.length; k += 4) {
        if (Math.abs(px[k] - 0x58) < 40 && Math.abs(px[k + 1] - 0xa6) < 40 && px[k + 2] > 200) blue++
        if (px[k] > 200 && Math.abs(px[k + 1] - 0x88) < 40 && Math.abs(px[k + 2] - 0x3e) < 40) orange++
      }
      // p99's dot is drawn after p50's: where the two values sit within a dot's size, p99's covers p50's
      const covered = y99 !== null && Math.abs(y99 - y) < 7
      return { value: d[i], p99, blue, orange, covered }
    })
    t.ok(hit.blue > 4 || (hit.covered && hit.orange > 4),
      `p50 ${hit.value} ms drawn: ${hit.blue} p50-coloured pixels around it` +
      (hit.covered ? ` (p99 ${hit.p99} ms on top: ${hit.orange} p99-coloured)` : ''))
  })
}
