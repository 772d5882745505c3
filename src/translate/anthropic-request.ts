// OpenAI chat completions → Anthropic Messages (POST /v1/messages). System and developer messages become `system`;
// tool results become user turns of tool_result blocks; consecutive turns of one role are merged (Anthropic wants
// them alternating); images go as base64 or URL sources. What Messages has no field for (n > 1, seed, penalties,
// JSON mode) is refused by name.
import { Untranslatable, type ChatRequest, type Part } from './chat-request.js'

type Block = Record<string, unknown>

function blocks(parts: Part[]): Block[] {
  const out: Block[] = []
  for (const p of parts) {
    if (p.kind === 'text') {
      if (p.text !== '') out.push({ type: 'text', text: p.text })
    } else if (p.url !== '') out.push({ type: 'image', source: { type: 'url', url: p.url } })
    else out.push({ type: 'image', source: { type: 'base64', media_type: p.mediaType, data: p.data } })
  }
  return out
}

export function toAnthropic(r: ChatRequest, model: string): Record<string, unknown> | Untranslatable {
  if (r.n !== 1) return new Untranslatable('n', 'Anthropic returns one completion per request')
  if (r.seed !== undefined) return new Untranslatable('seed', 'Anthropic has no seed')
  if (r.presencePenalty !== undefined && r.presencePenalty !== 0) return new Untranslatable('presence_penalty', 'Anthropic has no presence penalty')
  if (r.frequencyPenalty !== undefined && r.frequencyPenalty !== 0) return new Untranslatable('frequency_penalty', 'Anthropic has no frequency penalty')
  if (r.responseFormat !== 'text') return new Untranslatable('response_format', 'Anthropic Messages has no JSON mode')
  let system = ''
  const messages: Array<{ role: 'user' | 'assistant'; content: Block[] }> = []
  const push = (role: 'user' | 'assistant', content: Block[]) => {
    const last = messages[messages.length - 1]
    if (last !== undefined && last.role === role) last.content.push(...content)
    else messages.push({ role, content })
  }
  for (const m of r.messages) {
    switch (m.role) {
      case 'system':
        system = system === '' ? m.text : `${system}\n\n${m.text}`
        break
      case 'user':
        push('user', blocks(m.parts))
        break
      case 'assistant': {
        const content = blocks(m.parts)
        for (const c of m.toolCalls) content.push({ type: 'tool_use', id: c.id, name: c.name, input: c.input })
        push('assistant', content)
        break
      }
      case 'tool':
        push('user', [{ type: 'tool_result', tool_use_id: m.toolCallId, content: m.text }])
        break
    }
  }
  const out: Record<string, unknown> = { model, max_tokens: r.maxTokens, messages }
  if (system !== '') out.system = system
  if (r.temperature !== undefined) out.temperature = r.temperature
  if (r.topP !== undefined) out.top_p = r.topP
  if (r.stop !== undefined) out.stop_sequences = r.stop
  if (r.stream) out.stream = true
  if (r.tools.length > 0) {
    out.tools = r.tools.map((t) => ({
      name: t.name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      input_schema: t.parameters ?? { type: 'object', properties: {} },
    }))
  }
  const tc = r.toolChoice
  if (tc !== undefined || r.parallelToolCalls === false) {
    let choice: Record<string, unknown>
    if (tc === undefined || tc.kind === 'auto') choice = { type: 'auto' }
    else if (tc.kind === 'function') choice = { type: 'tool', name: tc.name }
    else choice = { type: tc.kind === 'none' ? 'none' : 'any' }
    if (r.parallelToolCalls === false && choice.type !== 'none') choice.disable_parallel_tool_use = true
    out.tool_choice = choice
  }
  if (r.user !== undefined) out.metadata = { user_id: r.user }
  return out
}
