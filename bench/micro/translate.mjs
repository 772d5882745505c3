// Issue-19 micro measurement: CPU per SSE event of the translation alone, in process, same run: a recorded provider
// stream (../shared/recorded, LEAKY_RECORDED_DIR elsewhere) fed event by event through its usage meter only (what a
// pass-through stream costs the proxy in code of its own) and through meter + translator to OpenAI chunks.
//   node bench/micro/translate.mjs        (EVENTS=100000 per run, 3 runs each; needs dist/: npm run build)
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createMeter } from '../../dist/llm/usage.js'
import { AnthropicToOpenAI } from '../../dist/translate/anthropic-response.js'
import { GeminiToOpenAI } from '../../dist/translate/gemini-response.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const RECORDED = path.resolve(ROOT, process.env.LEAKY_RECORDED_DIR ?? '../shared/recorded')
/** events per measured run, whatever the recording's length */
const EVENTS = Number(process.env.EVENTS ?? 100000)

function events(file) {
  const b = readFileSync(path.join(RECORDED, file))
  return b.toString().split(/(?<=\r\n\r\n|\n\n)/).map((e) => Buffer.from(e))
}

const cases = [
  ['anthropic/messages-sse.sse', 'anthropic-messages', AnthropicToOpenAI],
  ['gemini/stream-thoughts.sse', 'gemini', GeminiToOpenAI],
]

for (const [file, shape, Translator] of cases) {
  const evs = events(file)
  const ITER = Math.ceil(EVENTS / evs.length)
  const run = (translate) => {
    const t0 = process.cpuUsage()
    for (let i = 0; i < ITER; i++) {
      const meter = createMeter(shape, { stream: true, stripUsageChunk: false, model: 'm', promptTokens: 0 })
      const tr = translate ? new Translator({ stream: true, includeUsage: true, model: 'm', id: 'x', meter }) : null
      for (const e of evs) {
        const out = meter.write(e)
        if (tr !== null) tr.write(out)
      }
      meter.end()
      if (tr !== null) tr.end()
      meter.usage()
    }
    const u = process.cpuUsage(t0)
    return ((u.user + u.system) * 1000) / (ITER * evs.length) // ns per event
  }
  run(true)
  run(false) // warm both
  const r = { meter: [], translated: [] }
  for (let k = 0; k < 3; k++) {
    r.meter.push(run(false))
    r.translated.push(run(true))
  }
  const med = (a) => a.sort((x, y) => x - y)[1]
  console.log(`${file.padEnd(28)} ${evs.length} events  meter only ${med(r.meter).toFixed(0)} ns/event  meter + translation ${med(r.translated).toFixed(0)} ns/event  (×${(med(r.translated) / med(r.meter)).toFixed(1)})`)
}
