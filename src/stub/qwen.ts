// DashScope's native text-generation API (`/api/v1/services/aigc/text-generation/generation`): `{output, usage,
// request_id}`, with `parameters.result_format` "text" (output.text) or "message" (output.choices). With the
// request header `X-DashScope-SSE: enable` it streams `id:`/`event:result`/`:HTTP_STATUS/200`/`data:` events whose
// usage is cumulative and whose text is the whole text so far, or only the new part when
// `parameters.incremental_output` is true. Qwen's OpenAI-compatible mode is rendered by openai.ts.
import { readPrompt } from '../llm/prompt.js'
import { Generation } from './generation.js'
import type { Exchange } from './exchange.js'
import { uuid } from './ids.js'

interface Parameters {
  result_format?: unknown
  incremental_output?: unknown
}

function usage(input: number, output: number, thoughts: number): string {
  return '{"total_tokens":' + (input + output) + ',"output_tokens":' + output + ',"input_tokens":' + input +
    (thoughts > 0 ? ',"output_tokens_details":{"reasoning_tokens":' + thoughts + '}' : '') + '}'
}

/** `content` is spliced raw: stub texts need no JSON escaping (see text.ts). */
function output(message: boolean, content: string, finish: string): string {
  return message
    ? '{"choices":[{"message":{"role":"assistant","content":"' + content + '"},"finish_reason":"' + finish + '"}]}'
    : '{"text":"' + content + '","finish_reason":"' + finish + '"}'
}

export function qwenNative(ex: Exchange, body: unknown, sse: boolean): void {
  const info = readPrompt('qwen-native', body, ex.path)
  const g = new Generation(ex, info, 'qwen-plus')
  const p = ((body as { parameters?: Parameters } | null)?.parameters ?? {}) as Parameters
  const message = p.result_format === 'message'
  const incremental = p.incremental_output === true
  const c = g.completion
  const finish = g.limited ? 'length' : 'stop'
  const tail = ',"request_id":"' + uuid(g.ids) + '"}'
  if (!sse) {
    ex.json('{"output":' + output(message, c.text, finish) + ',"usage":' + usage(g.prompt, g.output, g.thoughts) + tail, c.tokens)
    return
  }
  ex.stream('text/event-stream;charset=UTF-8')
  const n = c.pieces.length
  for (let i = 0; i < n; i++) {
    const content = incremental ? c.pieces[i] : c.text.slice(0, c.ends[i])
    // DashScope writes the string "null" while a stream is unfinished; reasoning is counted before the text
    ex.beat('id:' + (i + 1) + '\nevent:result\n:HTTP_STATUS/200\ndata:{"output":' + output(message, content, 'null') +
      ',"usage":' + usage(g.prompt, g.thoughts + i + 1, g.thoughts) + tail + '\n\n', i === 0 ? 0 : 1)
  }
  ex.append('id:' + (n + 1) + '\nevent:result\n:HTTP_STATUS/200\ndata:{"output":' + output(message, incremental ? '' : c.text, finish) +
    ',"usage":' + usage(g.prompt, g.output, g.thoughts) + tail + '\n\n')
}
