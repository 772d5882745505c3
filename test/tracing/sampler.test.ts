// The head sampler: the same decision as the OpenTelemetry SDK's TraceIdRatioBased / ParentBased samplers for the
// same trace id, a share within statistical bounds over 10 000 random trace ids, and the config → env → default
// precedence. Also the tracing section's YAML: accepted, defaulted, and rejected with file:line:col.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ROOT_CONTEXT, trace, TraceFlags, SpanKind } from '@opentelemetry/api'
import { ParentBasedSampler, SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base'
import { compileSampler, sampled, DEFAULT_RATIO } from '../../src/tracing/sampler.js'
import { parseConfig, formatIssue, redact, type Config } from '../../src/config/index.js'
import { tracesUrl } from '../../src/tracing/export.js'

type Section = NonNullable<Config['tracing']>
function section(yaml: string, env: NodeJS.ProcessEnv = {}): Section | string[] {
  const r = parseConfig(`tracing: ${yaml}\n`, 'c.yaml', env)
  return r.ok ? r.config.tracing! : r.issues.map(formatIssue)
}

const ids = Array.from({ length: 10_000 }, () => randomBytes(16).toString('hex'))

t.test('same decisions as the SDK samplers, for new and continued traces', async (t) => {
  for (const ratio of [0, 0.01, 0.25, 0.5, 1]) {
    const mine = compileSampler({ ...(section(`{ sample: ${ratio}, parent_based: true }`) as Section) }, {})
    const sdk = new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) })
    let differ = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]
      // a third new traces, a third continued sampled, a third continued not sampled
      const kind = i % 3
      const parentFlags = kind === 0 ? -1 : kind === 1 ? 1 : 0
      const ctx = kind === 0 ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, {
        traceId: id, spanId: 'b7ad6b7169203331', isRemote: true, traceFlags: kind === 1 ? TraceFlags.SAMPLED : TraceFlags.NONE,
      })
      const want = sdk.shouldSample(ctx, id, 'x', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED
      if (sampled(mine, id, parentFlags) !== want) differ++
    }
    t.equal(differ, 0, `ratio ${ratio}: every decision as the SDK's`)
  }
})

t.test('the sampled share stays within 4.5 standard deviations over 10 000 trace ids', async (t) => {
  for (const ratio of [0.01, 0.1, 0.5]) {
    const p = compileSampler(section(`{ sample: ${ratio} }`) as Section, {})
    let k = 0
    for (const id of ids) if (sampled(p, id, -1)) k++
    const mean = ids.length * ratio
    const sd = Math.sqrt(ids.length * ratio * (1 - ratio))
    t.ok(Math.abs(k - mean) <= 4.5 * sd, `ratio ${ratio}: ${k} sampled, expected ${mean} ± ${Math.round(4.5 * sd)}`)
  }
})

t.test('precedence: config, then OTEL_TRACES_SAMPLER(_ARG), then 1 % parent-based', async (t) => {
  const empty = section('{}') as Section
  t.same(compileSampler(empty, {}), { bound: Math.floor(DEFAULT_RATIO * 0xffffffff), parentBased: true, ratio: DEFAULT_RATIO })
  t.match(compileSampler(empty, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' }), { ratio: 0.5, parentBased: false })
  t.match(compileSampler(empty, { OTEL_TRACES_SAMPLER: 'always_on' }), { ratio: 1, parentBased: false, bound: 0x100000000 })
  t.match(compileSampler(empty, { OTEL_TRACES_SAMPLER: 'parentbased_always_off' }), { ratio: 0, parentBased: true, bound: 0 })
  t.match(compileSampler(empty, { OTEL_TRACES_SAMPLER_ARG: 'nonsense' }), { ratio: DEFAULT_RATIO }, 'an unreadable ARG is ignored')
  const set = section('{ sample: 0.2, parent_based: false }') as Section
  t.match(compileSampler(set, { OTEL_TRACES_SAMPLER: 'parentbased_always_on' }), { ratio: 0.2, parentBased: false }, 'config wins over env')
})

t.test('the tracing section: defaults, and errors with file:line:col', async (t) => {
  t.same(section('{}'), { sample_denied: false, timeout: 10_000, max_queue: 2048 })
  t.same(section('{ endpoint: "http://tempo:4318", sample: 0, headers: { X-Scope-OrgID: tenant } }'),
    { endpoint: 'http://tempo:4318', sample: 0, headers: { 'x-scope-orgid': 'tenant' }, sample_denied: false, timeout: 10_000, max_queue: 2048 })
  t.same(section('{ sample: 1.5 }'), ['c.yaml:1:20 tracing.sample: expected a ratio from 0 to 1, got 1.5'])
  t.same(section('{ endpoint: "tempo:4318" }'), ['c.yaml:1:22 tracing.endpoint: expected http://host:port or https://…, got "tempo:4318"'])
  t.match((section('{ sampel: 0.1 }') as string[])[0], /^c\.yaml:1:12 tracing.*sampel.*sample/)
  const r = parseConfig('tracing: { headers: { x-honeycomb-team: hc-secret-123 } }\n', 'c.yaml', {})
  t.ok(r.ok)
  if (r.ok) t.same((redact(r.config) as Config).tracing!.headers, { 'x-honeycomb-team': '***' }, 'export headers are secrets: redacted in logs, /status, validate')
})

t.test('the traces URL: endpoint as base or full URL, else the OTLP env vars, else localhost:4318', async (t) => {
  const s = (endpoint?: string) => ({ ...(section('{}') as Section), endpoint })
  t.equal(tracesUrl(s('http://tempo:4318'), {}), 'http://tempo:4318/v1/traces')
  t.equal(tracesUrl(s('http://tempo:4318/'), {}), 'http://tempo:4318/v1/traces')
  t.equal(tracesUrl(s('https://otlp.example.com/v1/traces'), {}), 'https://otlp.example.com/v1/traces')
  t.equal(tracesUrl(s(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://col:4318' }), 'http://col:4318/v1/traces')
  t.equal(tracesUrl(s(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://col:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/x' }), 'http://t:1/x')
  t.equal(tracesUrl(s(), {}), 'http://localhost:4318/v1/traces')
})
