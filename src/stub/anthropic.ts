// Anthropic's Messages API (`POST /v1/messages`): a `message` object as JSON, or with `"stream": true` the typed
// SSE events Anthropic sends — `message_start` (its usage has the input counts and an output count of 1),
// `content_block_start`, a `ping`, one `content_block_delta` per token, `content_block_stop`, `message_delta` (the
// stop reason and the cumulative usage, input counts repeated as the current API does) and `message_stop`.
// Like the real API it refuses a request without the `anthropic-version` header or without `max_tokens`; any
// `x-api-key` is accepted. Extended thinking (`thinking.budget_tokens`) is counted in `output_tokens`, its text
// never sent, as the stub does for every provider's reasoning.
import { readPrompt } from '../llm/prompt.js'
import { Generation } from './generation.js'
import type { Exchange } from './exchange.js'
import { base62 } from './ids.js'

const SSE = 'text/event-stream; charset=utf-8'
const DEFAULT_MODEL = 'claude-sonnet-4-5'
/** the cache fields every usage object carries: the stub never caches */
const NO_CACHE = '"cache_creation_input_tokens":0,"cache_read_input_tokens":0'
const CACHE_CREATION = '"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}'
const PING = 'event: ping\ndata: {"type": "ping"}\n\n'
const BLOCK_START = 'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
const DELTA_HEAD = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
const DELTA_TAIL = '"}}\n\n'
const BLOCK_STOP = 'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
const MESSAGE_STOP = 'event: message_stop\ndata: {"type":"message_stop"}\n\n'

function thinkingBudget(body: Record<string, any>): number {
  const t = body.thinking
  if (t === null || typeof t !== 'object' || t.type !== 'enabled') return 0
  return typeof t.budget_tokens === 'number' && t.budget_tokens > 0 ? Math.floor(t.budget_tokens) : 0
}

function usage(input: number, output: number): string {
  return '{"input_tokens":' + input + ',' + NO_CACHE + ',' + CACHE_CREATION + ',"output_tokens":' + output + ',"service_tier":"standard"}'
}

export function messages(ex: Exchange, body: unknown): void {
  if (typeof ex.req.headers['anthropic-version'] !== 'string') {
    ex.error(400, 'anthropic-version: header is required')
    return
  }
  const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, any>
  if (!Array.isArray(b.messages)) {
    ex.error(400, 'messages: Field required')
    return
  }
  if (typeof b.max_tokens !== 'number' || !Number.isInteger(b.max_tokens) || b.max_tokens < 1) {
    ex.error(400, b.max_tokens === undefined ? 'max_tokens: Field required' : 'max_tokens: Input should be a valid positive integer')
    return
  }
  const info = readPrompt('anthropic-messages', body, ex.path)
  const g = new Generation(ex, info, DEFAULT_MODEL, thinkingBudget(b))
  const id = 'msg_01' + base62(g.ids, 22)
  const model = JSON.stringify(g.model)
  const c = g.completion
  const stop = g.limited ? 'max_tokens' : 'end_turn'
  const head = '{"model":' + model + ',"id":"' + id + '","type":"message","role":"assistant","content":'
  if (!info.stream) {
    ex.json(head + '[{"type":"text","text":"' + c.text + '"}],"stop_reason":"' + stop + '","stop_sequence":null,"usage":' +
      usage(g.prompt, g.output) + '}', c.tokens)
    return
  }
  ex.stream(SSE)
  // message_start reports the output so far: Anthropic says 1 before the first token; 0 when nothing will come
  ex.beat('event: message_start\ndata: {"type":"message_start","message":' + head + '[],"stop_reason":null,"stop_sequence":null,"usage":' +
    usage(g.prompt, g.output > 0 ? 1 : 0) + '}}\n\n' + BLOCK_START + PING, 0)
  const pieces = c.pieces
  for (let i = 0; i < pieces.length; i++) {
    const ev = DELTA_HEAD + pieces[i] + DELTA_TAIL
    if (i === 0) ex.append(ev)
    else ex.beat(ev, 1)
  }
  ex.append(BLOCK_STOP + 'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"' + stop +
    '","stop_sequence":null},"usage":{"input_tokens":' + g.prompt + ',' + NO_CACHE + ',"output_tokens":' + g.output + '}}\n\n' + MESSAGE_STOP)
}
