// OpenAI's Responses API (`POST /v1/responses`): a `response` object as JSON, or with `"stream": true` the typed SSE
// events OpenAI sends (`event: NAME` + `data: {"type":NAME,…,"sequence_number":k}`): response.created,
// response.in_progress, a reasoning item's output_item.added/done when there is reasoning, the message's
// output_item.added, content_part.added, one output_text.delta per token, output_text.done, content_part.done,
// output_item.done, and response.completed — or response.incomplete (incomplete_details.reason
// "max_output_tokens") when the text stopped at `max_output_tokens`. Usage, reasoning included, comes only with
// the terminal event, as the API has no include_usage switch. Reasoning is counted, its summary never sent.
import { readPrompt } from '../llm/prompt.js'
import { Generation } from './generation.js'
import type { Exchange } from './exchange.js'
import { hex } from './ids.js'

const SSE = 'text/event-stream; charset=utf-8'
const DEFAULT_MODEL = 'gpt-4o-mini'
/** what follows `"model":…,"output":[…],` in every response object: the request options the stub does not vary */
const OPTIONS = '"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},' +
  '"service_tier":"default","store":true,"temperature":1.0,"text":{"format":{"type":"text"},"verbosity":"medium"},' +
  '"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":'
const TAIL = ',"user":null,"metadata":{}}'

/** One reply's fixed parts, so the stream's events and the JSON body are the same strings. */
class Reply {
  readonly g: Generation
  readonly id: string
  readonly msgId: string
  /** the reasoning item, or '' when there is no reasoning */
  readonly reasoning: string
  /** the message's index in `output` */
  readonly index: number
  readonly complete: boolean
  /** `"instructions":…,"max_output_tokens":…,"model":…,` as the request gave them */
  private readonly echo: string
  private seq = 0

  constructor(ex: Exchange, body: Record<string, any>) {
    const info = readPrompt('openai-responses', body, ex.path)
    const g = (this.g = new Generation(ex, info, DEFAULT_MODEL))
    this.id = 'resp_' + hex(g.ids, 50)
    this.msgId = 'msg_' + hex(g.ids, 50)
    this.reasoning = g.thoughts > 0 ? '{"id":"rs_' + hex(g.ids, 50) + '","type":"reasoning","summary":[]}' : ''
    this.index = g.thoughts > 0 ? 1 : 0
    this.complete = !g.limited
    this.echo = '"instructions":' + (typeof body.instructions === 'string' ? JSON.stringify(body.instructions) : 'null') +
      ',"max_output_tokens":' + (info.maxOutput >= 0 ? info.maxOutput : 'null') + ',"model":' + JSON.stringify(g.model) + ','
  }

  usage(): string {
    const g = this.g
    return '{"input_tokens":' + g.prompt + ',"input_tokens_details":{"cached_tokens":0},"output_tokens":' + g.output +
      ',"output_tokens_details":{"reasoning_tokens":' + g.thoughts + '},"total_tokens":' + g.total + '}'
  }

  part(text: string): string {
    return '{"type":"output_text","annotations":[],"logprobs":[],"text":"' + text + '"}'
  }

  message(status: string, content: string): string {
    return '{"id":"' + this.msgId + '","type":"message","status":"' + status + '","content":[' + content + '],"role":"assistant"}'
  }

  /** The response object: in progress (no output, no usage) or final. */
  response(final: boolean): string {
    const g = this.g
    const status = !final ? 'in_progress' : this.complete ? 'completed' : 'incomplete'
    let output = ''
    if (final) {
      output = (this.reasoning === '' ? '' : this.reasoning + ',') +
        this.message(this.complete ? 'completed' : 'incomplete', this.part(g.completion.text))
    }
    return '{"id":"' + this.id + '","object":"response","created_at":' + g.created + ',"status":"' + status +
      '","background":false,"completed_at":' + (final && this.complete ? g.created : 'null') + ',"error":null,"incomplete_details":' +
      (final && !this.complete ? '{"reason":"max_output_tokens"}' : 'null') + ',' + this.echo + '"output":[' + output + '],' +
      OPTIONS + (final ? this.usage() : 'null') + TAIL
  }

  /** One SSE event; `fields` is the JSON between the type and the sequence number (with its trailing comma). */
  event(type: string, fields: string): string {
    return 'event: ' + type + '\ndata: {"type":"' + type + '",' + fields + '"sequence_number":' + this.seq++ + '}\n\n'
  }

  item(type: 'added' | 'done', item: string, index: number): string {
    return this.event('response.output_item.' + type, '"item":' + item + ',"output_index":' + index + ',')
  }

  /** The fields that place an event in the message's text part. */
  get at(): string {
    return '"content_index":0,"item_id":"' + this.msgId + '","output_index":' + this.index + ','
  }
}

export function responses(ex: Exchange, body: unknown): void {
  const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, any>
  if (b.input === undefined && b.previous_response_id === undefined) {
    ex.error(400, "Missing required parameter: 'input'.")
    return
  }
  const r = new Reply(ex, b)
  const c = r.g.completion
  if (b.stream !== true) {
    ex.json(r.response(true), c.tokens)
    return
  }
  ex.stream(SSE)
  let first = r.event('response.created', '"response":' + r.response(false) + ',') +
    r.event('response.in_progress', '"response":' + r.response(false) + ',')
  if (r.reasoning !== '') first += r.item('added', r.reasoning, 0) + r.item('done', r.reasoning, 0)
  first += r.item('added', r.message('in_progress', ''), r.index) +
    r.event('response.content_part.added', r.at + '"part":' + r.part('') + ',')
  ex.beat(first, 0)
  const at = r.at
  const pieces = c.pieces
  for (let i = 0; i < pieces.length; i++) {
    const ev = r.event('response.output_text.delta', at + '"delta":"' + pieces[i] + '","logprobs":[],')
    if (i === 0) ex.append(ev)
    else ex.beat(ev, 1)
  }
  const status = r.complete ? 'completed' : 'incomplete'
  ex.append(
    r.event('response.output_text.done', at + '"logprobs":[],"text":"' + c.text + '",') +
      r.event('response.content_part.done', at + '"part":' + r.part(c.text) + ',') +
      r.item('done', r.message(status, r.part(c.text)), r.index) +
      r.event('response.' + status, '"response":' + r.response(true) + ','),
  )
}
