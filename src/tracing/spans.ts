// A finished request as OpenTelemetry spans: one SERVER span (the proxy's hop, child of the client's traceparent)
// with events for the limit decision, the first byte and the end of the stream, and one CLIENT span per upstream
// attempt. Attributes follow the HTTP and GenAI semantic conventions plus leaky.*; never a prompt, a completion,
// a credential or a query string (it may carry ?key=). Runs only for a request that is exported.
import type { RequestState } from '../server/request-state.js'
import type { Usage } from '../llm/usage.js'
import type { ApiShape } from '../llm/prompt.js'
import type { Provider } from '../upstream/upstream.js'
import { ERRORS } from '../errors.js'
import { VIA_NAME, Via } from '../limiter/redis.js'
import { AttemptRecord } from './record.js'
import { spanId } from './ids.js'
import { KIND_CLIENT, KIND_SERVER, STATUS_ERROR, STATUS_UNSET, type Attrs, type EventData, type SpanData } from './span-data.js'

/** gen_ai.system by provider (semantic-conventions' well-known values where one exists). */
const GEN_AI_SYSTEM: Record<Provider, string> = { openai: 'openai', gemini: 'gcp.gemini', anthropic: 'anthropic', qwen: 'qwen', none: '' }

/** gen_ai.operation.name by the API the request speaks. */
const OPERATION: Record<ApiShape, string> = {
  'openai-chat': 'chat',
  'openai-completions': 'text_completion',
  'openai-embeddings': 'embeddings',
  'openai-responses': 'chat',
  gemini: 'generate_content',
  'gemini-embed': 'embeddings',
  'qwen-native': 'chat',
  'anthropic-messages': 'chat',
  other: '',
}

// epoch ms = this thread's time origin + performance.now(): one clock for every span of the worker
const ORIGIN = performance.timeOrigin

/** host and port of an upstream origin, parsed once per origin */
const servers = new Map<string, [string, number]>()
function serverOf(origin: string): [string, number] {
  let hp = servers.get(origin)
  if (hp === undefined) {
    const u = new URL(origin)
    hp = [u.hostname, u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80]
    servers.set(origin, hp)
  }
  return hp
}

export function requestSpans(s: RequestState, status: number, usage: Usage | null, endMs: number, tail: string): SpanData[] {
  const route = s.route
  const failed = status >= 500 || status === 0
  const attrs: Attrs = {
    'http.request.method': s.method,
    'url.path': s.url,
    'url.scheme': 'http',
    'client.address': s.clientIp,
    'http.request.header.x-request-id': [s.requestId],
    'http.request.body.size': s.bytesIn,
    'http.response.body.size': s.bytesOut,
  }
  if (status > 0) attrs['http.response.status_code'] = status
  if (s.host !== '') attrs['server.address'] = hostOnly(s.host)
  if (route !== null) {
    attrs['http.route'] = route.path
    attrs['leaky.route'] = route.path
  }
  if (s.upstream !== null) attrs['leaky.upstream'] = s.upstream.name
  if (s.keyId !== '') attrs['leaky.key_id'] = s.keyId
  if (s.limitDenied !== '') attrs['leaky.limit'] = s.limitDenied
  if (s.errorCode !== null) attrs['leaky.error'] = s.errorCode
  if (failed && s.errorCode !== null) attrs['error.type'] = s.errorCode
  if (s.attempts > 1) attrs['leaky.attempts'] = s.attempts
  if (tail !== '') attrs['leaky.trace.tail'] = tail
  genAi(s, attrs, route === null ? 'none' : (s.upstream ?? route.upstream).provider)
  if (usage !== null && usage.source !== 'unknown') {
    if (usage.model !== '') attrs['gen_ai.response.model'] = usage.model
    attrs['gen_ai.usage.input_tokens'] = usage.prompt
    attrs['gen_ai.usage.output_tokens'] = usage.completion
    const finish = s.meter !== null ? s.meter.finish : ''
    if (finish !== '') attrs['gen_ai.response.finish_reasons'] = [finish]
    attrs['leaky.usage.source'] = usage.source
    if (s.costPico >= 0) attrs['leaky.cost_usd'] = s.costPico / 1e12
  }

  const events: EventData[] = []
  const r = s.trace
  if (s.charged || s.limitDenied !== '') {
    const ev: Attrs = {
      'leaky.limit.decision': s.charged ? 'allowed' : 'denied',
      'leaky.limit.scope': s.cluster !== null ? 'cluster' : 'local',
      // the stage waited for Redis; a request not sampled kept no record: then any cluster decision but a lease's
      'leaky.limit.waited': r !== null ? r.limitWaited : s.cluster !== null && s.cluster.via !== Via.LEASE,
    }
    if (s.limitDenied !== '') ev['leaky.limit'] = s.limitDenied
    if (s.cluster !== null) ev['leaky.limit.via'] = VIA_NAME[s.cluster.via]
    events.push({ name: 'leaky.limit', time: ORIGIN + (r !== null && r.limitAt >= 0 ? r.limitAt : s.charged ? s.startMs : endMs), attrs: ev })
  }
  if (r !== null) {
    const b = r.breakerOpen
    for (let i = 0; i < b.length; i += 2) events.push({ name: 'leaky.breaker.open', time: ORIGIN + (b[i + 1] as number), attrs: { 'leaky.upstream': b[i] as string } })
  }
  if (s.ttfbMs >= 0) events.push({ name: 'leaky.first_byte', time: ORIGIN + s.startMs + s.ttfbMs, attrs: null })
  if (s.status > 0) events.push({ name: 'leaky.stream.end', time: ORIGIN + endMs, attrs: { 'http.response.body.size': s.bytesOut } })

  const server: SpanData = {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId,
    traceState: s.traceState,
    name: route === null ? s.method : `${s.method} ${route.path}`,
    kind: KIND_SERVER,
    start: ORIGIN + s.startMs,
    end: ORIGIN + endMs,
    // HTTP server spans: 4xx are the client's, not the span's error
    status: failed ? STATUS_ERROR : STATUS_UNSET,
    message: failed && s.errorCode !== null ? ERRORS[s.errorCode].message : '',
    attrs,
    events,
  }
  const out = [server]
  if (s.attempts === 0 || s.upstream === null) return out

  const list = r === null ? [] : r.attempts
  for (let i = 0; i < list.length; i++) out.push(attemptSpan(s, list[i], i + 1, endMs, i === s.attempts - 1))
  if (list.length < s.attempts) {
    // the attempt that ended a request that was not sampled: only now does it need a span
    const up = s.upstream
    const last = new AttemptRecord(spanId(), up.name, up.targets[s.target].origin, s.attemptAt, false)
    out.push(attemptSpan(s, last, s.attempts, endMs, true))
  }
  return out
}

function attemptSpan(s: RequestState, a: AttemptRecord, n: number, endMs: number, final: boolean): SpanData {
  const [host, port] = serverOf(a.origin)
  const status = final ? s.status : a.status
  const attrs: Attrs = {
    'http.request.method': s.method,
    'server.address': host,
    'server.port': port,
    'leaky.upstream': a.upstream,
    'leaky.attempt': n,
  }
  if (status > 0) attrs['http.response.status_code'] = status
  if (a.trial) attrs['leaky.breaker.trial'] = true
  let error = ''
  if (!final) {
    attrs['leaky.retry_reason'] = a.reason
    error = status > 0 ? String(status) : a.reason
  } else if (s.errorCode !== null && s.errorCode.startsWith('LEAKY_UPSTREAM')) {
    error = s.errorCode
  } else if (status >= 500) {
    error = String(status)
  }
  if (error !== '') attrs['error.type'] = error
  const up = s.plan.upstreams.get(a.upstream)
  if (up !== undefined) genAi(s, attrs, up.provider)
  return {
    traceId: s.traceId,
    spanId: a.spanId,
    parentSpanId: s.spanId,
    traceState: s.traceState,
    name: `${s.method} ${a.upstream}`,
    kind: KIND_CLIENT,
    start: ORIGIN + a.start,
    end: ORIGIN + (final || a.end < 0 ? endMs : a.end),
    status: error !== '' ? STATUS_ERROR : STATUS_UNSET,
    message: final ? '' : a.reason,
    attrs,
    events: null,
  }
}

function genAi(s: RequestState, attrs: Attrs, provider: Provider): void {
  if (s.shape === null) return
  const system = GEN_AI_SYSTEM[provider]
  if (system !== '') attrs['gen_ai.system'] = system
  const op = OPERATION[s.shape]
  if (op !== '') attrs['gen_ai.operation.name'] = op
  if (s.model !== '') attrs['gen_ai.request.model'] = s.model
}

function hostOnly(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'))
  const i = host.indexOf(':')
  return i < 0 ? host : host.slice(0, i)
}
